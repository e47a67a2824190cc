"""Deep vanilla 1-D CNNs at critical tanh: delta-orthogonal against Gaussian kernels
(Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington, ICML 2018).

Setup.  Plain stacks h_l = tanh(conv_l(h_(l−1)) + b_l) of C → C layers, kernel size 3,
circular padding (periodic signals: the mean-field theory of CNNs), on the critical line
χ₁ = σ_w² E[φ'(√q* z)²] = 1 at a small bias variance, σ_b² = 1e−5, so that q* ≈ 0.020 and
σ_w² ≈ 1.040 (:func:`gradstudy.theory.critical_sigma_w2`, ``fixed_point_q``).  Kernels are
either delta-orthogonal (an orthogonal centre tap times σ_w; Xiao et al. Algorithm 2) or
Gaussian, W ~ N(0, σ_w²/(3C)).  Every network starts at the fixed point: its input has
mean square (q* − σ_b²)/σ_w² over the channels at every position
(:func:`gradstudy.engine.cnn_isometry`).

Expectations, stated before measuring.

(a) Gradients.  For a random readout ⟨u, h_L⟩, mean field makes the seed mean of
r_d = ‖δ_(L−d)‖²/‖δ_L‖² equal χ₁^d = 1 for BOTH kernels: at χ₁ = 1 the mean does not
distinguish them.  What does is the per-seed value: the Gaussian kernel's per-layer factor
fluctuates (its kernel has only 3C² entries), so ln r_d is a sum of d random
increments — a log-normal whose mean is 1 has E[ln r] = −½ Var[ln r], so the typical
Gaussian network's input gradient is smaller than the mean by e^(−Var/2) (Hanin & Nica
2019 for the log-normal limit of products).  Off the critical line (Gaussian kernels at
σ_w² = 0.9 and 1.5 × the critical value, same σ_b²) the seed mean vanishes or explodes
at mean field's rate, r_d = χ₁(q*)^d with χ₁ = 0.935 and 1.048: the mean of a product of
independent layers' factors, E‖Wᵀg‖² = σ_w²‖g‖² for any kernel of variance σ_w²/(3C).
(A first run with 16 seeds failed the 0.9 point, −0.18 ± 0.11 decades: the seed mean of
a log-normal with log-variance ≈ 2 is carried by rare seeds, which 16 mostly miss, and
their standard error misses them too; the off-critical points use 64 seeds, tolerance
unchanged.)  The delta-orthogonal kernel is an isometry of the channels at every
position; only φ' varies, by O(q*), so its per-seed ratios stay flat.
(b) Spectrum.  For a circular convolution the DFT over positions block-diagonalises every
kernel into C × C blocks Ŵ(f) = Σ_j W_j e^(−2πifj/n).  Delta-orthogonal: every block is
the same orthogonal matrix and the layers never mix positions, so J = ∂h_L/∂h_0 is
block-diagonal, one width-C fully connected orthogonal network per position: its spectrum
IS the orthogonal one.  Gaussian: each Ŵ(f) has i.i.d. entries of variance σ_w²/C, so
W Wᵀ has the Marchenko–Pastur spectrum at aspect ratio 1 (normalised variance 1) as C
grows; the blocks at different f are not independent (3C² numbers make nC² entries), so
the freeness of W Wᵀ and D² that the free-probability product needs is Xiao et al.'s
assumption, tested here.  Then (Pennington et al. 2017, Eq. 14–15;
:func:`gradstudy.theory.jacobian_spectrum_moments`) the squared singular values λ of J at
depth L have mean χ₁^L = 1 and normalised variance L(μ₂/μ₁² − 1 + s), s = 1 (Gaussian),
0 (orthogonal), μ_k = E[φ'(√q* z)^(2k)]: ≈ 1.003 L against ≈ 0.0027 L.  Free probability is
the C → ∞ limit; a width-C orthogonal network's normalised variance carries an excess
∝ 1/C (pilots at C = 16, 32 and 64: ≈ 0.015 L/C at depths 10 and 30, and a mean drifting
up by 1.7 %, 1.3 % and 0.7 % at depth 30).  Part of it is visible in the spectrum: at
every position one direction, the radial one that changes the norm of h, is not isometric
but relaxes to q* at the slope of the length map, ∂𝓛/∂q(q*) = 0.962, so one singular value
in C sits near (∂𝓛/∂q)^(2L) (0.096 at depth 30; measured 0.06–0.08), a 1/C fraction of
the spectrum that the large-width limit drops.  So the delta-orthogonal claims are made
at 2C = 64 (N = 256: 4 positions), the normalised variance as the C → ∞ extrapolation
2·v(2C) − v(C) from 2C and C, exact for any excess a(L)/C.
(c) Training.  Stated before the paper-scale run, after pilots (depth 500, 8 channels,
batch 32, 200 steps; the first study version claimed only Adam at lr 1e−4 with one seed,
training loss 2.234 and test accuracy 16 %).  Why it learns slowly: at σ_w = 1, σ_b = 0
(q* = 0) the activations shrink like 1/√l, so the pooled output is ≈ 0.03 per channel and
the readout, drawn at the kernels' scale, must grow ≈ 100× before the logits matter; a
delta-orthogonal network is position-local at init and must grow its off-centre taps
(relative change O(0.1)) to see shapes, while 500 layers moving together compound: a
per-layer relative step of 1e−3 already destabilises it.  One learning rate cannot serve
both.  SGD with unit-wise adaptive gradient clipping (AGC, Brock et al. 2021; the readout
is not clipped) can: the readout takes plain SGD steps at a large rate, every other
layer's units move by at most lr·t of their norm per step.  Pilots (one seed unless
stated; final training loss / test accuracy): Adam 1e−4, 3e−4, 1e−3 with warm-up-cosine,
400 steps, 2 seeds: 2.18 and 2.25 / 18 % and 17 % at 1e−4, worse above; momentum
(β = 0.9) at lr 0.01–0.3: at chance; SGD + AGC t = 3e−5 at lr 3, 10, 30: 2.00 / 20 %,
2.16 / 18 %, 7.8 (readout overshoot); t = 3e−4 at lr 1.5, 3, 6: 1.88 / 21 %, 1.92 / 21 %,
2.01 / 21 %; t = 1e−3 and 3e−3 at lr 1.5, 3: 2.10–2.59, worse; Gaussian kernels, t = 3e−4
at lr 1.5 and 3: 2.309 and 2.308 / 10.6 % (chance); warm-up-cosine, t = 3e−4, 2 seeds:
lr 1: 2.08, 2.08 / 20 %, 20 %; lr 2: 1.88, 1.86 / 22 %, 24 %.  A depth-10 network with
the same optimiser (t = 3e−3) reached 1.69 / 34.5 % in 200 steps: 200 steps at 8 channels
is short for this architecture at any depth (the MNIST-1D paper's 94 % takes thousands),
and the budget allows no more (≈ 0.1 s per step and run on 2 cores).
The claim: depth 500, 8 channels, circular padding, tanh at σ_w = 1, σ_b = 0 (the
family's networks have no bias variance: the q* = 0 end of the critical line, where both
kernels are critical), SGD at peak lr 2 with 10 linear warm-up steps and cosine decay to 0
at step 200, AGC at t = 3e−4, batch 32, 200 steps, 2 seeds (a vmapped axis), the same for
both kernels.  "Trains": EVERY seed's final training loss (on all training examples) at
least 0.25 below ln 10 = 2.303 and its test accuracy at least 17 % (chance 10 %; the
pilots gave 0.42–0.45 and 22–24 %).  "Does not train": every seed's final training loss
within 0.02 of ln 10 and its test accuracy below 14 % (a constant prediction scores the
largest test-class frequency, ≈ 11 %).  Only leaving chance is claimed, not the MNIST-1D
paper's accuracy.

Scale-down.  Xiao et al. trained 10,000-layer CNNs, far wider than here, for thousands of
steps on MNIST and CIFAR-10; here 500 layers, 8 channels, 200 steps and 2 seeds on MNIST-1D
(20× shallower, far narrower, far fewer steps), the spectra at C ≤ 64 and N = length·C = 256,
and the gradient profiles at depth 1,000 with 32 channels, to fit a 2-minute budget on
2 CPU cores.
"""

import math

import jax
import numpy as np

from gradstudy import plotting, theory
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training, cnn_isometry
from gradstudy.families.cnn import CNNSpec
from gradstudy.studies import Claim, log_mean_square_excess, mean_se, tolerance

NAME = "deep_cnn_isometry"
DESCRIPTION = "critical tanh CNNs to depth 1,000: delta-orthogonal vs Gaussian kernels, " \
              "gradients, Jacobian spectra (free probability) and training on MNIST-1D"
SCALES = {
    "smoke": {"grad_depth": 40, "off_depth": 30, "off_seeds": 16, "grad_channels": 16,
              "seeds": 8, "jac_depths": [8], "jac_channels": 16, "jac_positions": 4,
              "train_depth": 8, "train_channels": 4, "train_steps": 10, "train_seeds": 2},
    "paper": {"grad_depth": 1000, "off_depth": 100, "off_seeds": 64, "grad_channels": 32,
              "seeds": 16, "jac_depths": [10, 30], "jac_channels": 32, "jac_positions": 4,
              "train_depth": 500, "train_channels": 8, "train_steps": 200, "train_seeds": 2},
}
LIMITS = {"grad_depth": (10, 5000), "off_depth": (2, 1000), "off_seeds": (4, 1024),
          "grad_channels": (2, 256), "seeds": (4, 1024),
          "jac_depths": {"len": (1, 4), "distinct": True, "range": (1, 200)},
          "jac_channels": (4, 64), "jac_positions": (1, 32), "train_depth": (2, 2000),
          "train_channels": (2, 64), "train_steps": (10, 100_000), "train_seeds": (2, 16)}
OFF_CRITICAL = (0.9, 1.5)  # Gaussian points off the critical line: σ_w² × these
SIGMA_B2 = 1e-5  # small: q* ≈ 0.02, near the isometric q* → 0 end of the critical line
KERNEL = 3
GRAD_LENGTH = 16  # positions of the gradient profiles
INITS = {"delta_orthogonal": "orthogonal", "gaussian": "gaussian"}  # kernel → theory's s
LABELS = {"delta_orthogonal": "δ-orthogonal", "gaussian": "Gaussian"}
MIN_TRAIN_DEPTH, MIN_TRAIN_STEPS = 200, 100  # the training claims need this much
TRAINS_DROP = 0.25  # "trains": every seed's final training loss at least this below ln 10
TRAINS_ACCURACY = 0.17  # ... and its test accuracy at least this (chance 0.1)
STUCK_LOSS = 0.02  # "does not train": every seed's final training loss within this of ln 10
STUCK_ACCURACY = 0.14  # ... and its test accuracy below this
LR, AGC, WARMUP = 2.0, 3e-4, 10  # SGD's peak rate, AGC's threshold, warm-up steps (pilots)
SOURCE = ("Xiao et al. 2018 (CNN mean field, delta-orthogonal); Pennington et al. 2017 "
          "Eq. 14-15 (free-probability moments)")


def critical_point() -> tuple[float, float, float]:
    """(σ_w², q*, input mean square) on the critical line at σ_b² = SIGMA_B2."""
    sw2 = float(theory.critical_sigma_w2("tanh", SIGMA_B2))
    q = float(theory.fixed_point_q("tanh", sw2, SIGMA_B2))
    return sw2, q, (q - SIGMA_B2) / sw2


def _spec(init, depth, channels, length, sigma_w):
    return CNNSpec(depth=depth, channels=channels, kernel_size=KERNEL, length=length,
                   activation="tanh", init=init, sigma_w=sigma_w, padding="circular")


def _jac_widths(init, c):
    """Channels of the measured Jacobians: the claims' width first.  δ-orthogonal: 2C and
    C (its finite-width excess is O(L/C): the claims at 2C, the extrapolation from both)."""
    return (c,) if init == "gaussian" else (2 * c, c)


def run(ctx, p):
    sw2, q, input_ms = critical_point()
    sigma_w, sigma_b = math.sqrt(sw2), math.sqrt(SIGMA_B2)

    def probe(init, depth, channels, length, jac_depths=()):
        return cnn_isometry(_spec(init, depth, channels, length, sigma_w), sigma_b,
                            input_ms, p["seeds"], tuple(jac_depths),
                            cache_dir=ctx.results_dir,
                            name=f"isometry-{init}-c{channels}")

    grads = {i: probe(i, p["grad_depth"], p["grad_channels"], GRAD_LENGTH) for i in INITS}
    off = {f: _off_critical(ctx, p, f * sw2) for f in OFF_CRITICAL}
    c = p["jac_channels"]
    deepest = max(p["jac_depths"])
    spectra = {(init, w): probe(init, deepest, w, p["jac_positions"], p["jac_depths"])
               for init in INITS for w in _jac_widths(init, c)}
    runs = _train(ctx, p)
    claims = (_gradient_claims(p, grads) + _off_critical_claims(p, off)
              + _spectrum_claims(p, spectra, sw2) + _train_claims(p, runs))
    ctx.extra.setdefault("measured", {}).update(_measured(p, grads, spectra, runs, sw2, q))
    ctx.extra["measured"].update({f"off_critical_predicted_x{f:g}":
                                  0.5 * p["off_depth"] * math.log10(chi)
                                  for f, (chi, _) in off.items()})
    _draw(ctx, p, grads, off, spectra, runs, sw2)
    return claims


def _off_critical(ctx, p, sw2):
    """(χ₁(q*), probe) of Gaussian-kernel stacks at σ_w² = ``sw2``, σ_b² = SIGMA_B2."""
    q = float(theory.fixed_point_q("tanh", sw2, SIGMA_B2))
    spec = _spec("gaussian", p["off_depth"], p["grad_channels"], GRAD_LENGTH, math.sqrt(sw2))
    ds = cnn_isometry(spec, math.sqrt(SIGMA_B2), (q - SIGMA_B2) / sw2, p["off_seeds"],
                      cache_dir=ctx.results_dir, name="isometry-offcritical")
    return float(theory.chi1("tanh", q, sw2)), ds


def train_optimizer(steps: int) -> OptimizerSpec:
    """SGD, warm-up then cosine decay to 0 at ``steps``, unit-wise adaptive clipping of
    every layer but the readout: large steps for the readout, small relative ones below."""
    return OptimizerSpec("sgd", LR, schedule="warmup_cosine",
                         warmup_steps=min(WARMUP, steps // 2), decay_steps=steps,
                         clip="adaptive", clip_threshold=AGC)


def _train(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    runs = {}
    for init in INITS:
        spec = CNNSpec(depth=p["train_depth"], channels=p["train_channels"],
                       kernel_size=KERNEL, activation="tanh", init=init, sigma_w=1.0,
                       padding="circular")
        steps = p["train_steps"]
        runs[init] = ctx.train(Training(
            points=(spec,), labels=(LABELS[init],), optimizer=train_optimizer(steps),
            steps=steps, seeds=p["train_seeds"], batch_size=32, eval_every=steps,
            record_every=steps), data, tag=f"train-{init}")
    return runs


# -------------------------------------------------------------------------- claims
def _ratios(ds, d):
    """(seeds,) r_d = ‖δ_(L−d)‖² / ‖δ_L‖²."""
    b = ds.backprop_sq.values
    return b[:, -1 - d] / b[:, -1]


def _gradient_claims(p, grads):
    L = p["grad_depth"]
    claims = []
    for init, ds in grads.items():
        excess, se = log_mean_square_excess(0.5 * np.log10(_ratios(ds, L)), 0.0)
        claims.append(Claim(
            f"grad_mean_flat_{init}", f"depth {L}, {LABELS[init]} kernels, χ₁ = 1: ½ log10 "
            f"of the seed mean of ‖δ_0‖²/‖δ_L‖² is mean field's χ₁^L → 0 (4 SE)", excess,
            0.0, tolerance(se), SOURCE))
    ln_r = np.log(_ratios(grads["gaussian"], L))
    ln_r = ln_r[np.isfinite(ln_r)]
    _, se_mean = mean_se(ln_r)
    var = float(np.var(ln_r, ddof=1))
    se_half_var = 0.5 * var * math.sqrt(2.0 / (ln_r.size - 1))  # Gaussian sample variance
    claims.append(Claim(
        "grad_typical_gaussian", f"depth {L}, Gaussian kernels: the seed mean of "
        f"ln(‖δ_0‖²/‖δ_L‖²) is −½ its seed variance (log-normal with mean χ₁^L = 1; "
        f"variance {var:.2f}; 4 SE of both)", float(np.mean(ln_r)), -0.5 * var,
        tolerance(se_mean, se_half_var), "Hanin & Nica 2019 (log-normal products); " + SOURCE))
    return claims


def _off_critical_claims(p, off):
    D = p["off_depth"]
    claims = []
    for f, (chi, ds) in off.items():
        predicted = 0.5 * D * math.log10(chi)  # ½ log10 χ₁^D
        excess, se = log_mean_square_excess(0.5 * np.log10(_ratios(ds, D)), predicted)
        claims.append(Claim(
            f"grad_rate_gaussian_x{f:g}", f"depth {D}, Gaussian kernels off the critical line "
            f"(σ_w² = {f:g} × critical, χ₁(q*) = {chi:.4f}): ½ log10 of the seed mean of "
            f"‖δ_0‖²/‖δ_D‖² is mean field's ½ log10 χ₁^D = {predicted:.2f} (excess 0, 4 SE)",
            excess, 0.0, tolerance(se), SOURCE))
    return claims


def spectrum_moments(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per seed and depth: the mean of λ and its normalised variance m₂/m₁² − 1."""
    s = ds.sv2.values  # (seed, depth, N)
    m1 = s.mean(-1)
    return m1, (s**2).mean(-1) / m1**2 - 1


def _spectrum_claims(p, spectra, sw2):
    c = p["jac_channels"]
    claims = []
    for k, d in enumerate(p["jac_depths"]):
        for init, weights in INITS.items():
            th = theory.jacobian_spectrum_moments("tanh", sw2, SIGMA_B2, d, weights=weights)
            w = _jac_widths(init, c)[0]
            m1, nvar = spectrum_moments(spectra[(init, w)])
            mean, se = mean_se(m1[:, k])
            claims.append(Claim(
                f"jac_mean_{init}_L{d}", f"{LABELS[init]}, depth {d}, C = {w}: the mean "
                f"squared singular value of ∂h_L/∂h_0 is χ₁^L = {th.mean:.3f} (4 SE)", mean,
                th.mean, tolerance(se), SOURCE))
            if init == "gaussian":
                value, se = mean_se(nvar[:, k])
                what = f"C = {w}"
            else:  # the C → ∞ extrapolation of an O(1/C) excess from 2C and C
                _, narrow = spectrum_moments(spectra[(init, c)])
                value, se = mean_se(2 * nvar[:, k] - narrow[:, k])
                what = f"extrapolated to C → ∞ from C = {w} and {c}"
            claims.append(Claim(
                f"jac_nvar_{init}_L{d}", f"{LABELS[init]}, depth {d} ({what}): the "
                f"normalised variance of the squared singular values is free probability's "
                f"L(μ₂/μ₁² − 1 + s) = {th.normalized_variance:.4g} (4 SE)", value,
                th.normalized_variance, tolerance(se), SOURCE))
    return claims


def _final(ds, name):
    return ds[name].isel(point=0, learning_rate=0, eval_step=-1).values


def _train_claims(p, runs):
    if p["train_depth"] < MIN_TRAIN_DEPTH or p["train_steps"] < MIN_TRAIN_STEPS:
        return []
    L, steps, chance = p["train_depth"], p["train_steps"], math.log(10)
    delta = {f: _final(runs["delta_orthogonal"], f) for f in ("train_loss", "test_accuracy")}
    gauss = {f: _final(runs["gaussian"], f) for f in ("train_loss", "test_accuracy")}
    setup = (f"depth {L}, {p['train_channels']} channels, {steps} SGD steps (peak lr {LR:g}, "
             f"cosine, AGC {AGC:g}), {p['train_seeds']} seeds")
    # a NaN (diverged) seed fails every claim: nanmax/nanmin would hide it
    return [
        Claim("train_delta_orthogonal_trains", f"{setup}: the δ-orthogonal CNN trains (final "
              f"training loss, worst seed, at least {TRAINS_DROP} below ln 10)",
              float(np.max(delta["train_loss"])), chance - TRAINS_DROP, 0.0,
              "Xiao et al. 2018", kind="less"),
        Claim("train_delta_orthogonal_accuracy", f"{setup}: the δ-orthogonal CNN's test "
              f"accuracy, worst seed, is at least {TRAINS_ACCURACY:g} (chance 0.1)",
              float(np.min(delta["test_accuracy"])), TRAINS_ACCURACY, 0.0,
              "Xiao et al. 2018", kind="greater"),
        Claim("train_gaussian_stuck", f"{setup}: the Gaussian-kernel CNN does not train "
              f"(final training loss, the seed farthest from ln 10, within {STUCK_LOSS} of "
              f"it)", float(gauss["train_loss"][np.argmax(np.abs(gauss["train_loss"]
                                                                 - chance))]),
              chance, STUCK_LOSS, "Xiao et al. 2018"),
        Claim("train_gaussian_chance_accuracy", f"{setup}: the Gaussian-kernel CNN's test "
              f"accuracy, best seed, is below {STUCK_ACCURACY:g} (chance 0.1)",
              float(np.max(gauss["test_accuracy"])), STUCK_ACCURACY, 0.0,
              "Xiao et al. 2018", kind="less"),
    ]


def _measured(p, grads, spectra, runs, sw2, q) -> dict:
    L = p["grad_depth"]
    out = {"sigma_w2": sw2, "q_star": q, "sigma_b2": SIGMA_B2}
    for init, ds in grads.items():
        ln_r = np.log(_ratios(ds, L))
        out[f"var_ln_ratio_{init}"] = float(np.nanvar(ln_r, ddof=1))
        for d in (10, 30, 100, 300):  # how the spread grows (not claimed: no rate derived)
            if d < L:
                out[f"var_ln_ratio_{init}_d{d}"] = float(np.nanvar(np.log(_ratios(ds, d)),
                                                                   ddof=1))
        out[f"nonfinite_{init}"] = int(np.sum(~np.isfinite(ds.backprop_sq.values)))
    coefficients = []  # the delta-orthogonal excess over free probability, in units of L/C
    for (init, c), ds in spectra.items():
        m1, nvar = spectrum_moments(ds)
        for k, d in enumerate(p["jac_depths"]):
            out[f"nvar_{init}_c{c}_L{d}"] = float(np.mean(nvar[:, k]))
            out[f"mean_{init}_c{c}_L{d}"] = float(np.mean(m1[:, k]))
            if init == "delta_orthogonal":
                th = theory.jacobian_spectrum_moments("tanh", sw2, SIGMA_B2, d,
                                                      weights=INITS[init])
                coefficients.append((np.mean(nvar[:, k]) - th.normalized_variance) * c / d)
    out["nvar_excess_per_layer_times_c"] = float(np.mean(coefficients))
    # the radial mode of a delta-orthogonal position: relaxes at the length map's slope
    slope = float(jax.grad(lambda x: theory.length_map("tanh", x, sw2, SIGMA_B2))(q))
    out["length_map_slope"] = slope
    out["radial_sv2_deepest"] = slope ** (2 * max(p["jac_depths"]))
    wide = 2 * p["jac_channels"]  # measured: the N/C smallest λ, one per position
    sv2 = spectra[("delta_orthogonal", wide)].sv2.sel(jacobian_depth=max(p["jac_depths"]))
    out["radial_sv2_measured"] = float(np.mean(sv2.values[:, :p["jac_positions"]]))
    for init, weights in INITS.items():
        out[f"layer_slope_{init}"] = theory.jacobian_spectrum_moments(
            "tanh", sw2, SIGMA_B2, 1, weights=weights).layer_slope
    for init, ds in runs.items():
        for field in ("train_loss", "test_accuracy"):
            out[f"{field}_{init}"] = float(np.nanmedian(_final(ds, field)))
    return out


# -------------------------------------------------------------------------- figure
def _draw(ctx, p, grads, off, spectra, runs, sw2):
    L = p["grad_depth"]
    colors = {"delta_orthogonal": plotting.OKABE_ITO[0], "gaussian": plotting.OKABE_ITO[1]}
    with plotting.style():
        fig, axes = plotting.figure("double", 4.6, nrows=2, ncols=2,
                                    gridspec_kw={"wspace": 0.3, "hspace": 0.55})
        axes = axes.ravel()
        ax = axes[0]
        d = np.arange(1, L + 1)
        for init, ds in grads.items():
            b = ds.backprop_sq.values
            r = b[:, -2::-1] / b[:, -1:]  # r_d for d = 1..L
            plotting.median_band(ax, d, r, colors[init], label=LABELS[init])
            plotting.mark_nonfinite(ax, d, r, colors[init])
        ax.axhline(1.0, color="0.2", ls="--", lw=0.9, label="mean field χ₁$^d$ = 1", zorder=5)
        for k, (f, (chi, ds)) in enumerate(off.items()):
            b = ds.backprop_sq.values
            d_off = np.arange(1, b.shape[1])
            r = b[:, -2::-1] / b[:, -1:]
            color = plotting.OKABE_ITO[2 + k]
            plotting.median_band(ax, d_off, r, color,
                                 label=f"Gaussian, σ$_w^2$ × {f:g} (χ₁ = {chi:.3f})")
            plotting.mark_nonfinite(ax, d_off, r, color)
            ax.plot(d_off, chi**d_off, color="0.2", ls=":", lw=0.9, zorder=5,
                    label="mean field χ₁$^d$" if k == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layers back from the output, d")
        ax.set_ylabel(r"$\|\delta_{L-d}\|^2 / \|\delta_L\|^2$")
        ax.set_title(f"(a) gradients, C = {p['grad_channels']}: median, 10–90 %\n"
                     f"{p['seeds']} seeds (off-critical: {p['off_seeds']})", fontsize=7)
        ax.set_ylim(1e-6, 1e3)  # room below the curves for the legend
        ax.legend(fontsize=5, loc="lower left")

        ax = axes[1]
        depths = np.asarray(p["jac_depths"])
        grid = np.geomspace(1, max(depths) * 1.5, 50)
        c = p["jac_channels"]
        for init, weights in INITS.items():
            slope = theory.jacobian_spectrum_moments("tanh", sw2, SIGMA_B2, 1,
                                                     weights=weights).layer_slope
            ax.plot(grid, slope * grid, color=colors[init], lw=1.0, zorder=5,
                    label=f"free prob., {'s = 1' if weights == 'gaussian' else 's = 0'}")
            widths = _jac_widths(init, c)
            for w, marker in zip(widths, "os"):
                _, nvar = spectrum_moments(spectra[(init, w)])
                mean = nvar.mean(0)
                err = nvar.std(0, ddof=1) / math.sqrt(nvar.shape[0])
                ax.errorbar(depths, mean, yerr=err, fmt=marker, ms=3, color=colors[init],
                            mfc="none" if w != widths[0] else colors[init], lw=0.8,
                            label=f"{LABELS[init]}, C = {w}")
            if init == "delta_orthogonal":  # the claim's C → ∞ extrapolation
                _, wide = spectrum_moments(spectra[(init, 2 * c)])
                _, narrow = spectrum_moments(spectra[(init, c)])
                ax.plot(depths, (2 * wide - narrow).mean(0), "*", ms=5, color="0.2",
                        zorder=6, label=f"{LABELS[init]}, C → ∞ (from {2 * c}, {c})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1e3)  # room for the legend above the lines
        ax.set_xlabel("depth L")
        ax.set_ylabel("var λ / mean²")
        size = 2 * p["jac_channels"] * p["jac_positions"]
        ax.set_title(f"(b) Jacobian spectrum, N = {size}\nmean ± SE over seeds",
                     fontsize=7)
        ax.legend(fontsize=5, loc="upper left")

        ax = axes[2]
        deepest = max(depths)
        edges = np.linspace(-8, 2, 81)
        for init in INITS:
            s = spectra[(init, c)].sv2.sel(jacobian_depth=deepest).values.ravel()  # same C
            with np.errstate(divide="ignore"):
                logs = np.log10(s[np.isfinite(s) & (s > 0)])
            ax.hist(np.clip(logs, edges[0], edges[-1]), bins=edges, density=True,
                    histtype="step", color=colors[init], label=LABELS[init])
        ax.axvline(0.0, color="0.2", ls="--", lw=0.9, label="mean χ₁$^L$ = 1")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\log_{10}\lambda$ (clipped to the axis)")
        ax.set_ylabel("density")
        ax.set_title(f"(c) λ at depth {deepest}, C = {c}\nall seeds", fontsize=7)
        ax.legend(fontsize=5, loc="upper left")

        ax = axes[3]
        for init, ds in runs.items():
            loss = ds.loss.isel(point=0, learning_rate=0).values
            accuracy = float(np.nanmedian(_final(ds, "test_accuracy")))
            plotting.median_band(ax, np.arange(loss.shape[-1]), loss, colors[init],
                                 label=f"{LABELS[init]} (test accuracy {accuracy:.0%})")
        ax.axhline(math.log(10), color="0.4", ls=":", lw=0.9, label="ln 10 (chance)")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("minibatch loss")
        ax.set_title(f"(d) MNIST-1D, depth {p['train_depth']}, {p['train_channels']} "
                     f"channels\nSGD lr {LR:g}, AGC {AGC:.0e}; {p['train_seeds']} seeds",
                     fontsize=7)
        ax.legend(fontsize=5, loc="lower left")
        plotting.save_figure(fig, ctx.figures_dir, NAME)
