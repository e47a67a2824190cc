"""Per-layer gradient norms through a deep MLP for four activations × four initializations.

Median over seeds with a 10–90 % band, mean-field prediction dashed (anchored at the last
layer), and a residual row (measured / mean field per layer).  Claims: the first-to-last-layer
gradient ratio against mean field for every activation × init, and the per-layer factor of
‖∂L/∂h_l‖² of tanh near criticality (on networks drawn from other seeds, so no claim counts
the same networks twice).  Tolerances are K_SE standard errors over seeds (gradstudy.studies).
"""

import math

import matplotlib.pyplot as plt
import numpy as np

from gradstudy import MLPSpec, Sweep, plotting
from gradstudy.studies import (
    K_SE,
    Claim,
    finite_median,
    log_mean_square_excess,
    mean_log_factor,
    median_se,
    per_layer_factors,
    profile_residual,
    require,
    tolerance,
)
from gradstudy.theory import (
    backprop_factors,
    backprop_profile,
    output_variance,
    preactivation_q,
    relu_readout_excess,
    weight_grad_profile,
)

NAME = "depth_profile"
DESCRIPTION = "per-layer ‖∂L/∂W_l‖, ‖∂L/∂h_l‖ vs layer: 4 activations × 4 inits, with theory"
SCALES = {
    "smoke": {"width": 64, "depth": 16, "seeds": 4, "batch": 16,
              "tanh_sigma_w2": [0.8, 1.0, 1.5, 2.0], "dtype": "float64"},
    "paper": {"width": 256, "depth": 64, "seeds": 16, "batch": 32,
              "tanh_sigma_w2": [0.8, 1.0, 1.5, 2.0], "dtype": "float64"},
}
# `--set` bounds (gradstudy.studies.Limit): depth >= 8 for the L/4..3L/4 claims; tanh σ_w²
# distinct (each labels a curve, one colour each) and at most 8 colours.
LIMITS = {
    "width": (1, 65536),  # what does not fit the memory budget is refused with its estimate
    "depth": (8, 4096),
    "seeds": (3, 1024),  # >= 3: claims need an error bar over seeds
    "batch": (1, 4096),
    "tanh_sigma_w2": {"range": (1e-3, 100.0), "len": (1, 8), "distinct": True},
    "dtype": ("float32", "float64"),
}
# float64 by default: at depth 64 the vanishing profiles reach 1e-60, below float32's range
# (multiplication_chain shows that breakdown); `--set dtype=float32` shows it here.
# leaky ReLU with slope 0.2: its χ = σ_w²(1 + a²)/2 differs from ReLU's by 4 %, 1.1 decades of
# ‖δ_1‖/‖δ_64‖ at depth 64 (slope 0.01 differs by 0.01 %: indistinguishable from relu)
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu_0.2")
RELU_FAMILY = ("relu", "leaky_relu_0.2")
INITS = {  # label -> (init family, gain σ_w, short id)
    "Gaussian σ_w=0.5": ("gaussian", 0.5, "gauss0.5"),
    "Xavier": ("glorot_normal", 1.0, "xavier"),
    "He": ("he_normal", 1.0, "he"),
    "Gaussian σ_w=3": ("gaussian", 3.0, "gauss3"),
}
SOURCE = "mean-field theory (Poole et al. 2016; Schoenholz et al. 2017), gradstudy.theory"
# ReLU inits whose MSE excess is claimed against the readout correction (at σ_w = 0.5 and
# Xavier the output is ≈ 0 next to t: no correction, and the networks are scaled copies of
# the He ones); the figure marks their measured root mean square over seeds
MSE_EXCESS_INITS = ("he", "gauss3")
READOUT_MARK_EVERY = 6  # figure: a root-mean-square marker every this many layers
# The per-layer-factor sweep draws its networks from these seeds, not from the main sweep's:
# tanh with σ_w² = 2 is tanh with He init, and the same networks must not be counted twice.
FACTOR_BASE_SEED = 1
# tanh_backprop_factor colours: those of depth_profile for the same σ_w² (Xavier = 1, He = 2)
FACTOR_COLORS = {0.25: plotting.OKABE_ITO[0], 1.0: plotting.OKABE_ITO[1],
                 2.0: plotting.OKABE_ITO[2],
                 9.0: plotting.OKABE_ITO[3]}
FACTOR_SPARE_COLORS = [plotting.OKABE_ITO[5], plotting.OKABE_ITO[4], plotting.OKABE_ITO[7]]


def validate(p):
    require(p["depth"] >= 8, "depth",
            f"must be >= 8 (claims use layers L/4..3L/4), got {p['depth']}")
    require(all(s2 > 0 for s2 in p["tanh_sigma_w2"]), "tanh_sigma_w2",
            f"must be > 0, got {p['tanh_sigma_w2']}")
    require(p["dtype"] in ("float32", "float64"), "dtype",
            f"unknown value {p['dtype']!r}; allowed: float32, float64")


def run(ctx, p):
    points, labels = _points(p)
    ds = ctx.sweep(Sweep(points=points, depths=(p["depth"],), seeds=p["seeds"],
                         batch=p["batch"], labels=labels))
    ds_factor = ctx.sweep(Sweep(points=_factor_points(p), depths=(p["depth"],),
                                seeds=p["seeds"], batch=p["batch"],
                                base_seed=FACTOR_BASE_SEED,
                                labels=[f"tanh | σ_w²={s2:g}" for s2 in p["tanh_sigma_w2"]]),
                          tag="factor")
    # the same ReLU-family He networks with an output cotangent independent of the network
    # (loss ⟨y, t⟩): mean field is exact there; the MSE residual y − t is not independent
    ds_linear = ctx.sweep(Sweep(points=[points[labels.index(f"{act} | He")]
                                        for act in RELU_FAMILY],
                                depths=(p["depth"],), seeds=p["seeds"], batch=p["batch"],
                                labels=[f"{act} | He | linear loss" for act in RELU_FAMILY],
                                loss="linear"), tag="linear")
    claims = _claims(p, points, labels, ds, ds_factor, ds_linear)
    # the numbers the paper quotes besides the claims (summary.json, figures/numbers.tex)
    ctx.extra.setdefault("measured", {}).update(
        _measured(p, points, labels, ds.backprop_norm.isel(depth=0).values,
                  ds.weight_grad_norm.isel(depth=0).values,
                  ds_factor.backprop_norm.isel(depth=0).values,
                  ds_linear.backprop_norm.isel(depth=0).values))
    _draw_profiles(ctx, p, points, labels, ds, ds_linear)
    _draw_factors(ctx, p, ds_factor)
    return claims


def _points(p):
    """Every activation × init at the study's width and depth, and their labels."""
    points, labels = [], []
    for act in ACTIVATIONS:
        for label, (init, gain, _) in INITS.items():
            points.append(MLPSpec(width=p["width"], depth=p["depth"], activation=act,
                                  init=init, sigma_w=gain, dtype=p["dtype"]))
            labels.append(f"{act} | {label}")
    return points, labels


def _factor_points(p):
    """tanh at σ_b = 0 for each σ_w² of ``tanh_sigma_w2``."""
    return [MLPSpec(width=p["width"], depth=p["depth"], activation="tanh",
                    sigma_w=math.sqrt(s2), dtype=p["dtype"]) for s2 in p["tanh_sigma_w2"]]


# -------------------------------------------------------------------------- claims
def _claims(p, points, labels, ds, ds_factor, ds_linear):
    """Per activation: first-to-last ratio claims (sigmoid, tanh: every init; ReLU: the MSE
    excess at He and σ_w = 3), then the ⟨y, t⟩ claim of the ReLU family; last the per-layer
    factors of tanh."""
    depth = p["depth"]
    bp = ds.backprop_norm.isel(depth=0).values  # (point, seed, layer)
    bp_linear = ds_linear.backprop_norm.isel(depth=0).values
    claims = []
    for act in ACTIVATIONS:
        for label in INITS:
            i = labels.index(f"{act} | {label}")
            if act not in RELU_FAMILY:
                claims.append(_ratio_claim(act, label, points[i], bp[i], depth))
            elif act == "relu" and INITS[label][2] in MSE_EXCESS_INITS:
                # at σ_w = 0.5 and Xavier the output is ≈ 0 next to t, so the MSE cotangent
                # ≈ −t is independent of the net: the He ⟨y, t⟩ claim, on scaled copies of
                # the same networks (ReLU is homogeneous), would be counted again
                claims.append(_relu_mse_claim(label, points[i], bp[i], depth))
        if act in RELU_FAMILY:
            spec = points[labels.index(f"{act} | He")]
            claims.append(_linear_loss_claim(act, spec, bp_linear[RELU_FAMILY.index(act)],
                                             depth))
    bpf = ds_factor.backprop_norm.isel(depth=0).values
    for s2, spec, data in zip(p["tanh_sigma_w2"], _factor_points(p), bpf):
        claims.append(_factor_claim(s2, spec, data, depth, p["width"]))
    return claims


def _first_last(norms) -> np.ndarray:
    """(seeds,) log10 of the first- to last-layer norm (inf/NaN where one is 0 or not
    finite; :func:`median_se` leaves those seeds out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(norms[:, 0] / norms[:, -1])


def _measured(p, points, labels, bp, wg, bp_factor, bp_linear) -> dict:
    """The numbers the paper quotes from this study besides the claims.

    Args:
        p: the study's parameters.
        points, labels: as :func:`_points` gives them.
        bp, wg: (point, seed, layer) ‖∂L/∂h_l‖ and ‖∂L/∂W_l‖ of the main sweep.
        bp_factor: (σ_w² of ``tanh_sigma_w2``, seed, layer) ‖∂L/∂h_l‖ of the tanh sweep.
        bp_linear: (activation of ``RELU_FAMILY``, seed, layer) ‖∂L/∂h_l‖ of the He networks
            with the linear loss.

    Returns:
        ``log_ratio/<act>/<init>/{median, se, mean_field, excess}`` for the ReLU family:
        the median over seeds of log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖, its standard error, the
        mean-field value and median − mean field; ``weight_grad_log_ratio/sigmoid/<init>/
        {median, se, mean_field, below_mean_field, below_in_se}``: the same for
        ‖∂L/∂W_1‖/‖∂L/∂W_L‖ of the sigmoid, with mean field − median in decades and in
        standard errors; ``jensen_gap/<claim id>``: for each claim on ½ log10 of the seed
        mean of squared ratios, that value minus the median of the log-ratio (both over
        mean field); ``tanh_factor_layer1/<σ_w²>``: the median over seeds of
        ‖∂L/∂h_1‖²/‖∂L/∂h_2‖² of tanh.
    """
    depth = p["depth"]
    out = {"log_ratio": {}, "weight_grad_log_ratio": {}, "jensen_gap": {},
           "tanh_factor_layer1": {}}
    for act in RELU_FAMILY + ("sigmoid",):
        for label, (_, _, iid) in INITS.items():
            i = labels.index(f"{act} | {label}")
            if act in RELU_FAMILY:
                predicted = float(np.log10(backprop_profile(points[i], 1.0, depth)[0]))
                median, se = median_se(_first_last(bp[i]))
                out["log_ratio"].setdefault(act, {})[iid] = {
                    "median": median, "se": se, "mean_field": predicted,
                    "excess": median - predicted}
            else:
                predicted = float(np.log10(weight_grad_profile(points[i], 1.0, depth)[0]))
                median, se = median_se(_first_last(wg[i]))
                out["weight_grad_log_ratio"].setdefault(act, {})[iid] = {
                    "median": median, "se": se, "mean_field": predicted,
                    "below_mean_field": predicted - median,
                    "below_in_se": _ratio(predicted - median, se)}
    # Jensen's gap of the claims that compare the seed mean of squares with mean field
    gaps = [(f"ratio_relu_{iid}_mse_excess", "relu", iid, bp[labels.index(f"relu | {label}")])
            for label, (_, _, iid) in INITS.items() if iid in MSE_EXCESS_INITS]
    gaps += [(f"ratio_{act}_he_independent_cotangent", act, "he",
              bp_linear[RELU_FAMILY.index(act)]) for act in RELU_FAMILY]
    for cid, act, iid, norms in gaps:
        spec = points[labels.index(f"{act} | {_init_label(iid)}")]
        predicted = float(np.log10(backprop_profile(spec, 1.0, depth)[0]))
        excess, _ = log_mean_square_excess(_first_last(norms), predicted)
        median, _ = median_se(_first_last(norms))
        out["jensen_gap"][cid] = excess - (median - predicted)
    for s2, norms in zip(p["tanh_sigma_w2"], bp_factor):
        out["tanh_factor_layer1"][f"{s2:g}"] = float(
            finite_median(per_layer_factors(norms)[:, 0]))
    return out


def _ratio(a: float, b: float) -> float:
    """a / b as a float, inf or NaN where b is 0 (no exception, no warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.float64(a), np.float64(b)))


def _init_label(iid: str) -> str:
    """The label of INITS whose short id is ``iid``."""
    return next(label for label, (_, _, short) in INITS.items() if short == iid)


# ------------------------------------------------------------------------- figures
def _draw_profiles(ctx, p, points, labels, ds, ds_linear):
    """depth_profile: ‖∂L/∂W_l‖ and ‖∂L/∂h_l‖ per layer (rows 1–2) with mean field, and the
    residual measured / mean field (row 3), one column per activation."""
    depth = p["depth"]
    bp_linear = ds_linear.backprop_norm.isel(depth=0).values
    bp = ds.backprop_norm.isel(depth=0).values  # (point, seed, layer)
    wg = ds.weight_grad_norm.isel(depth=0).values
    bp_status = ds.backprop_norm_status.isel(depth=0).values
    wg_status = ds.weight_grad_norm_status.isel(depth=0).values
    layers = np.arange(1, depth + 1)
    with plotting.style():
        fig, axes = plotting.figure("double", 6.2, nrows=3, ncols=4, sharex=True,
                                    gridspec_kw={"height_ratios": [1, 1, 1]})
        marked, residual_spans = False, [0.2]  # at least ×/÷ 1.6
        for col, act in enumerate(ACTIVATIONS):
            for k, label in enumerate(INITS):
                i = labels.index(f"{act} | {label}")
                spec, color = points[i], plotting.OKABE_ITO[k]
                for row, (data, codes, profile) in enumerate([
                        (wg[i], wg_status[i], weight_grad_profile),
                        (bp[i], bp_status[i], backprop_profile)]):
                    ax = axes[row, col]
                    plotting.median_band(ax, layers, data, color,
                                         label=label.replace("σ_w", r"$\sigma_w$"))
                    marked |= plotting.mark_nonfinite(ax, layers, data, color, codes)
                    anchor = finite_median(data[:, -1])
                    # theory on top in near-black: where it matches, it would hide under data
                    ax.plot(layers, anchor * profile(spec, 1.0, depth), color="0.1", ls="--",
                            lw=0.7, zorder=4)
                # residual: per seed, (‖δ_l‖/‖δ_L‖ measured) / (mean-field profile)
                residual = profile_residual(bp[i], backprop_profile(spec, 1.0, depth))
                plotting.median_band(axes[2, col], layers, residual, color)
                residual_spans.append(_log_span(residual))
            if act in RELU_FAMILY:
                spec = points[labels.index(f"{act} | He")]
                residual = profile_residual(bp_linear[RELU_FAMILY.index(act)],
                                            backprop_profile(spec, 1.0, depth))
                plotting.median_band(axes[2, col], layers, residual, "0.35", ls=":")
            if act == "relu":
                _draw_readout_correction(axes[2, col], points, labels, bp, depth)
            elif act in RELU_FAMILY:  # leaky ReLU: φ'(h)⊙a ≠ a, the recursion differs
                axes[2, col].text(0.03, 0.04, "readout correction:\nnot derived here",
                                  transform=axes[2, col].transAxes, fontsize=5.5,
                                  color="0.3", va="bottom")
            axes[0, col].set_title(act.replace("_0.2", " (slope 0.2)"))
            axes[2, col].set_xlabel("layer $l$")
            axes[2, col].axhline(1.0, color="0.1", ls="--", lw=0.7, zorder=4)
        for ax in axes[:2].flat:
            ax.set_yscale("log")
            plotting.decade_ticks(ax)
        # at most ×/÷ 100: a residual beyond that (float32 underflow) runs off the panel
        _residual_axes(axes[2], min(max(residual_spans), 2.0))
        axes[0, 0].set_ylabel(r"$\|\partial L/\partial W_l\|_F$")
        axes[1, 0].set_ylabel(r"$\|\partial L/\partial h_l\|$")
        axes[2, 0].set_ylabel("measured / mean field\n" r"of $\|\partial L/\partial h_l\|$")
        handles, names = axes[0, 0].get_legend_handles_labels()
        handles.append(axes[0, 0].plot([], [], color="0.1", ls="--", lw=0.7)[0])
        names.append("mean field")
        handles.append(plt.Line2D([], [], color="0.35", ls=":"))
        names.append(r"He, loss $\langle y,t\rangle$ (cotangent independent of the net)")
        handles.append(plt.Line2D([], [], color="0.1", ls=READOUT_LS, lw=0.9))
        names.append("ReLU, MSE: mean field × readout correction")
        handles.append(plt.Line2D([], [], ls="none", marker="D", ms=3, color="0.5",
                                  markeredgecolor="0.1", markeredgewidth=0.4))
        names.append("root mean square over seeds (what it predicts)")
        if marked:  # explain the markers only where some are drawn
            more_handles, more_names = plotting.nonfinite_legend(fig)
            handles += more_handles
            names += more_names
        fig.legend(handles, names, loc="lower center", ncol=3,
                   bbox_to_anchor=(0.5, -0.01))
        fig.tight_layout(rect=(0, 0.025 * -(-len(names) // 3), 1, 1))
        plotting.save_figure(fig, ctx.figures_dir, NAME)


READOUT_LS = (0, (4, 1.5, 1, 1.5))  # dash-dot: the readout-corrected prediction


def readout_profile(spec, depth) -> np.ndarray:
    """Per layer l, the mean-field ‖δ_l‖/‖δ_L‖ times the readout correction of a ReLU MLP on
    MSE (root mean square over networks), relative to mean field: 10 to the
    ``theory.relu_readout_excess`` of the L − l transitions above layer l (1 at l = L)."""
    v = output_variance(spec)
    return np.array([10 ** relu_readout_excess(spec.width, depth - layer + 1, spec.out_dim,
                                               v, 1.0) for layer in range(1, depth + 1)])


def _draw_readout_correction(ax, points, labels, bp, depth):
    """The readout-corrected prediction of every ReLU init on the residual axis ``ax``, and
    the statistic it predicts (the root mean square over seeds of the residual) as markers
    for the inits whose excess is claimed; the median band stays below it by Jensen's gap."""
    layers = np.arange(1, depth + 1)
    for k, label in enumerate(INITS):
        i = labels.index(f"relu | {label}")
        ax.plot(layers, readout_profile(points[i], depth), color="0.1", ls=READOUT_LS,
                lw=0.9, zorder=5)
        if INITS[label][2] in MSE_EXCESS_INITS:
            residual = profile_residual(bp[i], backprop_profile(points[i], 1.0, depth))
            finite = np.where(np.isfinite(residual), residual, np.nan)
            with np.errstate(all="ignore"):
                rms = np.sqrt(np.nanmean(finite ** 2, axis=0))
            at = layers[::-1][::READOUT_MARK_EVERY][::-1] - 1  # the last layer included
            ax.plot(layers[at], rms[at], "D", ms=3, color=plotting.OKABE_ITO[k],
                    markeredgecolor="0.1", markeredgewidth=0.4, zorder=6)


def _draw_factors(ctx, p, ds_factor):
    """tanh_backprop_factor: the per-layer factor of ‖δ_l‖² for tanh at σ_b = 0 along the
    q_l trajectory, against the mean-field χ(q_l)."""
    depth = p["depth"]
    layers = np.arange(1, depth + 1)
    bpf = ds_factor.backprop_norm.isel(depth=0).values
    with plotting.style():
        fig, ax = plotting.figure("single", 3.0)
        spare = iter(FACTOR_SPARE_COLORS)
        # in the legend: every position on the line is crossed by some curve
        ax.axhline(1.0, color="0.3", lw=0.8, zorder=1)
        for s2, spec, data in zip(p["tanh_sigma_w2"], _factor_points(p), bpf):
            color = FACTOR_COLORS.get(float(s2)) or next(spare)
            ratio = per_layer_factors(data)
            plotting.median_band(ax, layers[:-1], ratio, color, label=rf"$\sigma_w^2$={s2:g}")
            ax.plot(layers[:-1], backprop_factors(spec, preactivation_q(spec, 1.0, depth))[:-1],
                    color="0.1", ls="--", lw=0.8, zorder=4)
        ax.plot([], [], color="0.1", ls="--", lw=0.8, label=r"mean field $\chi(q_l)$")
        ax.plot([], [], color="0.3", lw=0.8, label=r"$\chi = 1$")
        ax.set_xlabel("layer $l$")
        ax.set_ylabel(r"$\|\partial L/\partial h_l\|^2 / \|\partial L/\partial h_{l+1}\|^2$")
        ax.set_title(r"tanh, $\sigma_b=0$: measured (median, 10–90 % of seeds)")
        ax.legend(ncol=3, loc="upper center", bbox_to_anchor=(0.45, -0.2), fontsize=6.5)
        plotting.save_figure(fig, ctx.figures_dir, "tanh_backprop_factor")


def _log_span(samples) -> float:
    """Largest |log10| of the 10–90 % band of positive finite samples (0 if none)."""
    x = np.asarray(samples, float)
    with np.errstate(all="ignore"):
        logs = np.where(np.isfinite(x) & (x > 0), np.log10(np.where(x > 0, x, 1.0)), np.nan)
    if not np.isfinite(logs).any():
        return 0.0
    band = np.nanpercentile(logs, [10, 90], axis=0)
    return float(np.nanmax(np.abs(band)))


def _residual_axes(axes, span):
    """One symmetric log range, ×/÷ 10^span, for the residual row."""
    span = 1.05 * span
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(10 ** -span, 10 ** span)
        ticks = [t for t in (0.01, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
                 if 10 ** -span <= t <= 10 ** span]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()


def _ratio_claim(act, label, spec, bp, depth):
    """log10 ‖δ_1‖/‖δ_L‖ (median over seeds) against the mean-field product of χ(q_l)."""
    predicted = float(np.log10(backprop_profile(spec, 1.0, depth)[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        measured, se = median_se(np.log10(bp[:, 0] / bp[:, -1]))
    cid = f"ratio_{act}_{INITS[label][2]}"
    name = f"{act}, {label}: log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖ (median over seeds, SE {se:.2g})"
    return Claim(cid, f"{name} matches mean field within {K_SE:g} SE", measured, predicted,
                 tolerance(se), SOURCE)


def _log_mean_excess(spec, bp, depth):
    """½ log10 of the seed mean of (‖δ_1‖/‖δ_L‖)² over its mean-field value, and the
    delta-method standard error (mean field predicts the mean of squared norms)."""
    predicted = float(np.log10(backprop_profile(spec, 1.0, depth)[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log10(bp[:, 0] / bp[:, -1])
    return log_mean_square_excess(log_ratio, predicted)


def _linear_loss_claim(act, spec, bp, depth):
    excess, se = _log_mean_excess(spec, bp, depth)
    return Claim(f"ratio_{act}_he_independent_cotangent",
                 f"{act}, He, loss ⟨y, t⟩ (output cotangent independent of the network): "
                 f"½ log10 of the seed mean of ‖∂L/∂h_1‖²/‖∂L/∂h_L‖² over mean field (SE "
                 f"{se:.2g}) is 0 within {K_SE:g} SE", excess, 0.0, tolerance(se),
                 "mean-field theory, exact for ReLU nets with an independent cotangent "
                 "(Hanin 2018)")


def _relu_mse_claim(label, spec, bp, depth):
    excess, se = _log_mean_excess(spec, bp, depth)
    v = output_variance(spec)
    predicted = relu_readout_excess(spec.width, depth, spec.out_dim, v, 1.0)
    return Claim(f"ratio_relu_{INITS[label][2]}_mse_excess",
                 f"relu, {label}, MSE: ½ log10 of the seed mean of ‖∂L/∂h_1‖²/‖∂L/∂h_L‖² "
                 f"exceeds mean field by the readout-residual correlation "
                 f"½log10[(1−2/n)^(L−1) + ρ(1−(1−2/n)^(L−1))], ρ = (v(m+2)+1)/(v+1), "
                 f"v = {v:.3g} (SE {se:.2g}), within {K_SE:g} SE", excess, predicted,
                 tolerance(se), "leading-order correction derived here (Euler identity of "
                 "homogeneous φ), gradstudy.theory.relu_readout_excess")


def _factor_claim(s2, spec, bp, depth, width):
    """Per-layer factor of ‖δ_l‖² over the middle half of the stack vs χ(q_l) there."""
    a, b = depth // 4, 3 * depth // 4  # away from both ends
    log_factor, se = median_se(mean_log_factor(bp, a, b))
    chi = backprop_factors(spec, preactivation_q(spec, 1.0, depth))
    predicted = float(np.exp(np.mean(np.log(chi[a - 1:b - 1]))))
    # SE of the log factor is the relative SE of the factor
    return Claim(f"chi_tanh_{s2:g}", f"tanh σ_b=0 σ_w²={s2:g}, width {width}: per-layer factor "
                 f"of ‖∂L/∂h_l‖² over layers {a}–{b} (geometric mean, median over seeds "
                 f"{FACTOR_BASE_SEED}…, relative SE {se:.2g}) matches the mean-field χ(q_l) "
                 f"along the q trajectory within {K_SE:g} SE", float(np.exp(log_factor)),
                 predicted, tolerance(se), SOURCE, kind="rel")
