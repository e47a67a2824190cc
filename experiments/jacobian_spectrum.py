"""Pennington, Schoenholz & Ganguli (2017, 2018): the spectrum of the input–output Jacobian
at criticality, measured against free probability.

Expectation, stated before measuring (gradstudy.theory.jacobian_spectrum_moments,
bernoulli_jacobian_density): for ``J = ∂h_{L+1}/∂h_1`` of a network at the fixed point q*
with χ₁ = σ_w² E[φ'²] = 1, the squared singular values λ have mean 1 at every depth and
normalised variance var λ / mean² = L (μ₂/μ₁² − 1 + s_W), with s_W = 1 for Gaussian and 0
for orthogonal weights and μ_k = E[φ'(√q* z)^{2k}].  So: linear Gaussian nets grow by 1 per
layer and linear orthogonal ones are exact isometries; ReLU (μ₂/μ₁² = 2) grows by 2
(Gaussian) and 1 (orthogonal: ReLU cannot reach dynamical isometry); tanh and hard tanh on
the critical line grow by μ₂/μ₁² − 1 (+1 with Gaussian weights), which falls to 0 with σ_b²
(q* → 0): orthogonal tanh and hard tanh approach isometry.  Where φ'² ∈ {0, 1} (linear,
ReLU, hard tanh) the whole density follows in closed form from the S-transform.

Claims (each on seeds as a vmapped axis, one example per network; tolerances K_SE standard
errors over seeds): the mean of λ is 1 at the claim depth; the normalised variance of one
layer equals the predicted per-layer slope (a layer off by one doubles or zeroes it); the
slope fitted over depths 1 … claim depth equals the prediction (Gaussian for orthogonal
weights changes it by 1); for orthogonal tanh/hard tanh the normalised variance at the claim
depth equals the prediction at every σ_b².  The claim depth is the deepest measured depth
≤ width/8: beyond it finite-width corrections of relative order L/N (Hanin & Nica 2019)
are no longer small, and the figure shows the deeper points without claiming them.

Scale: the papers use width 1,000 and depths to 128 (2017, Fig. 2); here width 256 (smoke
64) and depths 1 … 128 for linear and ReLU nets, 1 … 32 for the σ_b² scans of tanh and hard
tanh (each orthogonal layer is a QR of a 256 × 256 matrix per network).
"""

import math

import matplotlib.ticker
import numpy as np

from gradstudy import MLPSpec, plotting, theory
from gradstudy.engine import jacobian_spectrum
from gradstudy.studies import K_SE, Claim, mean_se, tolerance

NAME = "jacobian_spectrum"
DESCRIPTION = "squared singular values of the input–output Jacobian vs free probability"
SCALES = {
    "smoke": {"width": 64, "depths": [1, 2, 4, 8, 16], "seeds": 6,
              "sigma_b2": [1e-4, 0.1], "dtype": "float32"},
    "paper": {"width": 256, "depths": [1, 2, 4, 8, 16, 32, 64, 128], "seeds": 8,
              "sigma_b2": [1e-4, 1e-2, 0.1], "dtype": "float32"},
}
LIMITS = {
    "width": (16, 2048),  # what does not fit the memory budget is refused with its estimate
    "depths": {"range": (1, 1024), "len": (2, 12), "distinct": True, "increasing": True},
    "seeds": (3, 256),  # >= 3: claims need an error bar over seeds
    "sigma_b2": {"range": (1e-6, 1.0), "len": (2, 6), "distinct": True, "increasing": True},
    "dtype": ("float32", "float64"),
}
SOURCE = ("free probability: Pennington, Schoenholz & Ganguli 2017 (Eq. 14–15), 2018; "
          "gradstudy.theory.jacobian_spectrum_moments")
WEIGHTS = {"gaussian": "gaussian", "orthogonal": "orthogonal"}  # weights -> MLPSpec init
HOMOGENEOUS = {"linear": 1.0, "relu": 2.0}  # activation -> critical σ_w² (σ_b = 0, any q)
BOUNDED = ("tanh", "hard_tanh")  # critical σ_w² from σ_b² (theory.critical_sigma_w2)
FINITE_WIDTH_FRACTION = 8  # claims at depths <= width / 8
HIST_DEPTHS = (8, 32)  # histogram panels (the measured depths nearest these)
# float32 rounding of a product of L orthogonal layers: λ within ~L·√N·eps of 1
ROUNDING = 1e-3
MIN_SATURATED = 10  # expected saturated units (all seeds) for a one-layer hard-tanh claim


def measured_depths(p) -> list[int]:
    """``depths`` with depth 1 (the one-layer claims) always included."""
    return sorted({1, *p["depths"]})


def claim_depth(p) -> int:
    """The deepest measured depth ≤ width / FINITE_WIDTH_FRACTION (1 if no other is)."""
    return max(d for d in measured_depths(p) if d <= p["width"] // FINITE_WIDTH_FRACTION)


def configurations(p) -> list[dict]:
    """Every measured network: label, activation, weights, σ_w², σ_b², q*, depths."""
    configs = []
    short = [d for d in measured_depths(p) if d <= claim_depth(p)]
    for act, sw2 in HOMOGENEOUS.items():
        for weights in WEIGHTS:
            # linear orthogonal nets are exact isometries at any depth: measured to the
            # claim depth only (each orthogonal layer costs a QR per network)
            depths = (short if (act, weights) == ("linear", "orthogonal")
                      else measured_depths(p))
            configs.append({"label": f"{act} | {weights}", "activation": act,
                            "weights": weights, "sigma_w2": sw2, "sigma_b2": 0.0, "q": 1.0,
                            "depths": list(depths)})
    for act in BOUNDED:
        for sb2 in p["sigma_b2"]:
            sw2 = float(theory.critical_sigma_w2(act, sb2, dtype="float64"))
            q = float(theory.fixed_point_q(act, sw2, sb2, dtype="float64"))
            for weights in WEIGHTS:
                configs.append({"label": f"{act} | {weights} | σ_b²={sb2:g}",
                                "activation": act, "weights": weights, "sigma_w2": sw2,
                                "sigma_b2": sb2, "q": q, "depths": short})
    return configs


def _measure(ctx, p, c) -> np.ndarray:
    """(seed, depth) arrays of the per-network mean and second moment of λ, and λ."""
    spec = MLPSpec(width=p["width"], depth=2, activation=c["activation"],
                   init=WEIGHTS[c["weights"]], sigma_w=math.sqrt(c["sigma_w2"]),
                   sigma_b=math.sqrt(c["sigma_b2"]), dtype=p["dtype"])
    # inputs scaled so that h_1 starts at q (the fixed point): q = σ_w²(input)·s² + σ_b²
    input_std = math.sqrt(max(c["q"] - c["sigma_b2"], 0.0) / theory.input_sigma_w2(spec))
    ds = jacobian_spectrum(spec, c["depths"], p["seeds"], batch=1, input_std=input_std,
                           cache_dir=ctx.results_dir,
                           name="spectrum_" + _slug(c["label"]))
    return ds["lambda"].isel(example=0).values  # (seed, depth, index)


def _slug(label: str) -> str:
    return (label.replace(" | ", "_").replace("σ_b²=", "sb").replace(".", "p")
            .replace("-", "m"))


def run(ctx, p):
    configs = configurations(p)
    lam = {c["label"]: _measure(ctx, p, c) for c in configs}
    theory_of = {c["label"]: {d: theory.jacobian_spectrum_moments(
        c["activation"], c["sigma_w2"], c["sigma_b2"], d, c["weights"], q=c["q"])
        for d in c["depths"]} for c in configs}
    claims = []
    for c in configs:
        claims += _claims(p, c, lam[c["label"]], theory_of[c["label"]])
    ctx.extra.setdefault("measured", {}).update(_measured(p, configs, lam, theory_of))
    ctx.extra["measured"]["relu_gaussian_twice_wider"] = _twice_wider(ctx, p, configs)
    _draw(ctx, p, configs, lam, theory_of)
    return claims


# -------------------------------------------------------------------------- statistics
def moments(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per network and depth: mean of λ and normalised variance m₂/m₁² − 1."""
    m1 = lam.mean(axis=-1)
    m2 = (lam**2).mean(axis=-1)
    with np.errstate(all="ignore"):
        return m1, m2 / m1**2 - 1.0


def fitted_slope(depths, normalized_variance) -> np.ndarray:
    """Per seed, the least-squares slope through the origin of var/mean² against depth."""
    d = np.asarray(depths, float)
    return normalized_variance @ d / (d @ d)


def _claims(p, c, lam, predicted):
    label, depths = c["label"], np.asarray(c["depths"])
    depth_c = claim_depth(p)
    at_c = int(np.flatnonzero(depths == depth_c)[0])
    m1, nv = moments(lam)
    short_label = label.replace(" | ", ", ")
    cid = _slug(label)
    out = []
    mean, se = mean_se(m1[:, at_c])
    out.append(Claim(
        f"mean_{cid}", f"{short_label}: mean squared singular value of J at depth {depth_c} "
        f"(mean over seeds, SE {se:.2g}) is χ₁^L = {predicted[depth_c].mean:.3g} within "
        f"{K_SE:g} SE (+{ROUNDING:g} rounding)", mean, predicted[depth_c].mean,
        tolerance(se) + ROUNDING, SOURCE))
    # the theory's own depth-1 and fitted values (not its per-layer slope): a theory or a
    # measurement one layer off then fails the one-layer claim by a factor of 2
    slope = predicted[depths[0]].normalized_variance
    one, se1 = mean_se(nv[:, 0])
    if _enough_saturated_units(p, c, predicted[depths[0]]):
        out.append(Claim(
            f"one_layer_{cid}", f"{short_label}: var λ / mean² of one layer (SE {se1:.2g}) "
            f"is μ₂/μ₁² − 1 + s_W = {slope:.3g} within {K_SE:g} SE (+{ROUNDING:g})", one,
            slope, tolerance(se1) + ROUNDING, SOURCE))
    if c["activation"] in HOMOGENEOUS:
        use = depths <= depth_c
        fit, se_fit = mean_se(fitted_slope(depths[use], nv[:, use]))
        expected = float(fitted_slope(depths[use], np.asarray(
            [predicted[d].normalized_variance for d in depths[use]])))
        out.append(Claim(
            f"slope_{cid}", f"{short_label}: var λ / mean² grows linearly in depth; slope "
            f"fitted over depths {depths[0]}–{depth_c} (SE {se_fit:.2g}) is {expected:g} "
            f"within {K_SE:g} SE (+{ROUNDING:g})", fit, expected,
            tolerance(se_fit) + ROUNDING, SOURCE))
    else:
        value, se_c = mean_se(nv[:, at_c])
        expected = predicted[depth_c].normalized_variance
        out.append(Claim(
            f"variance_{cid}", f"{short_label} (q* = {c['q']:.3g}): var λ / mean² at depth "
            f"{depth_c} (SE {se_c:.2g}) is L(μ₂/μ₁² − 1 + s_W) = {expected:.3g} within "
            f"{K_SE:g} SE (+{ROUNDING:g})", value, expected, tolerance(se_c) + ROUNDING,
            SOURCE))
    return out


def _twice_wider(ctx, p, configs) -> dict:
    """The ReLU/Gaussian slope over depths 1 … claim depth at width 2N as well: the finite-
    width corrections (relative order L/N) should shrink, which tells them from a wrong
    prediction (which would not move)."""
    c = next(c for c in configs if c["label"] == "relu | gaussian")
    depths = [d for d in c["depths"] if d <= claim_depth(p)]
    wide = {**p, "width": 2 * p["width"]}
    lam = _measure(ctx, wide, {**c, "depths": depths, "label": "relu | gaussian | 2N"})
    _, nv = moments(lam)
    slope, se = mean_se(fitted_slope(np.asarray(depths), nv))
    return {"width": 2 * p["width"], "slope": slope, "slope_se": se,
            "normalized_variance_at_claim_depth": float(np.mean(nv[:, -1]))}


def _enough_saturated_units(p, c, predicted) -> bool:
    """Whether the one-layer statistic has a usable standard error.  One orthogonal hard-tanh
    layer has λ = σ_w² φ'(h_i)² ∈ {0, σ_w²} exactly: its normalised variance comes from the
    saturated units alone, ``1 − p`` of them, and with fewer than MIN_SATURATED expected
    over all seeds most seeds have none and their spread says nothing about the mean."""
    if c["activation"] != "hard_tanh" or c["weights"] != "orthogonal":
        return True
    return p["seeds"] * p["width"] * (1.0 - predicted.mu1) >= MIN_SATURATED


def _measured(p, configs, lam, theory_of) -> dict:
    """Per configuration and depth: the mean over seeds of the mean of λ and of its
    normalised variance, with the predictions (numbers the paper quotes)."""
    out = {}
    for c in configs:
        m1, nv = moments(lam[c["label"]])
        out[_slug(c["label"])] = {f"L{d}": {
            "mean": float(np.mean(m1[:, i])), "normalized_variance": float(np.mean(nv[:, i])),
            "predicted_normalized_variance": theory_of[c["label"]][d].normalized_variance}
            for i, d in enumerate(c["depths"])}
    return out


# ------------------------------------------------------------------------------ figure
COLORS = {"linear": plotting.OKABE_ITO[0], "relu": plotting.OKABE_ITO[1],
          "tanh": plotting.OKABE_ITO[2], "hard_tanh": plotting.OKABE_ITO[3]}
MARKERS = {"gaussian": "o", "orthogonal": "s"}
LINESTYLES = {"gaussian": "-", "orthogonal": "--"}


def _draw(ctx, p, configs, lam, theory_of):
    depth_c = claim_depth(p)
    with plotting.style():
        fig, axes = plotting.figure("double", 5.0, nrows=2, ncols=3)
        _draw_variance(axes[0, 0], p, configs, lam, theory_of, depth_c)
        _draw_mean(axes[0, 1], p, configs, lam, depth_c)
        _draw_isometry(axes[0, 2], p, configs, lam, theory_of, depth_c)
        hist_depths = sorted({min(c["depths"], key=lambda d, h=h: abs(d - h))
                              for h in HIST_DEPTHS for c in configs[:1]})
        _draw_histograms(axes[1, :2], p, configs, lam, hist_depths)
        _draw_bounded_histogram(axes[1, 2], p, configs, lam, depth_c)
        plotting.panel_titles(axes.flat, [
            "var λ / mean² vs depth", "mean λ vs depth (χ₁ = 1)",
            f"orthogonal/Gaussian, depth {depth_c}: vs q*",
            f"density of λ, depth {hist_depths[0]}",
            f"density of λ, depth {hist_depths[-1]}",
            f"hard tanh, depth {depth_c}"], fontsize=7)
        fig.tight_layout()
        plotting.save_figure(fig, ctx.figures_dir, NAME)


def _draw_variance(ax, p, configs, lam, theory_of, depth_c):
    depths_all = np.asarray(measured_depths(p), float)
    for c in configs:
        if c["activation"] not in HOMOGENEOUS or c["label"] == "linear | orthogonal":
            continue
        _, nv = moments(lam[c["label"]])
        color, weights = COLORS[c["activation"]], c["weights"]
        mean = np.mean(nv, axis=0)
        ax.plot(c["depths"], mean, MARKERS[weights], color=color, ms=3.5,
                mfc="none" if weights == "orthogonal" else color,
                label=f"{c['activation']}, {weights}")
        ax.plot(c["depths"], [theory_of[c["label"]][d].normalized_variance
                             for d in c["depths"]], LINESTYLES[weights], color="0.1", lw=0.7)
    _, nv = moments(lam["linear | orthogonal"])
    ax.text(0.03, 0.97, f"linear, orthogonal: ≤ {np.max(np.abs(nv)):.1e} (isometry)",
            transform=ax.transAxes, fontsize=5.5, va="top")
    ax.axvspan(depth_c * 1.4, depths_all[-1] * 1.5, color="0.92", zorder=0)
    ax.text(0.97, 0.03, "L > N/8:\nnot claimed", transform=ax.transAxes, fontsize=5.5,
            ha="right", va="bottom", color="0.35")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("depth $L$")
    ax.set_ylabel(r"var $\lambda$ / mean$^2$")
    ax.plot([], [], "-", color="0.1", lw=0.7, label="free probability")
    ax.legend(fontsize=5.5, loc="upper left", bbox_to_anchor=(0.0, 0.9))


def _draw_mean(ax, p, configs, lam, depth_c):
    for c in configs:
        if c["activation"] not in HOMOGENEOUS:
            continue
        m1, _ = moments(lam[c["label"]])
        color, weights = COLORS[c["activation"]], c["weights"]
        plotting.median_band(ax, c["depths"], m1, color, ls=LINESTYLES[weights],
                             label=f"{c['activation']}, {weights}")
        ax.plot(c["depths"], np.mean(m1, axis=0), MARKERS[weights], color=color, ms=3,
                mfc="none" if weights == "orthogonal" else color)
    ax.axhline(1.0, color="0.1", lw=0.7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("depth $L$")
    ax.set_ylabel(r"mean $\lambda$ over the spectrum")
    ax.text(0.03, 0.97, "colours as in (a); line: median over seeds,\nband: 10–90 %, "
            "marker: mean (claimed)", transform=ax.transAxes, fontsize=5.5, va="top")


def _draw_isometry(ax, p, configs, lam, theory_of, depth_c):
    for act in BOUNDED:
        for weights in WEIGHTS:
            cs = [c for c in configs if c["activation"] == act and c["weights"] == weights]
            qs = np.asarray([c["q"] for c in cs])
            at = [c["depths"].index(depth_c) for c in cs]
            values = [moments(lam[c["label"]])[1][:, i] for c, i in zip(cs, at)]
            mean = [np.mean(v) for v in values]
            se = [mean_se(v)[1] for v in values]
            ax.errorbar(qs, mean, yerr=se, fmt=MARKERS[weights], color=COLORS[act], ms=3.5,
                        mfc="none" if weights == "orthogonal" else COLORS[act], capsize=1.5,
                        label=f"{act.replace('_', ' ')}, {weights}")
            grid_b2 = np.geomspace(min(c["sigma_b2"] for c in cs),
                                   max(c["sigma_b2"] for c in cs), 24)
            curve_q, curve_v = [], []
            for sb2 in grid_b2:
                sw2 = float(theory.critical_sigma_w2(act, sb2, dtype="float64"))
                m = theory.jacobian_spectrum_moments(act, sw2, sb2, depth_c, weights)
                curve_q.append(m.q_star)
                curve_v.append(m.normalized_variance)
            ax.plot(curve_q, curve_v, LINESTYLES[weights], color="0.1", lw=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(r"$q^*$ (on the critical line; $\sigma_b^2$ grows with it)")
    ax.set_ylabel(rf"var $\lambda$ / mean$^2$ at $L$={depth_c}")
    ax.legend(fontsize=5.5, loc="upper left", bbox_to_anchor=(0.0, 0.8))


def resolved(lam: np.ndarray, dtype: str) -> np.ndarray:
    """(seed, index) → the λ a ``dtype`` SVD resolves: singular values above N·eps times
    the largest (below, a zero singular value reads as rounding noise), as one flat array."""
    floor = (lam.shape[-1] * np.finfo(dtype).eps) ** 2 * lam.max(axis=-1, keepdims=True)
    return lam[lam > floor]


def _floor(lam: np.ndarray, dtype: str) -> float:
    """The largest per-network resolution floor of :func:`resolved`."""
    return float(np.max((lam.shape[-1] * np.finfo(dtype).eps) ** 2 * lam.max(axis=-1)))


def _resolution_limit(ax, p, floors):
    """Log x axis from a decade below the resolution floor, which is marked."""
    floor = max(floors)
    ax.set_xscale("log")
    ax.set_xlim(floor / 30, None)
    ax.axvline(floor, color="0.5", ls=":", lw=0.8)
    ax.text(floor * 1.5, 0.5, f"{p['dtype']}\nresolution", transform=ax.get_xaxis_transform(),
            fontsize=5, color="0.4", va="center")


def _log_hist(ax, values, total, color, **kwargs):
    """Histogram of ``values`` on log-spaced bins, as a density in ln λ (a fraction of
    ``total`` values: the unresolved ones count in the normalisation, not in a bin)."""
    edges = np.geomspace(np.percentile(values, 0.5), values.max() * 1.01, 40)
    counts, _ = np.histogram(values, edges)
    density = counts / (total * np.diff(np.log(edges)))
    ax.stairs(density, edges, color=color, **kwargs)


def _histogram_and_density(ax, p, c, values, prob, depth, color, label) -> float:
    """The resolved λ of one configuration (seed, index) as a histogram in ln λ, the
    predicted two-point density over it (x·ρ(x): a density in ln x); returns the
    resolution floor."""
    style = {"ls": LINESTYLES[c["weights"]]}
    _log_hist(ax, resolved(values, p["dtype"]), values.size, color, lw=0.9, label=label,
              **style)
    density = theory.bernoulli_jacobian_density(prob, 1.0, depth, c["weights"])
    ax.plot(density.x, density.x * density.density, color="0.1", lw=0.7, **style)
    return _floor(values, p["dtype"])


def _draw_histograms(axes, p, configs, lam, hist_depths):
    for ax, depth in zip(axes, hist_depths):
        floor = []
        for label, p_one in (("linear | gaussian", 1.0), ("relu | gaussian", 0.5),
                             ("relu | orthogonal", 0.5)):
            c = next(c for c in configs if c["label"] == label)
            floor.append(_histogram_and_density(
                ax, p, c, lam[label][:, c["depths"].index(depth)], p_one, depth,
                COLORS[c["activation"]], f"{c['activation']}, {c['weights']}"))
        _resolution_limit(ax, p, floor)
        ax.set_xlabel(r"$\lambda$ (ReLU's atom ½ at 0 not drawn)")
        ax.set_ylabel(r"density in $\ln\lambda$")
        ax.legend(fontsize=5.5, loc="upper left")


def _draw_bounded_histogram(ax, p, configs, lam, depth_c):
    floor = []
    for c in configs:
        if c["activation"] != "hard_tanh" or c["sigma_b2"] not in (p["sigma_b2"][0],
                                                                     p["sigma_b2"][-1]):
            continue
        prob = float(theory.derivative_moments("hard_tanh", c["q"])[0])  # P(φ'² = 1)
        floor.append(_histogram_and_density(
            ax, p, c, lam[c["label"]][:, c["depths"].index(depth_c)], prob, depth_c,
            plotting.OKABE_ITO[4 if c["sigma_b2"] == p["sigma_b2"][0] else 5],
            f"{c['weights']}, $q^*$={c['q']:.2g}"))
    _resolution_limit(ax, p, floor)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, None)
    ax.set_xlabel(r"$\lambda$ (the atom $1-p$ at 0 not drawn)")
    ax.set_ylabel(r"density in $\ln\lambda$")
    ax.legend(fontsize=5.5, loc="upper left")
