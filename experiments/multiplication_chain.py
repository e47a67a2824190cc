"""The seed's picture made exact: a gradient multiplied by the same factor at every layer.

Measured ∂x_D/∂x_0 of a chain x_{l+1} = a·x_l by reverse mode, against the closed form a^D,
in float32 and float64; marks where finite precision underflows to 0 or overflows to inf.
"""

import numpy as np

from gradstudy import plotting
from gradstudy.studies import Claim, require
from gradstudy.theory import (
    chain_closed_form,
    chain_gradients,
    first_nonfinite_or_zero,
    predicted_breakdown_depth,
)

NAME = "multiplication_chain"
DESCRIPTION = "gradient = factor^depth through a chain, float32 vs float64 under/overflow"
SCALES = {
    "smoke": {"factors": [0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 3.0], "max_depth": 200},
    "paper": {"factors": [0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0], "max_depth": 1200},
}
# `--set` bounds (gradstudy.studies.Limit): the run takes ~len(factors)·max_depth² steps;
# distinct factors, since each names its claims.
LIMITS = {
    "factors": {"range": (1e-3, 1e3), "len": (1, 16), "distinct": True},
    "max_depth": (1, 20_000),
}
DTYPES = ("float32", "float64")


def validate(p):
    require(p["max_depth"] >= 1, "max_depth", f"must be >= 1, got {p['max_depth']}")
    require(len(p["factors"]) >= 1 and all(f > 0 for f in p["factors"]), "factors",
            f"must be positive numbers, got {p['factors']}")


def run(ctx, p):
    factors = np.asarray(p["factors"], float)
    depths = np.arange(1, p["max_depth"] + 1)
    claims = []
    with plotting.style():
        fig, axes = plotting.figure("double", 2.6, ncols=2, sharey=False)
        for ax, dtype in zip(axes, DTYPES):
            measured = chain_gradients(factors, depths, dtype)
            exact = chain_closed_form(factors, depths, dtype)
            info = np.finfo(dtype)
            breakdown = first_nonfinite_or_zero(measured, depths)
            ok = np.isfinite(measured) & (measured != 0)
            rel = np.abs(measured[ok] / exact[ok].astype(float) - 1) if ok.any() else [np.nan]
            # D roundings of a product are bounded by γ_D = D·u/(1 − D·u) (Higham 2002, §3.1)
            u = info.eps / 2
            bound = depths[-1] * u / (1 - depths[-1] * u)
            claims.append(Claim(
                f"closed_form_{dtype}",
                f"{dtype}: measured ∂x_D/∂x_0 equals factor^D where finite (max rel. error ≤ D·u)",
                float(np.max(rel)), 0.0, float(bound),
                "closed form: chain rule, rounding bound γ_D (Higham 2002, §3.1)"))
            for i, a in enumerate(factors):
                lo, hi = predicted_breakdown_depth(a, dtype)
                if not (np.isfinite(lo) and lo <= depths[-1]):
                    continue
                kind = "underflows to 0" if a < 1 else "overflows to inf"
                claims.append(Claim(
                    f"breakdown_{dtype}_{a:g}",
                    f"{dtype}, factor {a:g}: gradient {kind} at depth in [{lo:g}, {hi:g}]",
                    float(breakdown[i]), lo, 0.0, "closed form: IEEE 754 range of "
                    f"{dtype} (flush-to-zero or gradual underflow)", kind="range", upper=hi))
            _draw(ax, dtype, factors, depths, measured, breakdown, info)
        axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title="factor per layer")
        plotting.save_figure(fig, ctx.figures_dir, NAME)
    return claims


def _draw(ax, dtype, factors, depths, measured, breakdown, info):
    # diverging around factor 1: blues vanish, reds explode, grey stays; ≥ 3:1 on white
    colors = plotting.diverging_colors(factors, center=1.0)
    with np.errstate(divide="ignore"):
        logm = np.log10(np.abs(measured))
    for i, a in enumerate(factors):
        c = colors[i]
        ax.plot(depths, depths * np.log10(a), color=c, lw=0.8, ls="--", alpha=0.8)
        good = np.isfinite(logm[i])
        ax.plot(depths[good], logm[i][good], color=c, lw=1.4, label=f"{a:g}")
        if np.isfinite(breakdown[i]):
            j = int(breakdown[i]) - 1
            under = measured[i, j] == 0
            y = np.log10(info.tiny) if under else np.log10(info.max)
            ax.plot(depths[j], y, marker="v" if under else "x", color=c, ms=6, mew=1.5,
                    ls="none")
    for y, txt in [(np.log10(info.max), f"{dtype} max"), (np.log10(info.tiny), "smallest normal")]:
        ax.axhline(y, color="0.4", lw=0.6, ls=":")
        # where no line crosses these levels in the default sweep
        x = (0.35 if y > 0 else 0.45) * depths[-1]
        ax.text(x, y, txt, ha="center", va="bottom" if y > 0 else "top", fontsize=6,
                color="0.3")
    span = 1.25 * np.log10(info.max)
    ax.set_ylim(-span, span)
    ax.set_xlim(0, depths[-1])
    ax.set_xlabel("depth D (layers)")
    ax.set_ylabel(r"$\log_{10}|\partial x_D/\partial x_0|$")
    ax.set_title(f"{dtype}: measured (solid) vs factor$^D$ (dashed);\n"
                 "▼ underflow to 0, ✕ overflow to inf", fontsize=7)
