"""Order-to-chaos phase diagram of gradient flow for tanh networks.

log10 of the first- to last-layer back-propagated gradient ratio ‖∂L/∂h_1‖/‖∂L/∂h_d‖ over a
(σ_w², depth) grid at two σ_b², with the mean-field asymptotic critical line χ₁(q*) = 1,
the finite-depth mean-field contour where the ratio is 1 (the q_l transient shifts it),
and the depth scales ξ_c and 6ξ_c (Schoenholz et al. 2017: trainable up to ≈ 6ξ_c).
"""

import math

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gradstudy import MLPSpec, Sweep, plotting, status, theory
from gradstudy.studies import (
    K_SE,
    Claim,
    finite_median,
    first_last_log10_ratio,
    median_zero_crossing,
    require,
    rms_standardized_residual,
    tolerance,
    zero_crossing,
)
from gradstudy.theory import log10_backprop_ratio

NAME = "phase_diagram"
DESCRIPTION = "log10 first/last-layer gradient ratio over (σ_w², depth), tanh, with critical line"
SCALES = {
    "smoke": {"sigma_w2": [round(x, 3) for x in np.linspace(0.5, 4.0, 15)], "sigma_b2": [0.0, 0.05],
              "depths": [2, 4, 8, 16, 32], "width": 64, "batch": 8, "seeds": 4},
    "paper": {"sigma_w2": [round(x, 3) for x in np.linspace(0.5, 4.0, 29)],
              "sigma_b2": [0.0, 0.05], "depths": [2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128],
              "width": 128, "batch": 16, "seeds": 8},
}
# `--set` bounds (gradstudy.studies.Limit): grids increasing; each σ_b² is one panel.
LIMITS = {
    "sigma_w2": {"range": (1e-3, 100.0), "len": (2, 256), "increasing": True, "distinct": True},
    "sigma_b2": {"range": (0.0, 10.0), "len": (1, 8), "distinct": True},
    "depths": {"range": (2, 4096), "len": (2, 64), "increasing": True},
    "width": (1, 65536),  # what does not fit the memory budget is refused with its estimate
    "batch": (1, 4096),
    "seeds": (3, 1024),  # >= 3: claims need an error bar over seeds
}
SOURCE = "mean-field theory (Schoenholz et al. 2017), gradstudy.theory.log10_backprop_ratio"
SOURCE_ASYMPTOTIC = "mean-field theory: asymptotic critical point χ₁(q*) = 1, theory.py"
# Grid claim: per cell z = (median over seeds − prediction) / SE of the median.  Pure seed
# noise gives RMS z ≈ √((n−1)/(n−3)) (t-distributed z): 1.7 at n = 4 seeds, 1.2 at n = 8;
# allowed: 3, so a bias of ≈ 2.5 SE in every cell fails.
GRID_Z_RMS_MAX = 3.0


def validate(p):
    for key in ("sigma_w2", "depths"):
        values = list(p[key])
        require(len(values) >= 2 and values == sorted(set(values)), key,
                f"needs >= 2 increasing distinct values, got {values}")
    require(min(p["sigma_w2"]) > 0, "sigma_w2", f"must be > 0, got {p['sigma_w2']}")
    require(min(p["sigma_b2"]) >= 0, "sigma_b2", f"must be >= 0, got {p['sigma_b2']}")
    require(min(p["depths"]) >= 2, "depths", f"must be >= 2, got {p['depths']}")


def run(ctx, p):
    s2w, s2b, depths = np.asarray(p["sigma_w2"]), np.asarray(p["sigma_b2"]), p["depths"]
    points, labels = [], []
    for b2 in s2b:
        for w2 in s2w:
            points.append(MLPSpec(width=p["width"], depth=max(depths), activation="tanh",
                                  sigma_w=math.sqrt(w2), sigma_b=math.sqrt(b2)))
            labels.append(f"σ_b²={b2:g} σ_w²={w2:g}")
    ds = ctx.sweep(Sweep(points=points, depths=depths, seeds=p["seeds"], batch=p["batch"],
                         labels=labels))
    # (point, seed, depth) from (point, seed, depth, layer)
    log_ratio_h = first_last_log10_ratio(ds.backprop_norm.values, depths)
    med_h = finite_median(log_ratio_h, axis=1).reshape(len(s2b), len(s2w), len(depths))
    nonfinite = (~np.isfinite(log_ratio_h)).any(axis=1).reshape(med_h.shape)
    ctx.extra.setdefault("measured", {}).update(
        # the grid's values per point (σ_b² major, as the points were built), not the
        # coordinates' σ_w² = σ_w·σ_w, which reads 0.5000000000000001
        _measured(ds.preact_q_status.values, np.tile(s2w, len(s2b)),
                  np.repeat(s2b, len(s2w)), ds.layer.values, int(nonfinite.sum())))

    claims = []
    fine = np.linspace(s2w[0], s2w[-1], 200)
    with plotting.style():
        fig, axes = plotting.figure("double", 3.0, ncols=len(s2b), sharey=True)
        axes = np.atleast_1d(axes)
        vmax = 6.0  # decades; the colour bar extends beyond, so the transition stays readable
        for k, (ax, b2) in enumerate(zip(axes, s2b)):
            mesh = ax.pcolormesh(plotting.cell_edges(s2w),
                                 plotting.cell_edges(np.log2(depths)), med_h[k].T,
                                 cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="flat")
            bad = np.argwhere(nonfinite[k])
            if bad.size:
                ax.scatter(s2w[bad[:, 0]], np.log2(np.asarray(depths))[bad[:, 1]], marker="x",
                           color="k", s=10, label="inf/NaN in a seed")
            ax.contour(s2w, np.log2(depths), med_h[k].T, levels=[0.0], colors="k",
                       linewidths=1.0)
            crit = float(theory.critical_sigma_w2(jnp.tanh, float(b2), 0.5, 4.0))
            ax.axvline(crit, color="k", ls="--", lw=1.0)
            ax.text(crit, np.log2(depths[0]) - 0.4, f" {crit:.2f}", fontsize=7, va="bottom")
            xi = np.asarray(theory.mean_field(jnp.tanh, jnp.asarray(fine), float(b2)).xi_c)
            with np.errstate(divide="ignore", invalid="ignore"):
                for mult, ls in [(1, ":"), (6, "-.")]:
                    ax.plot(fine, np.log2(mult * xi), color="k", ls=ls, lw=0.9,
                            label=rf"depth = {mult}$\xi_c$" if mult > 1 else r"depth = $\xi_c$")
            ax.set_ylim(np.log2(depths[0]) - 0.5, np.log2(depths[-1]) + 0.5)
            ax.set_yticks(np.log2(depths), [str(d) for d in depths])
            ax.set_xlabel(r"$\sigma_w^2$")
            ax.set_title(rf"tanh, $\sigma_b^2$ = {b2:g}")
            # mean-field contour where the ratio is 1, at every depth on a fine σ_w² grid
            fine_ratio = log10_backprop_ratio(points[0], np.arange(2, depths[-1] + 1), fine, b2)
            contour = [zero_crossing(fine, fine_ratio[:, j]) for j in range(fine_ratio.shape[1])]
            ax.plot(contour, np.log2(np.arange(2, depths[-1] + 1)), color="0.45", lw=2.2,
                    alpha=0.8, label="mean field: ratio = 1")
            claims += _claims(b2, s2w, depths, log_ratio_h[k * len(s2w):(k + 1) * len(s2w)],
                              med_h[k], log10_backprop_ratio(points[0], depths, s2w, b2), crit)
        axes[0].set_ylabel("depth $d$ (layers)")
        cbar = fig.colorbar(mesh, ax=list(axes), pad=0.02, extend="both")
        cbar.set_label(r"$\log_{10}\,\|\partial L/\partial h_1\| / \|\partial L/\partial h_d\|$"
                       "\n(median over seeds)")
        handles, names = axes[-1].get_legend_handles_labels()
        handles += [plt.Line2D([], [], color="k", lw=1.0), plt.Line2D([], [], color="k", ls="--")]
        names += ["measured: ratio = 1", r"mean field: $\chi_1(q^*) = 1$ (asymptotic)"]
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.45, 0.0), ncol=3)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
    return claims


def _measured(q_status, s2w, s2b, layers, nonfinite_cells) -> dict:
    """Where the recorded pre-activation variance q_l underflowed to 0, which the figure's
    caption quotes: ``preact_q_underflow/{values, layer_min, layer_max, sigma_w2_min,
    sigma_w2_max, sigma_b2_min, sigma_b2_max}`` (the extremes over the underflowed values;
    NaN where none underflowed), and ``nonfinite_ratio_cells``, the (σ_b², σ_w², depth) cells
    where some seed's ratio is infinite or NaN.

    ``q_status``: (point, seed, layer) status codes; ``s2w``, ``s2b``: per point; ``layers``:
    the layer numbers.
    """
    point, _, layer = np.nonzero(np.asarray(q_status) == status.UNDERFLOW)

    def extremes(name, values):
        if not values.size:
            return {f"{name}_min": float("nan"), f"{name}_max": float("nan")}
        return {f"{name}_min": float(values.min()), f"{name}_max": float(values.max())}

    under = {"values": int(point.size)}
    under.update(extremes("layer", np.asarray(layers)[layer]))
    under.update(extremes("sigma_w2", np.asarray(s2w, float)[point]))
    under.update(extremes("sigma_b2", np.asarray(s2b, float)[point]))
    return {"preact_q_underflow": under, "nonfinite_ratio_cells": nonfinite_cells}


def _claims(b2, s2w, depths, log_ratio, med, predicted, asymptotic):
    """Crossing at the deepest depth, its shift from the asymptotic critical point (where the
    data resolve it), and the whole grid, each against mean field along the q_l trajectory.

    ``log_ratio``: (σ_w², seed, depth) per-seed log10 ratios; ``med``: their medians.
    """
    claims = []
    per_seed = np.moveaxis(log_ratio, 1, 0)  # (seed, σ_w², depth)
    measured, se = median_zero_crossing(s2w, per_seed[:, :, -1])  # deepest depth
    # the prediction interpolated on the same σ_w² grid, so interpolation error cancels
    expected = zero_crossing(s2w, predicted[:, -1])
    tol = tolerance(se)
    claims.append(Claim(
        f"crossing_sigma_w2_b{b2:g}",
        f"σ_b²={b2:g}, depth {depths[-1]}: σ_w² where ‖∂L/∂h_1‖ = ‖∂L/∂h_d‖ (median over "
        f"seeds, linear interpolation on the σ_w² grid) matches the mean-field trajectory "
        f"prediction within {K_SE:g} bootstrap SE ({se:.2g})", measured, expected, tol,
        SOURCE))
    if abs(expected - asymptotic) > tol:  # the finite-depth shift is resolved by these data
        claims.append(Claim(
            f"crossing_shift_b{b2:g}",
            f"σ_b²={b2:g}, depth {depths[-1]}: the measured crossing lies above the asymptotic "
            f"critical point σ_w² = {asymptotic:.3f} by more than {K_SE:g} bootstrap SE "
            "(finite-depth shift)", measured, asymptotic + tol, 0.0, SOURCE_ASYMPTOTIC,
            kind="greater"))
    claims.append(Claim(
        f"ratio_grid_b{b2:g}",
        f"σ_b²={b2:g}: log10 ‖∂L/∂h_1‖/‖∂L/∂h_d‖ over the {med.size}-cell (σ_w², depth) grid "
        f"matches mean field: RMS over cells of (median − prediction)/SE ≤ {GRID_Z_RMS_MAX:g}",
        rms_standardized_residual(per_seed, predicted), 0.0, GRID_Z_RMS_MAX, SOURCE))
    return claims


