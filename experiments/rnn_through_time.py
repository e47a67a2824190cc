"""Gradients through time at initialization: vanilla RNNs, IRNN, LSTM, GRU; the recurrent scale.

With states s_t (s_0 = 0, one step per input) and lag k = T − t, a vanilla cell has
∂s_T/∂s_t = Π diag φ'(z_τ) W, so ‖∂s_T/∂s_t‖₂ ≤ (γ λ₁)^k, λ₁ = ‖W‖₂, γ = sup|φ'| (1 for
tanh and ReLU, ¼ for the sigmoid).  Expectations, stated before measuring (Pascanu,
Mikolov & Bengio 2013):

* λ₁ < 1/γ is sufficient for vanishing: the bound holds at every lag, for every seed and
  recurrent scale ρ (orthogonal W·ρ: λ₁ = ρ exactly).
* λ₁ > 1/γ is necessary for exploding: the tanh RNN's per-step rate
  (‖∂s_T/∂s_0‖₂)^(1/T) exceeds 1 only at ρ > 1.
* For a linear RNN with W = ρQ (Q orthogonal), ∂s_T/∂s_0 = (ρQ)^T: ‖·‖₂ = ρ^T exactly.
* IRNN (ReLU, W = I, b = 0; Le, Jaitly & Hinton 2015): ∂s_T/∂s_t is a product of 0/1
  diagonal masks, so its norm is exactly 1 while some unit stays active over the lag.
The mean-field rate √χ₁ of a tanh layer with σ_w = ρ and σ_b² = the input variance is drawn
for reference only: the weights here are tied across time and the norm is the largest
singular value, which mean field does not describe.  Gated cells (LSTM, GRU; flax's
default initializers: orthogonal recurrent kernels, zero biases) are measured at init
without an expectation: their memory is learned (``long_memory``).
"""

import numpy as np
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from gradstudy import Sweep, plotting
from gradstudy.families.rnn import RNNSpec, pascanu_bound_ratio, per_step_rate
from gradstudy.studies import Claim
from gradstudy.theory import mean_field_rate

NAME = "rnn_through_time"
DESCRIPTION = "‖∂L/∂h_t‖ and ‖∂h_T/∂h_t‖ through time at init; Pascanu's bound over ρ"
SCALES = {
    "smoke": {"hidden": 32, "length": 40, "seeds": 4, "batch": 8,
              "rhos": [0.5, 0.9, 1.0, 1.5, 2.5, 4.0]},
    "paper": {"hidden": 64, "length": 100, "seeds": 16, "batch": 16,
              "rhos": [0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6, 2.0, 3.0, 4.0]},
}
LIMITS = {"hidden": (2, 1024), "length": (11, 2000), "seeds": (2, 1024), "batch": (1, 1024),
          "rhos": {"range": (0.01, 20.0), "len": (3, 32), "distinct": True,
                   "increasing": True}}
CELLS = {"tanh RNN": ("tanh", "orthogonal"), "ReLU RNN": ("relu", "gaussian"),
         "IRNN": ("relu", "identity"), "LSTM": ("lstm", "orthogonal"),
         "GRU": ("gru", "orthogonal")}
IRNN_LAG = 10  # lag at which the IRNN's Jacobian norm is checked to be exactly 1
SOURCE = "Pascanu, Mikolov & Bengio 2013 (Sec. 2.1); Le, Jaitly & Hinton 2015 (IRNN)"


def run(ctx, p):
    cells = ctx.sweep(Sweep(points=tuple(
        RNNSpec(cell=cell, hidden=p["hidden"], length=p["length"], recurrent_init=init)
        for cell, init in CELLS.values()), depths=(p["length"],), seeds=p["seeds"],
        batch=p["batch"], labels=tuple(CELLS)), tag="cells")
    scale = {cell: ctx.sweep(Sweep(points=tuple(
        RNNSpec(cell=cell, hidden=p["hidden"], length=p["length"], recurrent_init="orthogonal",
                recurrent_scale=rho, dtype="float64") for rho in p["rhos"]),
        depths=(p["length"],), seeds=p["seeds"], batch=p["batch"]), tag=f"scale-{cell}")
        for cell in ("linear", "tanh")}
    claims = _claims(p, cells, scale)
    ctx.extra.setdefault("measured", {}).update(_measured(p, scale["tanh"].jacobian_norm))
    _draw(ctx, p, cells, scale)
    return claims


def _claims(p, cells, scale):
    rhos, T = np.asarray(p["rhos"]), p["length"]
    lin = scale["linear"].jacobian_norm.values[..., -1]  # (rho, seed)
    tanh_rate = np.median(per_step_rate(scale["tanh"].jacobian_norm), axis=1)
    above = rhos[tanh_rate > 1]
    irnn = cells.jacobian_norm.sel(point="IRNN").values[:, IRNN_LAG]
    tanh_init = cells.state_grad_norm.sel(point="tanh RNN").values
    claims = [
        Claim("linear_orthogonal_rho_T",
              f"linear RNN, W = ρQ: ‖∂s_T/∂s_0‖₂ = ρ^T exactly, T = {T} (largest relative "
              "error over ρ and seeds, float64)",
              float(np.max(np.abs(lin / rhos[:, None] ** T - 1))), 0.0, 1e-9, SOURCE),
        Claim("tanh_pascanu_bound",
              "tanh RNN: ‖∂s_T/∂s_t‖₂ ≤ λ₁^(T−t) at every lag, ρ and seed (largest ratio "
              "to the bound; rounding allowance 1e-9)",
              float(np.max(pascanu_bound_ratio(scale["tanh"].jacobian_norm,
                                               scale["tanh"].recurrent_top_singular))),
              1.0 + 1e-9, 0.0, SOURCE,
              kind="less"),
        Claim("irnn_isometry_at_lag",
              f"IRNN: ‖∂s_T/∂s_(T−{IRNN_LAG})‖₂ = 1 (a product of 0/1 masks with an active "
              "unit; median over seeds)", float(np.median(irnn)), 1.0, 1e-6, SOURCE),
        Claim("tanh_vanishes_at_init",
              f"tanh RNN, orthogonal W (ρ = 1): ‖∂L/∂s_0‖/‖∂L/∂s_T‖ < 1e-3 at T = {T} "
              "(median over seeds)", float(np.median(tanh_init[:, -1] / tanh_init[:, 0])),
              1e-3, 0.0, SOURCE, kind="less"),
    ]
    if (rhos < 1).any():
        claims.append(Claim(
            "tanh_vanishes_below",
            "tanh RNN, λ₁ = ρ < 1/γ = 1: the gradient vanishes (largest per-step rate "
            "(‖∂s_T/∂s_0‖₂)^(1/T), median over seeds, below 1)",
            float(np.max(tanh_rate[rhos < 1])), 1.0, 0.0, SOURCE, kind="less"))
    if above.size:  # (no claim where no ρ of the grid explodes: it is not sufficient)
        claims.append(Claim(
            "tanh_explodes_only_above",
            "tanh RNN: the smallest ρ whose median per-step rate exceeds 1 (exploding) is "
            "above 1/γ = 1 (necessary condition)", float(above.min()), 1.0, 0.0, SOURCE,
            kind="greater"))
    return claims


def _measured(p, tanh_jacobian_norm) -> dict:
    """The tanh RNN's per-step rate (‖∂s_T/∂s_0‖₂)^(1/T), median over seeds, at every ρ of
    the grid (``tanh_rate/rho<ρ>``: not a bare number, which the numbers file would read as
    a list index), as panel (c) draws it and the text quotes it."""
    rate = np.median(per_step_rate(tanh_jacobian_norm), axis=1)
    return {"tanh_rate": {f"rho{rho:g}": float(r) for rho, r in zip(p["rhos"], rate)}}


# -------------------------------------------------------------------------- figure
def _draw(ctx, p, cells, scale):
    rhos, T = np.asarray(p["rhos"]), p["length"]
    lags = np.arange(T + 1)
    with plotting.style():
        fig, axes = plotting.figure("double", 2.9, ncols=3, gridspec_kw={"wspace": 0.42})
        ax = axes[0]
        for k, label in enumerate(CELLS):
            g = cells.state_grad_norm.sel(point=label).values
            plotting.median_band(ax, lags, g / g[:, :1], plotting.OKABE_ITO[k], label=label)
        ax.set_yscale("log")
        ax.set_xlabel("lag T − t")
        ax.set_ylabel(r"$\|\partial L/\partial s_t\| \;/\; \|\partial L/\partial s_T\|$")
        ax.set_title(f"(a) at init, hidden {p['hidden']}, {p['seeds']} seeds\n"
                     "(median, 10–90 %)", fontsize=7)
        ax.legend(fontsize=5.5, loc="lower left")

        ax = axes[1]
        colors = plotting.diverging_colors(rhos, center=1.0)
        ds = scale["tanh"]
        shown = range(0, len(rhos), 2 if len(rhos) > 6 else 1)  # a readable legend
        for k in shown:
            rho = rhos[k]
            jac = ds.jacobian_norm.values[k]
            ax.plot(lags, np.median(jac, axis=0), color=colors[k], label=f"ρ = {rho:g}")
            ax.plot(lags, rho ** lags, color=colors[k], ls=":", lw=0.8)
        ax.plot([], [], color="0.4", ls=":", lw=0.8, label=r"bound $\lambda_1^k$")
        ax.set_yscale("log")
        ax.set_ylim(1e-12, 1e12)
        ax.set_xlabel("lag k = T − t")
        ax.set_ylabel(r"$\|\partial s_T/\partial s_t\|_2$ (median)")
        ax.set_title("(b) tanh RNN, W = ρQ:\nmeasured (solid), Pascanu's bound (dotted)",
                     fontsize=7)
        # below the panel: inside, every corner is crossed by a curve or its bound
        ax.legend(fontsize=5, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))

        ax = axes[2]
        ax.axvspan(rhos.min() * 0.9, 1.0, color="0.92",
                   label=r"$\lambda_1 < 1/\gamma$: vanishing")
        grid = np.geomspace(rhos.min(), rhos.max(), 100)
        ax.plot(grid, grid, color="0.3", ls="--", lw=0.9,
                label=r"bound $\gamma\lambda_1$ (= linear RNN)")
        ax.plot(grid, mean_field_rate(grid), color="0.5", ls=":", lw=0.9,
                label=r"mean field $\sqrt{\chi_1}$ (reference)")
        for k, cell in enumerate(("linear", "tanh")):
            r = per_step_rate(scale[cell].jacobian_norm)
            lam = np.median(scale[cell].recurrent_top_singular.values, axis=1)
            ax.errorbar(lam, np.median(r, axis=1),
                        yerr=np.abs(np.percentile(r, [10, 90], axis=1) - np.median(r, axis=1)),
                        fmt="o" if k == 0 else "s", ms=3, color=plotting.OKABE_ITO[k + 4],
                        label=f"{cell} RNN (median, 10–90 %)")
        ax.axhline(1.0, color="0.6", lw=0.6)
        ax.axvline(1.0, color="0.6", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\lambda_1 = \|W\|_2$ (= ρ)")
        ax.set_ylabel(r"per-step rate $\|\partial s_T/\partial s_0\|_2^{1/T}$"
                      f" (T = {T})")
        ax.set_title("(c) vanishing below 1/γ = 1,\nexploding only above", fontsize=7)
        ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if rhos.min() * 0.9 <= t <= rhos.max()]
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
        # below the panel: inside, the upper left holds the linear RNN's points
        ax.legend(fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        plotting.save_figure(fig, ctx.figures_dir, NAME)
