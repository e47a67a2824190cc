"""Hanin (2018), Hanin & Nica (2019): at finite width, log-norms of a ReLU He network's
activations and gradients fluctuate from network to network with a variance set by
β = Σ_l 1/n_l, not by depth alone; mean field (the infinite-width limit) sees none of it.

Expectation, stated before measuring (gradstudy.theory._finite_width; derived there and
checked against NumPy networks in tests/theory/test_finite_width.py).  ReLU, W_l ~ N(0,
2/fan_in), σ_b = 0, in_dim = width n, one input x ~ N(0, I) per network (batch 1).  Given
x_(l−1), ‖x_l‖²/‖x_(l−1)‖² = (2/n) χ²_k with k ~ Binomial(n, ½) (the active units),
independent across layers; so F = log(‖x_L‖²/‖x_0‖²) is a sum of L independent terms:
first order (in 1/n) E F = −5β/2, Var F = 5β; exactly E F = L(E_k ψ(k/2) + log 4/n),
Var F = L(E_k ψ'(k/2) + Var_k ψ(k/2)), given that no layer is dead (k = 0, probability
2^−n per layer: a dead network, F = −∞, counted separately).  The back-propagated gradient
with an output cotangent independent of the network (loss ⟨y, t⟩), B = log(‖δ_(D−m)‖²/
‖δ_D‖²) over m layers below the top of a depth-D network (δ_l = ∂L/∂h_l), has the same law
with β = m/n.  Pairs (n, L) at equal β collapse onto one curve to first order; the exact
law puts widths apart by O(1/n) (at n = 8 the variance per unit β is 10.0, at 64 it is
5.3).  Mean field predicts E ‖x_L‖²/‖x_0‖² = 1, so the median vanishes like e^(−5β/4) while
the mean stays 1: depth ≫ width vanishes (or explodes) per seed even at criticality.

Setup: widths ``widths``; per width one network depth βmax·n + 1 (the first L = βn layers
are the depth-L network forward; the backward ratio runs over the top m = βn layers), all
``seeds`` networks of a width one jitted program (gradstudy.engine.signal_log_norms, seeds
vmapped in memory-bounded chunks).  The deep case: width ``deep_width`` to depth
``deep_beta``·n.  The first-order form is tested at width ``fo_width`` (β = 1/4), where its
O(1/n) error is a fraction of the tolerance.

Claims (K_SE = 4 standard errors from the spread over seeds; never widened):
  * var_n<n>, mean_n<n>: Var F and E F at the largest β of each width against the exact law
    (SE of a variance √((m₄ − s⁴)/N)).  Xavier instead of He moves E F by L log 2 and
    width/2 for width doubles Var F: both fail.
  * var_n<n>_shallow, backward_var_n<n>_shallow: Var F and Var B at the smallest β (βn
    layers; one layer off is 25–50 % of it at n ≤ 16).
  * backward_var_n<n>, backward_mean_n<n>: the same for B at the largest β.
  * first_order_var, first_order_mean: Var F = 5β and E F = −5β/2 at width ``fo_width``.
  * ks_n<n>: log-normality, stated test: the Kolmogorov–Smirnov distance between F and the
    normal law with the exact mean and variance (fully specified: no parameter fitted, so
    the finite-N Kolmogorov distribution gives the critical value) is below its 1 %
    critical value at the seed count; at the largest β of each width where the exact law's
    own distance from that normal is below half the critical value (n ≥ 16 here: at n = 8,
    β = 4 it is 0.024, at the critical value of 4,000 networks, so log-normality is not
    claimed there and the skewness claims test the departure instead).
  * skewness_deep, kurtosis_deep: at width ``deep_width`` the exact law is not log-normal;
    its skewness and excess kurtosis are predicted (SE √(6/N), √(24/N)).
  * dead_fraction_deep: the fraction of dead networks against 1 − (1 − 2^−n)^L.
  * beyond_decade_deep: the fraction of networks whose ‖x_L‖/‖x_0‖ is beyond ±1 decade
    (dead ones included, as vanished) against the exact law (2·10⁵ draws of it; binomial SE).

Also measured (ctx.extra["measured"]): how much of depth_profile's paper configuration's
seed-to-seed spread (ReLU, He, width 256, depth 64, MSE, 16 seeds, batch 32: the same
networks, measured by signal_log_norms) finite width predicts: the spread with MSE and with
⟨y, t⟩ (finite width's alone), the per-example spread against the exact law, and the
bracket [÷√32, ×1] for the batch norm; kept apart from depth_profile's median excess (a
shift up, the readout residual's; finite width shifts the median down).

Scale: Hanin & Nica's theorems are asymptotic; the widths here (8–64, fo 128) and 4,000
networks each keep the study within 2 minutes on 2 CPU cores.
"""

import math

import numpy as np
from matplotlib.ticker import FormatStrFormatter, NullFormatter
from scipy import stats

from gradstudy import MLPSpec, plotting
from gradstudy.engine import signal_log_norms
from gradstudy.studies import K_SE, Claim, tolerance
from gradstudy.theory import (
    LogNormMoments,
    relu_backward_log_norm_moments,
    relu_log_norm_moments,
    relu_log_norm_moments_first_order,
    sample_relu_log_norm,
)

NAME = "finite_width"
DESCRIPTION = "finite-width log-norm fluctuations of ReLU nets vs β = Σ 1/n (Hanin; Hanin & Nica)"
SCALES = {
    "smoke": {"widths": [8, 16], "betas": [0.25, 1.0, 2.0], "seeds": 1000, "deep_width": 8,
              "deep_beta": 4.0, "fo_width": 64, "profile": [64, 16, 4, 16]},
    "paper": {"widths": [8, 16, 32, 64], "betas": [0.25, 0.5, 1.0, 2.0, 4.0], "seeds": 4000,
              "deep_width": 8, "deep_beta": 8.0, "fo_width": 128,
              "profile": [256, 64, 16, 32]},
}
LIMITS = {
    "widths": {"range": (4, 256), "len": (1, 6), "distinct": True, "increasing": True},
    "betas": {"range": (0.0625, 16.0), "len": (2, 8), "distinct": True, "increasing": True},
    "seeds": (100, 100_000),
    "deep_width": (2, 64),
    "deep_beta": (0.25, 32.0),
    "fo_width": (16, 512),
    # depth_profile's configuration: width, depth, seeds, batch
    "profile": {"range": (1, 1024), "len": (4, 4)},
}
SOURCE = ("exact finite-width law of ReLU log-norms (χ²_k, k ~ Bin(n, ½) per layer), "
          "gradstudy.theory; Hanin 2018, Hanin & Nica 2019")
FO_SOURCE = "first order in 1/n: Var = 5β, mean = −5β/2 (Hanin 2018; Hanin & Nica 2019)"
KS_ALPHA = 0.01
THEORY_DRAWS = 200_000
LN10 = math.log(10.0)


def _spec(width: int, depth: int) -> MLPSpec:
    return MLPSpec(width=width, depth=depth, in_dim=width, activation="relu",
                   init="he_normal", dtype="float32")


def _layers(beta: float, n: int) -> int:
    """β·n rounded to whole layers, at least one (exact for the scales' values); every
    prediction is made for the layer count actually measured, so rounding moves no claim."""
    return max(1, int(round(beta * n)))


def run(ctx, p):
    betas = np.asarray(p["betas"], float)
    forward, backward = {}, {}
    for n in p["widths"]:
        depth = _layers(betas[-1], n) + 1
        # base seed n: no two widths (nor the deep and first-order runs, seeds 1 and 2)
        # draw from the same keys
        ds = signal_log_norms(_spec(n, depth), p["seeds"], base_seed=n,
                              cache_dir=ctx.results_dir, name=f"{NAME}_n{n}")
        fwd = ds.forward_log_sq_norm.values[:, 0]  # (seed, layer 0..depth)
        bwd = ds.backward_log_sq_norm.values[:, 0]
        forward[n] = np.stack([fwd[:, _layers(b, n)] - fwd[:, 0] for b in betas], 1)
        with np.errstate(invalid="ignore"):
            backward[n] = np.stack([bwd[:, depth - _layers(b, n)] - bwd[:, depth]
                                    for b in betas], 1)
    nd = p["deep_width"]
    deep_depth = _layers(p["deep_beta"], nd)
    deep = signal_log_norms(_spec(nd, deep_depth), p["seeds"], base_seed=1,
                            cache_dir=ctx.results_dir, name=f"{NAME}_deep")
    deep_fwd = deep.forward_log_sq_norm.values[:, 0]
    deep_fwd = deep_fwd - deep_fwd[:, :1]  # (seed, layer 0..L) log ‖x_l‖²/‖x_0‖²
    nf = p["fo_width"]
    fo = signal_log_norms(_spec(nf, _layers(0.25, nf)), p["seeds"], base_seed=2,
                          cache_dir=ctx.results_dir, name=f"{NAME}_first_order")
    fo_fwd = fo.forward_log_sq_norm.values[:, 0]
    fo_ratio = fo_fwd[:, -1] - fo_fwd[:, 0]

    claims = []
    for n in p["widths"]:
        claims += _width_claims(n, betas, forward[n], backward[n])
    claims += _first_order_claims(nf, fo_ratio)
    claims += _deep_claims(nd, deep_depth, deep_fwd[:, -1])
    ctx.extra.setdefault("measured", {}).update(
        {"depth_profile_spread": _depth_profile_spread(ctx, *p["profile"])})
    ctx.extra["measured"]["variance_per_beta"] = {
        str(n): float(np.var(_alive(forward[n][:, -1]), ddof=1) / betas[-1])
        for n in p["widths"]}
    _draw(ctx, p, betas, forward, backward, deep_fwd)
    return claims


# ----------------------------------------------------------------------- statistics
def _alive(x) -> np.ndarray:
    """The finite values (a dead network's −∞ left out: the law is of the live ones)."""
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def _var_se(x) -> tuple[float, float]:
    """Sample variance and its standard error √((m₄ − s⁴)/N) (any distribution)."""
    x = _alive(x)
    var = float(np.var(x, ddof=1))
    m4 = float(np.mean((x - x.mean()) ** 4))
    return var, math.sqrt(max(m4 - var**2, 0.0) / x.size)


def _mean_se(x) -> tuple[float, float]:
    x = _alive(x)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def _forward_law(n: int, layers: int) -> LogNormMoments:
    return relu_log_norm_moments((n,) * (layers + 1))


def _backward_law(n: int, layers: int) -> LogNormMoments:
    return relu_backward_log_norm_moments((n,) * (layers + 1))


# --------------------------------------------------------------------------- claims
def _width_claims(n, betas, forward, backward):
    """Var and mean at the largest β (forward, backward), Var at the smallest, KS."""
    big, small = _layers(betas[-1], n), _layers(betas[0], n)
    law, law_small, back = _forward_law(n, big), _forward_law(n, small), _backward_law(n, big)
    claims = []
    for cid, layers, data, expected in [
            (f"var_n{n}", big, forward[:, -1], law),
            (f"var_n{n}_shallow", small, forward[:, 0], law_small),
            (f"backward_var_n{n}", big, backward[:, -1], back),
            (f"backward_var_n{n}_shallow", small, backward[:, 0], _backward_law(n, small))]:
        var, se = _var_se(data)
        what = (f"log ‖δ_(D−m)‖²/‖δ_D‖² over m={layers} layers" if cid.startswith("backward")
                else f"log ‖x_L‖²/‖x_0‖², L={layers}")
        claims.append(Claim(cid, f"width {n}, β={layers / n:g}: Var {what} (SE {se:.2g}) "
                            f"matches the exact finite-width law within {K_SE:g} SE", var,
                            expected.var, tolerance(se), SOURCE))
    for cid, data, expected, kind in [
            (f"mean_n{n}", forward[:, -1], law, "log ‖x_L‖²/‖x_0‖²"),
            (f"backward_mean_n{n}", backward[:, -1], back, "log ‖δ_(D−m)‖²/‖δ_D‖²")]:
        mean, se = _mean_se(data)
        claims.append(Claim(cid, f"width {n}, β={betas[-1]:g}: mean {kind} (SE {se:.2g}) "
                            f"matches the exact finite-width law within {K_SE:g} SE", mean,
                            expected.mean, tolerance(se), SOURCE))
    ks = _ks_claim(f"ks_n{n}", n, big, forward[:, -1], law)
    return claims + ([ks] if ks is not None else [])


KS_LAW_DRAWS = 50_000  # its own distance to ±0.004: enough to compare with critical / 2


def ks_law_distance(n: int, layers: int, draws: int = KS_LAW_DRAWS) -> float:
    """The exact law's own Kolmogorov–Smirnov distance from the normal law of its mean and
    variance (from ``draws`` draws of it): how far from log-normal finite width predicts."""
    law = _forward_law(n, layers)
    x = sample_relu_log_norm((n,) * (layers + 1), draws, seed=1)
    return float(stats.kstest((x - law.mean) / law.std, "norm").statistic)


def _ks_claim(cid, n, layers, data, law):
    """Log-normality where the exact law predicts it at this seed count: its own distance
    from the normal below half the critical value (None elsewhere: there the exact law
    itself is distinguishably not log-normal, which the skewness claims test)."""
    x = _alive(data)
    critical = float(stats.kstwo.ppf(1 - KS_ALPHA, x.size))
    if ks_law_distance(n, layers) >= critical / 2:
        return None
    distance = float(stats.kstest((x - law.mean) / law.std, "norm").statistic)
    return Claim(cid, f"width {n}, β={layers / n:g}: log-normal — the Kolmogorov–Smirnov "
                 f"distance of log ‖x_L‖²/‖x_0‖² from the normal law with the exact mean and "
                 f"variance (nothing fitted) is below its {KS_ALPHA:.0%} critical value at "
                 f"N={x.size}", distance, critical, 0.0, "Kolmogorov–Smirnov test (finite-N "
                 "Kolmogorov distribution, scipy.stats.kstwo); moments from the exact law",
                 kind="less")


def _first_order_claims(n, data):
    depth = _layers(0.25, n)  # β = 1/4 where n is a multiple of 4
    beta = depth / n
    mean1, var1 = relu_log_norm_moments_first_order((n,) * (depth + 1))
    var, se_var = _var_se(data)
    mean, se_mean = _mean_se(data)
    return [Claim("first_order_var", f"width {n}, L={depth} (β={beta:g}): Var log ‖x_L‖²/‖x_0‖² "
                  f"(SE {se_var:.2g}) is 5β within {K_SE:g} SE", var, var1, tolerance(se_var),
                  FO_SOURCE),
            Claim("first_order_mean", f"width {n}, β={beta:g}: mean log ‖x_L‖²/‖x_0‖² "
                  f"(SE {se_mean:.2g}) is −5β/2 within {K_SE:g} SE", mean, mean1,
                  tolerance(se_mean), FO_SOURCE)]


def _deep_claims(n, depth, data):
    """Depth ≫ width: shape of the law, dead networks, networks beyond ±1 decade."""
    law = _forward_law(n, depth)
    x = _alive(data)
    beta = depth / n
    skew_se, kurt_se = math.sqrt(6 / x.size), math.sqrt(24 / x.size)
    dead = float(np.mean(np.isneginf(data)))
    dead_se = math.sqrt(law.p_dead * (1 - law.p_dead) / data.size)
    draws = sample_relu_log_norm((n,) * (depth + 1), THEORY_DRAWS, seed=0)
    # ‖x_L‖/‖x_0‖ beyond ±1 decade: |F| > 2 ln 10; dead networks have vanished
    p_beyond = law.p_dead + (1 - law.p_dead) * float(np.mean(np.abs(draws) > 2 * LN10))
    beyond = float(np.mean(~np.isfinite(data) | (np.abs(data) > 2 * LN10)))
    beyond_se = math.sqrt(p_beyond * (1 - p_beyond) / data.size)
    mc_se = math.sqrt(p_beyond * (1 - p_beyond) / THEORY_DRAWS)
    tag = f"width {n}, depth {depth} (β={beta:g})"
    return [
        Claim("skewness_deep", f"{tag}: skewness of log ‖x_L‖²/‖x_0‖² (SE {skew_se:.2g}) "
              f"matches the exact law's {law.skewness:.3f} (log-normal: 0) within {K_SE:g} SE",
              float(stats.skew(x)), law.skewness, tolerance(skew_se), SOURCE),
        Claim("kurtosis_deep", f"{tag}: excess kurtosis (SE {kurt_se:.2g}) matches the exact "
              f"law's {law.excess_kurtosis:.3f} within {K_SE:g} SE", float(stats.kurtosis(x)),
              law.excess_kurtosis, tolerance(kurt_se), SOURCE),
        Claim("dead_fraction_deep", f"{tag}: fraction of networks with a dead layer (every "
              f"unit off; SE {dead_se:.2g}) is 1 − (1 − 2^−n)^L within {K_SE:g} SE", dead,
              law.p_dead, tolerance(dead_se), SOURCE),
        Claim("beyond_decade_deep", f"{tag}, at criticality (mean field: ‖x_L‖ = ‖x_0‖): "
              f"fraction of networks whose ‖x_L‖/‖x_0‖ lies beyond ×/÷10 (dead included; SE "
              f"{beyond_se:.2g}) matches the exact law ({THEORY_DRAWS:,} draws) within "
              f"{K_SE:g} SE", beyond, p_beyond, tolerance(beyond_se, mc_se), SOURCE)]


# ------------------------------------------------------- depth_profile's configuration
def _depth_profile_spread(ctx, width, depth, seeds, batch) -> dict:
    """depth_profile's ReLU + He configuration (its networks: the same spec, seeds, batch
    and base seed, drawn as a sweep draws them) with its MSE loss and with ⟨y, t⟩: the
    seed-to-seed standard deviation of log10 ‖δ_1‖/‖δ_L‖ (norms over the batch, as
    depth_profile's) and of its per-example counterpart, against finite width's.

    Finite width predicts, for one example and an independent cotangent, the exact law of
    L − 1 backward layers; a batch of B examples (correlated through the shared weights)
    sums the squared norms, so the batch statistic's SD lies between that of independent
    examples (÷√B) and that of one example."""
    spec = MLPSpec(width=width, depth=depth, activation="relu", init="he_normal",
                   sigma_w=1.0, dtype="float64")
    out = {}
    for loss in ("mse", "linear"):
        ds = signal_log_norms(spec, seeds, batch, loss=loss, cache_dir=ctx.results_dir,
                              name=f"{NAME}_profile_{loss}")
        bwd = ds.backward_log_sq_norm.values  # (seed, example, layer 0..depth)
        with np.errstate(invalid="ignore"):
            per_example = (bwd[:, :, 1] - bwd[:, :, depth]) / 2 / LN10
            # ‖δ_l‖² over batch and units: the sum of the examples' squared norms
            batch_ratio = (_logsumexp(bwd[:, :, 1]) - _logsumexp(bwd[:, :, depth])) / 2 / LN10
        finite = _alive(batch_ratio)
        out[f"sd_{loss}"] = float(np.std(finite, ddof=1))
        # standard error of a standard deviation from N normal samples: s/√(2(N − 1))
        out[f"sd_se_{loss}"] = out[f"sd_{loss}"] / math.sqrt(2 * (finite.size - 1))
        out[f"median_{loss}"] = float(np.median(finite))
        # one example per network: the first (the examples of a network are correlated)
        out[f"sd_per_example_{loss}"] = float(np.std(_alive(per_example[:, 0]), ddof=1))
        out[f"sd_pooled_examples_{loss}"] = float(np.std(_alive(per_example), ddof=1))
    law = _backward_law(width, depth - 1)
    out["sd_finite_width_one_example"] = law.std / 2 / LN10
    out["sd_finite_width_independent_examples"] = law.std / 2 / LN10 / math.sqrt(batch)
    out["median_shift_finite_width"] = law.mean / 2 / LN10  # decades, below mean field
    # the independent-cotangent spread is finite width's alone (mean field: none); its
    # share of the MSE spread's variance
    out["variance_fraction_finite_width"] = (out["sd_linear"] / out["sd_mse"]) ** 2
    out["beta"] = (depth - 1) / width
    return out


def _logsumexp(x) -> np.ndarray:
    """log Σ exp over the last axis (−inf where every entry is −inf)."""
    top = np.max(x, axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    return safe + np.log(np.sum(np.exp(x - safe[..., None]), axis=-1))


# --------------------------------------------------------------------------- figure
def _draw(ctx, p, betas, forward, backward, deep_fwd):
    with plotting.style():
        fig, axes = plotting.figure("double", 5.6, nrows=2, ncols=2)
        _draw_moments(axes[0, 0], axes[0, 1], p, betas, forward, backward)
        _draw_histograms(axes[1, 0], p, betas, forward)
        _draw_trajectories(axes[1, 1], p, deep_fwd)
        plotting.panel_titles(axes.flat, ["variance over networks", "mean over networks",
                                          "distribution at the largest β",
                                          "depth ≫ width, network by network"])
        fig.tight_layout()
        plotting.save_figure(fig, ctx.figures_dir, NAME)


def _draw_moments(ax_var, ax_mean, p, betas, forward, backward):
    fine = np.geomspace(betas[0], betas[-1], 50)
    ax_var.plot(fine, 5 * fine, color="0.1", ls="--", lw=0.9, zorder=5, label="first order 5β")
    ax_mean.plot(fine, 2.5 * fine, color="0.1", ls="--", lw=0.9, zorder=5,
                 label="first order 5β/2")
    for k, n in enumerate(p["widths"]):
        color = plotting.OKABE_ITO[k]
        layers = [_layers(b, n) for b in betas]
        exact = [_forward_law(n, m) for m in layers]
        for data, marker, fill in [(forward[n], "o", color), (backward[n], "s", "white")]:
            var = [_var_se(data[:, j]) for j in range(len(betas))]
            mean = [_mean_se(data[:, j]) for j in range(len(betas))]
            ax_var.errorbar(betas, [v for v, _ in var], [K_SE * s for _, s in var], fmt=marker,
                            color=color, mfc=fill, ms=3.5, lw=0.8, zorder=3)
            ax_mean.errorbar(betas, [-m for m, _ in mean], [K_SE * s for _, s in mean],
                             fmt=marker, color=color, mfc=fill, ms=3.5, lw=0.8, zorder=3)
        # the exact law is linear in the number of layers: a line per width, drawn on top
        ax_var.plot(betas, [m.var for m in exact], color=color, lw=1.0, zorder=4,
                    label=f"n = {n}")
        ax_mean.plot(betas, [-m.mean for m in exact], color=color, lw=1.0, zorder=4)
    ax_var.plot([], [], "o", color="0.4", ms=3.5, label="forward, measured")
    ax_var.plot([], [], "s", color="0.4", mfc="white", ms=3.5, label="backward, measured")
    ax_var.plot([], [], color="0.4", lw=1.0, label="exact law (line per width)")
    for ax in (ax_var, ax_mean):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(betas, [f"{b:g}" for b in betas])
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if lo <= t <= hi])
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"$\beta = \sum_l 1/n_l$ (forward: $L/n$; backward: $m/n$)")
    ax_var.set_ylabel(r"Var $\log(\|x_L\|^2/\|x_0\|^2)$")
    ax_mean.set_ylabel(r"$-$E $\log(\|x_L\|^2/\|x_0\|^2)$")
    ax_var.legend(fontsize=6, loc="upper left")
    ax_mean.legend(fontsize=6, loc="upper left")


def _draw_histograms(ax, p, betas, forward):
    """log10 ‖x_L‖/‖x_0‖ at the largest β for the narrowest and widest width, with the
    exact law (a histogram of its draws) and the normal of the exact moments over them."""
    shown = (0, len(p["widths"]) - 1)
    values = np.concatenate([_alive(forward[p["widths"][k]][:, -1]) for k in shown]) / 2 / LN10
    lo, hi = np.floor(np.percentile(values, 0.1)), np.ceil(np.percentile(values, 99.9)) + 1
    edges = np.linspace(lo, hi, int(8 * (hi - lo)) + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    for k in shown:
        n = p["widths"][k]
        color = plotting.OKABE_ITO[k]
        layers = _layers(betas[-1], n)
        x = _alive(forward[n][:, -1]) / 2 / LN10
        ax.hist(x, edges, density=True, color=color, alpha=0.35,
                label=f"n = {n}, L = {layers}: measured")
        draws = sample_relu_log_norm((n,) * (layers + 1), 200_000, seed=k) / 2 / LN10
        ax.stairs(np.histogram(draws, edges, density=True)[0], edges, color="0.1", lw=0.9,
                  zorder=4)
        law = _forward_law(n, layers)
        ax.plot(centers, stats.norm.pdf(centers, law.mean / 2 / LN10,
                                        law.std / 2 / LN10), color=color, ls=":", lw=1.2,
                zorder=5)
    ax.plot([], [], color="0.1", lw=0.9, label="exact law")
    ax.plot([], [], color="0.4", ls=":", lw=1.2, label="normal, exact moments")
    ax.axvline(0, color="0.5", lw=0.6, zorder=1)
    ax.set_xlabel(rf"$\log_{{10}}\|x_L\|/\|x_0\|$ at $\beta$ = {betas[-1]:g}")
    ax.set_ylabel("density")
    ax.legend(fontsize=6, loc="upper left")


DIED_AT = -13.0  # where the trajectories panel marks the layer a network died at


def _draw_trajectories(ax, p, deep_fwd, shown=40):
    n = p["deep_width"]
    depth = deep_fwd.shape[1] - 1
    layers = np.arange(depth + 1)
    decades = deep_fwd / 2 / LN10
    for s in range(min(shown, decades.shape[0])):
        row = decades[s]
        alive = np.isfinite(row)
        ax.plot(layers[alive], row[alive], color="0.55", lw=0.4, zorder=2)
        if not alive.all():  # the layer where it died, at the bottom of the axis
            ax.plot(layers[~alive][0], DIED_AT, "v", color=plotting.OKABE_ITO[3], ms=3,
                    zorder=3)
    laws = [_forward_law(n, m) for m in layers[1:]]
    mean = np.array([0.0] + [m.mean for m in laws]) / 2 / LN10
    sd = np.array([0.0] + [m.std for m in laws]) / 2 / LN10
    ax.fill_between(layers, mean - 2 * sd, mean + 2 * sd, color=plotting.OKABE_ITO[0],
                    alpha=0.25, zorder=1, label="exact law: mean ± 2 SD")
    ax.plot(layers, mean, color=plotting.OKABE_ITO[0], lw=1.2, zorder=4)
    ax.axhline(0, color="0.1", ls="--", lw=0.8, zorder=4, label="mean field (χ = 1)")
    ax.plot([], [], color="0.55", lw=0.4, label=f"{shown} networks")
    ax.plot([], [], "v", color=plotting.OKABE_ITO[3], ms=3, label="died at this layer")
    ax.set_ylim(min(DIED_AT, float(np.min(mean - 2 * sd))) - 0.8, 4)
    ax.set_xlabel(f"layer $l$ (width {n})")
    ax.set_ylabel(r"$\log_{10}\|x_l\|/\|x_0\|$")
    ax.legend(fontsize=6, loc="lower left", bbox_to_anchor=(0.0, 0.06))
