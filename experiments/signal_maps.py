"""C-maps of deep MLPs (Deep Kernel Shaping, Martens et al. 2021) and the TAT-tailored
leaky ReLU (Zhang et al. 2022): the measured correlation of two inputs through depth
against the composed mean-field C-map, and training on MNIST-1D.

Expectation, stated before measuring.  A layer ``h' = W φ(h)`` (σ_b² = 0) maps the
correlation ``c`` of two inputs' pre-activations through the C-map of φ, and an
``L``-layer network through the composition: the cosine similarity of the pair's ``h_l``
is ``C^{∘(l−1)}(c0)`` (h_1 = W_1 x is linear: its correlation is c0) in the infinite-width
limit (Poole et al. 2016; DKS Sec. 3; :func:`gradstudy.theory.composed_correlation_map`).
Every activation is Q-map normalised as in DKS/TAT: σ_w² = 1/E[φ(z)²], z ~ N(0, 1)
(ReLU 2, leaky ReLU 2/(1 + α²)), σ_b² = 0, and the inputs' mean square is 1/σ_w², so that
q = 1 at every layer (a fixed point of the Q-map; for tanh and softplus a stable one):

- ReLU (He) and leaky ReLU (slope 0.2): closed-form C-map (arc-cosine kernel), c → 1 with
  depth at an algebraic rate: ReLU's C^{∘49}(0) = 0.987 — every input looks alike;
- tanh (σ_w² = 2.54, χ₁ = 1.18 at q = 1: chaotic): c → c* = 0, inputs decorrelate;
- softplus (σ_w² = 1.09): its mean makes C(0) = 0.71, c → 1 within a few layers;
- TAT leaky ReLU: slope α solved so that C^{∘(L−1)}(0) = η = 0.9 (TAT's default), here
  for the map from the input to the last hidden layer h_L (L − 1 nonlinearities; α = 0.426
  at L = 50, the same as google-deepmind's ``dks`` package gives): c_L(0) = 0.9.

Claims (each measured number is the mean over seeds of the mean over 8 input pairs per
network; tolerance K_SE seed standard errors): c_3 and c_L against C^{∘2}(c0) and
C^{∘(L−1)}(c0) for each activation (c0 = 0; c0 = 0.5 for tanh, whose c0 = 0 is fixed by
symmetry; softplus only at layer 3, its c_L equals 1 to float32 rounding), and the
Q-map's fixed point q_L = 1 for tanh and softplus (not positively homogeneous, so q matters).
At finite width the mean correlation is shifted by O(l/width) (the neural covariance SDE,
Li, Nica & Roy 2022); a pilot at widths 128, 256 and 512 (32 seeds, 8 pairs) did not resolve
the shift against the seed spread at layers 3, 10 and 50 (all within 2.1 SE of the map), so
no finite-width term is added to the tolerances.  Paper scale: depth 50, width 256, 32 seeds.

Training (Adam, lr 1e-3, batch 64, the same for all; "trains" stated before running):
after S steps the training accuracy (first 1,000 training examples, mean over seeds) of
the TAT net and of a residual ReLU net (h + α f(h), α = 1/√(L − 1), He) is ≥ 0.5 (5×
chance; MNIST-1D MLPs reach 68 % test accuracy, Greydanus 2020), and the TAT net's
exceeds the plain He ReLU net's by ≥ 0.1: its kernel is degenerate (c_L ≈ 1 for all
inputs), which slows training without skips (DKS Sec. 2; TAT Sec. 3).  Scaled down from
the papers (ImageNet, K-FAC, 100k steps) to depth 50, width 128, S = 600 steps, 2 seeds
(3 in a first run, cut to 2 for the time budget);
the training claims are stated for that budget only (smoke scale trains the TAT net for
100 steps, for the figure, and claims nothing about training).
"""

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import MLPSpec, plotting, status, theory
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training, input_correlations
from gradstudy.nn import leaky_relu_with_slope
from gradstudy.studies import K_SE, Claim, mean_se, moving_average, tolerance

NAME = "signal_maps"
DESCRIPTION = "C-maps of deep MLPs (ReLU, leaky ReLU, tanh, softplus, TAT) measured " \
              "against the composed mean-field map; TAT vs ReLU vs residual on MNIST-1D"
NETS = ("TAT leaky ReLU", "plain ReLU (He)", "residual ReLU")  # trained on MNIST-1D
SCALES = {
    "smoke": {"depth": 20, "width": 128, "seeds": 8, "pairs": 4, "train_depth": 20,
              "train_width": 32, "train_seeds": 1, "steps": 100, "lr": 1e-3,
              "train_nets": ["TAT leaky ReLU"]},
    "paper": {"depth": 50, "width": 256, "seeds": 32, "pairs": 8, "train_depth": 50,
              "train_width": 128, "train_seeds": 2, "steps": 600, "lr": 1e-3,
              "train_nets": list(NETS)},
}
LIMITS = {"depth": (12, 200), "width": (16, 2048), "seeds": (4, 1024), "pairs": (1, 64),
          "train_depth": (12, 200), "train_width": (8, 1024), "train_seeds": (1, 16),
          "steps": (20, 100_000), "lr": (1e-6, 1.0),
          "train_nets": {"choices": NETS, "len": (1, 3), "distinct": True}}
ETA = 0.9  # TAT's target C_net(0)
C0 = (-0.5, 0.0, 0.5, 0.9)  # input correlations measured (the C-map panel's points)
MAP_GRID = np.linspace(-1, 0.999, 61)  # the C-map panel's input correlations
EARLY_LAYER = 3  # the claims' early layer: C^{∘2}(c0), where one layer more or less shows
LEAKY_SLOPE = 0.2
TRAINS = 0.5  # "trains": training accuracy at least this after the step budget
TAT_MARGIN = 0.1  # the TAT net's accuracy exceeds the plain ReLU net's by this
MIN_TRAIN_STEPS = 600  # the training claims are stated for this budget (not at smoke scale)
BATCH = 64
SOURCE_MAP = "mean field C-map composed over layers (Poole et al. 2016; Martens et al. 2021)"
SOURCE_TAT = "Zhang et al. 2022 (TAT: C_net(0) = η = 0.9)"
SOURCE_TRAIN = "Martens et al. 2021, Zhang et al. 2022 (degenerate kernels train slowly)"


def _activations(n_maps: int) -> dict:
    """{label: (activation for MLPSpec, σ_w² of the Q-map normalisation, negative slope
    of a leaky ReLU or None)}."""
    with jax.enable_x64(True):
        alpha = float(theory.tat_leaky_relu_slope(n_maps, ETA))
        unit = {name: float(1.0 / theory.length_map(name, 1.0, 1.0, 0.0))
                for name in ("tanh", "softplus")}
    return {"ReLU": ("relu", 2.0, 0.0),
            f"leaky ReLU {LEAKY_SLOPE:g}": ("leaky_relu_0.2", 2.0 / (1 + LEAKY_SLOPE**2),
                                            LEAKY_SLOPE),
            "tanh": ("tanh", unit["tanh"], None),
            "softplus": ("softplus", unit["softplus"], None),
            f"TAT (α = {alpha:.3f})": (leaky_relu_with_slope(alpha), 2.0 / (1 + alpha**2),
                                       alpha)}


def _predicted(act, sigma_w2, slope, n_maps):
    """Composed C-map (and Q-map) at the measured c0 and the C-map panel's grid: the
    closed form for leaky ReLUs (q = 1 throughout), quadrature otherwise."""
    with jax.enable_x64(True):
        values = jnp.concatenate([jnp.asarray(C0), jnp.asarray(MAP_GRID)])  # float64
        if slope is None:
            cs, qs = theory.composed_correlation_map(act, values, 1.0, sigma_w2, 0.0, n_maps)
        else:
            cs = theory.tat_leaky_relu_c_map_trajectory(values, slope, n_maps)
            qs = jnp.ones_like(cs)
    n = len(C0)
    return np.asarray(cs)[:, :n], np.asarray(qs)[:, :n], np.asarray(cs)[-1, n:]


def _spec(width, depth, in_dim, activation, sigma_w2, residual_alpha=None):
    return MLPSpec(width=width, depth=depth, in_dim=in_dim, out_dim=10,
                   activation=activation, init="gaussian", sigma_w=float(np.sqrt(sigma_w2)),
                   residual_alpha=residual_alpha)


def run(ctx, p):
    acts = _activations(p["depth"] - 1)
    measured, predicted = {}, {}
    for label, (act, s2w, slope) in acts.items():
        ds = input_correlations(_spec(p["width"], p["depth"], p["width"], act, s2w), C0,
                                p["seeds"], input_q=1.0 / s2w, pairs=p["pairs"],
                                cache_dir=ctx.results_dir, name=f"corr-{label.split()[0]}")
        measured[label] = ds
        predicted[label] = _predicted(act, s2w, slope, p["depth"] - 1)
    trained = _train(ctx, p)
    claims = _map_claims(p, acts, measured, predicted) + _train_claims(p, trained)
    ctx.extra.setdefault("measured", {}).update(_numbers(p, acts, measured, trained))
    _draw(ctx, p, acts, measured, predicted, trained)
    return claims


# ----------------------------------------------------------------------------- training
def _train(ctx, p):
    """{label: training Dataset} for those of the TAT, plain He ReLU and residual ReLU nets
    that ``p["train_nets"]`` names."""
    data = mnist1d(ctx.results_dir.parent / "data")
    depth, width = p["train_depth"], p["train_width"]
    with jax.enable_x64(True):
        alpha = float(theory.tat_leaky_relu_slope(depth - 1, ETA))
    in_dim = data.x.shape[1]
    nets = {"TAT leaky ReLU": _spec(width, depth, in_dim, leaky_relu_with_slope(alpha),
                                    2.0 / (1 + alpha**2)),
            "plain ReLU (He)": _spec(width, depth, in_dim, "relu", 2.0),
            "residual ReLU": _spec(width, depth, in_dim, "relu", 2.0,
                                   residual_alpha=float(1 / np.sqrt(depth - 1)))}
    steps = p["steps"]
    return {label: ctx.train(
        Training(points=(spec,), labels=(label,), optimizer=OptimizerSpec("adam", p["lr"]),
                 steps=steps, seeds=p["train_seeds"], batch_size=BATCH,
                 eval_every=max(1, steps // 6), record_every=steps),
        data, tag=f"train-{label.split()[0]}") for label, spec in nets.items()
        if label in p["train_nets"]}


def _final_accuracy(ds) -> np.ndarray:
    """(seeds,) training accuracy after the last step; a diverged run counts as chance."""
    final = ds.train_accuracy.isel(point=0, learning_rate=0, eval_step=-1).values
    return np.where(np.isfinite(final), final, 0.1)


# ------------------------------------------------------------------------------ claims
def _per_seed(ds, layer, c0):
    """(seeds,) mean over the pairs of the cosine at ``layer`` (1-based) for input ``c0``."""
    return ds.cosine.sel(layer=layer, c0=c0).mean("pair").values


def _claim_points(p, label):
    """The (layer, c0) of the C-map claims of one activation."""
    c0 = 0.5 if label == "tanh" else 0.0
    layers = (EARLY_LAYER,) if label == "softplus" else (EARLY_LAYER, p["depth"])
    return [(layer, c0) for layer in layers]


def _map_claims(p, acts, measured, predicted):
    claims = []
    for label in acts:
        key = label.split()[0].lower()
        cs, qs, _ = predicted[label]
        for layer, c0 in _claim_points(p, label):
            mean, se = mean_se(_per_seed(measured[label], layer, c0))
            expected = float(cs[layer - 1, C0.index(c0)])
            is_tat = key == "tat" and layer == p["depth"]
            claims.append(Claim(
                "tat_keeps_eta" if is_tat else f"{key}_c{'L' if layer == p['depth'] else layer}",
                f"{label}, width {p['width']}: cosine of two inputs (c0 = {c0:g}) at layer "
                f"{layer} is the composed C-map C^{{∘{layer - 1}}}(c0) = {expected:.3f}"
                + (" (= η, α solved for it)" if is_tat else "") + f" ({K_SE:g} SE)",
                mean, expected, tolerance(se), SOURCE_TAT if is_tat else SOURCE_MAP))
        if label in ("tanh", "softplus"):
            q = measured[label].mean_square.sel(layer=p["depth"]).mean(("c0", "pair", "input"))
            mean, se = mean_se(q.values)
            claims.append(Claim(
                f"{key}_qL", f"{label}: mean square of h_L (layer {p['depth']}) is the "
                f"Q-map's fixed point q = {float(qs[-1, 0]):.3f} ({K_SE:g} SE)", mean,
                float(qs[-1, 0]), tolerance(se), "mean field Q-map (Poole et al. 2016)"))
    return claims


def _train_claims(p, trained):
    if p["steps"] < MIN_TRAIN_STEPS or set(trained) != set(NETS):
        return []
    tat, relu, res = (_final_accuracy(trained[k]) for k in
                      ("TAT leaky ReLU", "plain ReLU (He)", "residual ReLU"))
    d, s = p["train_depth"], p["steps"]
    return [
        Claim("train_tat", f"depth {d}: the TAT leaky-ReLU MLP trains (training accuracy "
              f"after {s} Adam steps, mean over seeds, ≥ {TRAINS:g})", float(np.mean(tat)),
              TRAINS, 0.0, SOURCE_TRAIN, kind="range", upper=1.0),
        Claim("train_residual", f"depth {d}: the residual ReLU MLP trains (≥ {TRAINS:g} "
              f"after {s} steps)", float(np.mean(res)), TRAINS, 0.0, SOURCE_TRAIN,
              kind="range", upper=1.0),
        Claim("train_tat_beats_relu", f"depth {d}: TAT's training accuracy exceeds the plain "
              f"He ReLU MLP's by at least {TAT_MARGIN:g} after {s} steps",
              float(np.mean(tat) - np.mean(relu)), TAT_MARGIN, 0.0, SOURCE_TRAIN,
              kind="range", upper=1.0),
    ]


def _numbers(p, acts, measured, trained) -> dict:
    """Numbers the paper quotes besides the claims."""
    out = {f"final_accuracy_{k.split()[0].lower()}": float(np.mean(_final_accuracy(ds)))
           for k, ds in trained.items()}
    out["tat_slope"] = next(slope for k, (_, _, slope) in acts.items() if k.startswith("TAT"))
    for k in ("tanh", "softplus"):
        out[f"sigma_w2_{k}"] = acts[k][1]
    with jax.enable_x64(True):  # the numbers the expectation quotes (q = 1 throughout)
        out["chi1_tanh"] = float(theory.chi1("tanh", 1.0, acts["tanh"][1]))
        out["softplus_c_map_at_0"] = float(theory.correlation_map(
            "softplus", 1.0, 0.0, acts["softplus"][1], 0.0))
    return out


# ----------------------------------------------------------------------------- figure
def _draw(ctx, p, acts, measured, predicted, trained):
    with plotting.style():
        fig, axes = plotting.figure("double", 3.6, ncols=3)
        _draw_layers(axes[0], p, acts, measured, predicted)
        _draw_cmaps(axes[1], p, acts, measured, predicted)
        _draw_training(axes[2], p, trained)
        plotting.panel_titles(axes, ["correlation through depth",
                                     f"network C-map, depth {p['depth']}",
                                     f"MNIST-1D, depth {p['train_depth']}"])
        for ax in axes:  # legends under the panels: every curve spans the whole panel
            ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        fig.tight_layout()
        plotting.save_figure(fig, ctx.figures_dir, NAME)


def _draw_layers(ax, p, acts, measured, predicted):
    layers = np.arange(1, p["depth"] + 1)
    for i, label in enumerate(acts):
        color = plotting.OKABE_ITO[i]
        c0 = _claim_points(p, label)[0][1]
        per_seed = measured[label].cosine.sel(c0=c0).mean("pair").values  # (seed, layer)
        plotting.median_band(ax, layers, per_seed, color, positive=False, lw=1.6, alpha=0.8,
                             label=f"{label}, c0 = {c0:g} (median, 10–90 %)")
        # a cosine of exactly 0 is a value, not underflow: only inf/NaN are marked
        plotting.mark_nonfinite(ax, layers, per_seed, color, status.classify(
            per_seed, np.isfinite(per_seed), structural_zero=True))
        ax.plot(layers, predicted[label][0][:, C0.index(c0)], color="k", lw=0.7, ls="--")
    ax.plot([], [], color="k", lw=0.7, ls="--", label="composed C-map (theory)")
    ax.axhline(ETA, color="0.6", lw=0.6, ls=":", label=f"TAT target η = {ETA:g}")
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"cosine similarity of $h_l$")
    ax.set_ylim(-0.1, 1.05)


def _draw_cmaps(ax, p, acts, measured, predicted):
    """1 − C_net(c0) on a log axis: the maps differ by decades near c = 1."""
    floor = 1e-4
    for i, label in enumerate(acts):
        color = plotting.OKABE_ITO[i]
        ax.plot(MAP_GRID, 1 - predicted[label][2], color=color, lw=1.0, zorder=3, label=label)
        final = measured[label].cosine.sel(layer=p["depth"]).mean("pair").values  # (seed, c0)
        gap = np.nanmean(1 - final, axis=0)
        se = np.nanstd(final, axis=0, ddof=1) / np.sqrt(final.shape[0])
        resolved = gap > floor
        ax.errorbar(np.asarray(C0)[resolved], gap[resolved], yerr=K_SE * se[resolved],
                    fmt="o", ms=3, color=color, zorder=2)
        if not resolved.all():  # e.g. softplus: 1 − c below float32 resolution
            ax.plot(np.asarray(C0)[~resolved], np.full((~resolved).sum(), floor * 1.15), "v",
                    ms=4, color=color, zorder=4, label=f"{label}: measured 1 − c < {floor:g}")
    ax.plot([], [], "o", color="0.3", ms=3, label=f"measured (±{K_SE:g} SE), lines: theory")
    ax.set_yscale("log")
    ax.set_ylim(floor, 3)
    ax.set_xlabel("input correlation c0")
    ax.set_ylabel(f"1 − cosine at layer {p['depth']}")


def _draw_training(ax, p, trained):
    for label, ds in trained.items():
        color = plotting.OKABE_ITO[[4, 0, 2][NETS.index(label)]]
        acc = ds.accuracy.isel(point=0, learning_rate=0).values  # (seed, step)
        window = max(1, p["steps"] // 20)
        smooth = np.stack([moving_average(a, window) for a in acc])
        steps = np.arange(smooth.shape[1]) + window
        ax.plot(steps, np.nanmean(smooth, axis=0), color=color, lw=1.2,
                label=f"{label}: minibatch, smoothed")
        evals = ds.eval_step.values
        ax.plot(evals, np.nanmean(ds.train_accuracy.isel(point=0, learning_rate=0).values,
                                  axis=0), "o", color=color, ms=3)
        diverged = ds.diverged_at.isel(point=0, learning_rate=0).values
        ax.plot(diverged[diverged >= 0], np.full((diverged >= 0).sum(), 0.03), "x",
                color=color, ms=5)
    ax.plot([], [], "o", color="0.3", ms=3, label="training accuracy (eval, seed mean)")
    if any((ds.diverged_at.values >= 0).any() for ds in trained.values()):
        ax.plot([], [], "x", color="0.3", ms=5, label="a run diverged (non-finite loss)")
    ax.axhline(TRAINS, color="0.6", lw=0.6, ls=":", label=f"“trains”: ≥ {TRAINS:g}")
    ax.axhline(0.1, color="0.8", lw=0.6, label="chance")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
