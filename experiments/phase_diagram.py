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

from gradstudy import MLPSpec, Sweep, plotting, theory
from gradstudy.predictions import log10_backprop_ratio
from gradstudy.study import Claim, finite_median, require

NAME = "phase_diagram"
DESCRIPTION = "log10 first/last-layer gradient ratio over (σ_w², depth), tanh, with critical line"
SCALES = {
    "smoke": {"sigma_w2": [round(x, 3) for x in np.linspace(0.5, 4.0, 15)], "sigma_b2": [0.0, 0.05],
              "depths": [2, 4, 8, 16, 32], "width": 64, "batch": 8, "seeds": 4},
    "paper": {"sigma_w2": [round(x, 3) for x in np.linspace(0.5, 4.0, 29)],
              "sigma_b2": [0.0, 0.05], "depths": [2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128],
              "width": 128, "batch": 16, "seeds": 8},
}
SOURCE = "mean field (Schoenholz et al. 2017)"
CRIT_TOL = 0.1  # σ_w² resolution a finite-depth, finite-width measurement can claim
# Normalised RMS error allowed over the grid: the 8-seed median of a log-ratio spread
# ±0.2 decades has a standard error ≈ 0.1 decade, ≈ 2 % of the deepest predictions.
GRID_RMS_TOL = 0.05


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
    depth_idx = np.arange(len(depths))
    last = np.asarray(depths) - 1  # index of layer d in a depth-d network
    bp = ds.backprop_norm.values  # (point, seed, depth, layer)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio_h = np.log10(bp[:, :, :, 0] / bp[:, :, depth_idx, last])  # (point, seed, depth)
    med_h = finite_median(log_ratio_h, axis=1).reshape(len(s2b), len(s2w), len(depths))
    nonfinite = (~np.isfinite(log_ratio_h)).any(axis=1).reshape(med_h.shape)

    claims = []
    fine = np.linspace(s2w[0], s2w[-1], 200)
    with plotting.style():
        fig, axes = plotting.figure("double", 3.0, ncols=len(s2b), sharey=True)
        axes = np.atleast_1d(axes)
        vmax = 6.0  # decades; the colour bar extends beyond, so the transition stays readable
        for k, (ax, b2) in enumerate(zip(axes, s2b)):
            mesh = ax.pcolormesh(_edges(s2w), _edges(np.log2(depths)), med_h[k].T,
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
            contour = [_zero_crossing(fine, fine_ratio[:, j]) for j in range(fine_ratio.shape[1])]
            ax.plot(contour, np.log2(np.arange(2, depths[-1] + 1)), color="0.45", lw=2.2,
                    alpha=0.8, label="mean field: ratio = 1")
            predicted = log10_backprop_ratio(points[0], depths, s2w, b2)
            measured_crit = _zero_crossing(s2w, med_h[k, :, -1])
            claims.append(Claim(
                f"crossing_sigma_w2_b{b2:g}",
                f"σ_b²={b2:g}, depth {depths[-1]}: σ_w² where ‖∂L/∂h_1‖ = ‖∂L/∂h_d‖ "
                f"(interpolated) matches the mean-field trajectory prediction ±{CRIT_TOL}",
                measured_crit, _zero_crossing(fine, fine_ratio[:, -1]), CRIT_TOL, SOURCE))
            err = (med_h[k] - predicted) / np.maximum(np.abs(predicted), 1.0)
            claims.append(Claim(
                f"ratio_grid_b{b2:g}",
                f"σ_b²={b2:g}: log10 ‖∂L/∂h_1‖/‖∂L/∂h_d‖ over the (σ_w², depth) grid matches "
                f"mean field: RMS of error / max(|prediction|, 1 decade) ≤ {GRID_RMS_TOL}",
                float(np.sqrt(np.mean(err**2))), 0.0, GRID_RMS_TOL, SOURCE))
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


def _edges(centers):
    c = np.asarray(centers, float)
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _zero_crossing(x, y):
    """First x where y changes sign from negative to positive (linear interpolation)."""
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * (-y[i]) / (y[i + 1] - y[i]))
    return float("nan")
