"""Per-layer gradient norms through a deep MLP for four activations × four initializations.

Median over seeds with a 10–90 % band, mean-field prediction dashed (anchored at the last
layer).  Claims: the first-to-last-layer gradient ratio and the per-layer factor of
‖∂L/∂h_l‖² against mean-field theory.
"""

import math

import numpy as np

from gradstudy import MLPSpec, Sweep, plotting
from gradstudy.predictions import (
    backprop_factors,
    backprop_profile,
    preactivation_q,
    weight_grad_profile,
)
from gradstudy.study import Claim, finite_median, require

NAME = "depth_profile"
DESCRIPTION = "per-layer ‖∂L/∂W_l‖, ‖∂L/∂h_l‖ vs layer: 4 activations × 4 inits, with theory"
SCALES = {
    "smoke": {"width": 64, "depth": 16, "seeds": 4, "batch": 16,
              "tanh_sigma_w2": [0.8, 1.0, 1.5, 2.0], "dtype": "float64"},
    "paper": {"width": 256, "depth": 64, "seeds": 16, "batch": 32,
              "tanh_sigma_w2": [0.8, 1.0, 1.5, 2.0], "dtype": "float64"},
}
# float64 by default: at depth 64 the vanishing profiles reach 1e-60, below float32's range
# (multiplication_chain shows that breakdown); `--set dtype=float32` shows it here.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
INITS = {  # label -> (init family, gain σ_w, short id)
    "Gaussian σ_w=0.5": ("gaussian", 0.5, "gauss0.5"),
    "Xavier": ("glorot_normal", 1.0, "xavier"),
    "He": ("he_normal", 1.0, "he"),
    "Gaussian σ_w=3": ("gaussian", 3.0, "gauss3"),
}
SOURCE = "mean field (Poole et al. 2016; Schoenholz et al. 2017)"


def validate(p):
    require(p["depth"] >= 8, "depth",
            f"must be >= 8 (claims use layers L/4..3L/4), got {p['depth']}")
    require(all(s2 > 0 for s2 in p["tanh_sigma_w2"]), "tanh_sigma_w2",
            f"must be > 0, got {p['tanh_sigma_w2']}")
    require(p["dtype"] in ("float32", "float64"), "dtype",
            f"unknown value {p['dtype']!r}; allowed: float32, float64")


def run(ctx, p):
    width, depth = p["width"], p["depth"]
    points, labels = [], []
    for act in ACTIVATIONS:
        for label, (init, gain, _) in INITS.items():
            points.append(MLPSpec(width=width, depth=depth, activation=act, init=init,
                                  sigma_w=gain, dtype=p["dtype"]))
            labels.append(f"{act} | {label}")
    for s2 in p["tanh_sigma_w2"]:
        points.append(MLPSpec(width=width, depth=depth, activation="tanh",
                              sigma_w=math.sqrt(s2), dtype=p["dtype"]))
        labels.append(f"tanh | σ_w²={s2:g}")
    ds = ctx.sweep(Sweep(points=points, depths=(depth,), seeds=p["seeds"], batch=p["batch"],
                         labels=labels))
    bp = ds.backprop_norm.isel(depth=0).values  # (point, seed, layer)
    wg = ds.weight_grad_norm.isel(depth=0).values
    claims = []
    layers = np.arange(1, depth + 1)
    with plotting.style():
        fig, axes = plotting.figure("double", 4.4, nrows=2, ncols=4, sharex=True)
        marked = False
        for col, act in enumerate(ACTIVATIONS):
            for k, label in enumerate(INITS):
                i = labels.index(f"{act} | {label}")
                spec, color = points[i], plotting.OKABE_ITO[k]
                for row, (data, profile) in enumerate([(wg[i], weight_grad_profile),
                                                       (bp[i], backprop_profile)]):
                    ax = axes[row, col]
                    plotting.median_band(ax, layers, data, color,
                                         label=label.replace("σ_w", r"$\sigma_w$"))
                    marked |= plotting.mark_nonfinite(ax, layers, data, color)
                    anchor = finite_median(data[:, -1])
                    # theory on top in near-black: where it matches, it would hide under data
                    ax.plot(layers, anchor * profile(spec, 1.0, depth), color="0.1", ls="--",
                            lw=0.7, zorder=4)
                claims.append(_ratio_claim(act, label, spec, bp[i], depth))
            axes[0, col].set_title(act)
            axes[1, col].set_xlabel("layer $l$")
        for ax in axes.flat:
            ax.set_yscale("log")
        axes[0, 0].set_ylabel(r"$\|\partial L/\partial W_l\|_F$")
        axes[1, 0].set_ylabel(r"$\|\partial L/\partial h_l\|$")
        handles, names = axes[0, 0].get_legend_handles_labels()
        handles.append(axes[0, 0].plot([], [], color="0.1", ls="--", lw=0.7)[0])
        names.append("mean field")
        if marked:  # explain the markers only where some are drawn
            handles.append(axes[0, 0].scatter([], [], marker="x", color="0.3"))
            names.append("inf/NaN in a seed")
            handles.append(axes[0, 0].scatter([], [], marker="v", color="0.3"))
            names.append("0 (underflow) in a seed")
        fig.legend(handles, names, loc="lower center", ncol=7, bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        plotting.save_figure(fig, ctx.figures_dir, NAME)

        # the per-layer factor of ‖∂L/∂h_l‖² for tanh at σ_b = 0 along the q_l trajectory
        fig, ax = plotting.figure("single")
        for k, s2 in enumerate(p["tanh_sigma_w2"]):
            i = labels.index(f"tanh | σ_w²={s2:g}")
            spec, color = points[i], plotting.OKABE_ITO[k]
            ratio = (bp[i][:, :-1] / bp[i][:, 1:]) ** 2
            plotting.median_band(ax, layers[:-1], ratio, color, label=rf"$\sigma_w^2$={s2:g}")
            ax.plot(layers[:-1], backprop_factors(spec, preactivation_q(spec, 1.0, depth))[:-1],
                    color=color, ls="--", lw=0.9)
            claims.append(_factor_claim(s2, spec, bp[i], depth, width))
        ax.set_yscale("log")
        ax.set_xlabel("layer $l$")
        ax.set_ylabel(r"$\|\partial L/\partial h_l\|^2 / \|\partial L/\partial h_{l+1}\|^2$")
        ax.set_title("tanh, $\\sigma_b=0$: measured (median, 10–90 %)\n"
                     "vs mean-field $\\chi(q_l)$ (dashed)")
        ax.legend(ncol=2)
        plotting.save_figure(fig, ctx.figures_dir, "tanh_backprop_factor")
    return claims


def _ratio_claim(act, label, spec, bp, depth):
    """log10 ‖δ_1‖/‖δ_L‖ (median over seeds) against the mean-field product of χ(q_l)."""
    predicted = float(np.log10(backprop_profile(spec, 1.0, depth)[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = finite_median(np.log10(bp[:, 0] / bp[:, -1]))
    # 0.3 decades: the O(L/width) finite-width scale (64/256 in ln units ≈ 0.1 decade per
    # unit coefficient), plus 2 % of the predicted number of decades
    return Claim(f"ratio_{act}_{INITS[label][2]}",
                 f"{act}, {label}: log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖ (median over seeds) matches "
                 "mean field within 0.3 + 2 % of the prediction", measured, predicted,
                 0.3 + 0.02 * abs(predicted), SOURCE)


def _factor_claim(s2, spec, bp, depth, width):
    """Per-layer factor of ‖δ_l‖² over the middle half of the stack vs χ(q_l) there."""
    a, b = depth // 4, 3 * depth // 4  # away from both ends
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = float(np.median((bp[:, a - 1] / bp[:, b - 1]) ** 2) ** (1 / (b - a)))
    chi = backprop_factors(spec, preactivation_q(spec, 1.0, depth))
    predicted = float(np.exp(np.mean(np.log(chi[a - 1:b - 1]))))
    return Claim(f"chi_tanh_{s2:g}", f"tanh σ_b=0 σ_w²={s2:g}, width {width}: per-layer factor "
                 f"of ‖∂L/∂h_l‖² over layers {a}–{b} (median over seeds) within 5 % of the "
                 "mean-field χ(q_l) along the q trajectory", measured, predicted, 0.05, SOURCE,
                 kind="rel")
