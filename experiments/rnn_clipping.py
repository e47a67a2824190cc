"""Clipping exploding RNN gradients (Pascanu, Mikolov & Bengio 2013).

Setup: a vanilla ReLU RNN (hidden 32, Gaussian recurrent matrix of spectral radius ρ) on
the adding problem (T = 50), plain SGD.  Expectations, stated before measuring:

* ρ = 1.5 puts the recurrent matrix's largest singular value λ₁ well above 1/γ = 1 (ReLU:
  γ = 1), the necessary condition for exploding gradients; the back-propagated signal
  grows ≈ ρ^T-fold, so without clipping SGD's first steps are huge and most runs diverge
  (a non-finite loss, or a final training loss above 10 × the baseline).
* Clipping by global norm, g ← τ g/‖g‖ when ‖g‖ > τ, bounds every step.  Pascanu et al.
  take τ from the average gradient norm and report that "half to ten times this average
  can still yield convergence".  The average ḡ is measured here on the same network at
  ρ = 1 (a stable neighbour, trained unclipped: the exploding network has no meaningful
  average).  Expected: no run diverges for τ ∈ [ḡ/2, 10 ḡ], and the clipped runs end at
  the stable network's loss (within 25 %); far above (10⁴ ḡ) clipping no longer protects.
"""

import numpy as np
from matplotlib.patches import Patch

from gradstudy import plotting
from gradstudy.data import adding_baseline_loss, adding_problem
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.families.rnn import RNNSpec
from gradstudy.studies import Claim

NAME = "rnn_clipping"
DESCRIPTION = "exploding ReLU RNN on the adding problem: SGD without and with global-norm " \
              "clipping at multiples of the average gradient norm"
SCALES = {
    "smoke": {"cell": "relu", "init": "gaussian", "rho": 1.5, "length": 50, "hidden": 64,
              "seeds": 8, "steps": 200, "lr": 0.01, "multiples": [0.5, 1.0, 10.0, 10000.0]},
    "paper": {"cell": "relu", "init": "gaussian", "rho": 1.5, "length": 50, "hidden": 64,
              "seeds": 16, "steps": 500, "lr": 0.01,
              "multiples": [0.1, 0.5, 1.0, 2.0, 10.0, 100.0, 10000.0]},
}
LIMITS = {"cell": {"choices": ("relu", "tanh")},
          "init": {"choices": ("gaussian", "orthogonal")}, "rho": (1.0, 10.0),
          "length": (2, 1000), "hidden": (4, 512), "seeds": (2, 256),
          "steps": (20, 100_000), "lr": (1e-6, 1.0),
          "multiples": {"range": (1e-3, 1e6), "len": (2, 12), "distinct": True,
                        "increasing": True}}
PASCANU = (0.5, 10.0)  # "half to ten times this average can still yield convergence"
BLOWN_UP = 10.0  # diverged: non-finite, or final training loss above this × baseline
SAME_LOSS = 0.25  # clipped runs end within this relative distance of the stable network
SOURCE = "Pascanu, Mikolov & Bengio 2013 (Sec. 3.2, clipping; Sec. 2.1, λ₁ > 1/γ)"


def _spec(p, rho):
    return RNNSpec(cell=p["cell"], hidden=p["hidden"], in_dim=2, out_dim=1, length=p["length"],
                   recurrent_init=p["init"], recurrent_scale=rho)


def _training(p, points, optimizers, labels):
    return Training(points=points, optimizer=optimizers, labels=labels, steps=p["steps"],
                    seeds=p["seeds"], batch_size=32, loss="mse", eval_every=p["steps"],
                    record_every=max(1, p["steps"] // 10))


def run(ctx, p):
    data = adding_problem(p["length"], n_train=10000, n_test=1000, seed=0)
    sgd = OptimizerSpec("sgd", p["lr"])
    stable = ctx.train(_training(p, (_spec(p, 1.0),), (sgd,), ("stable",)), data,
                       tag="stable")
    g_bar = float(np.nanmean(stable.grad_norm.values))
    ctx.extra.setdefault("measured", {})["average_gradient_norm"] = g_bar
    taus = [m * g_bar for m in p["multiples"]]
    optimizers = (sgd,) + tuple(OptimizerSpec("sgd", p["lr"], clip="global_norm",
                                              clip_threshold=t) for t in taus)
    labels = ("none",) + tuple(f"{m:g}x" for m in p["multiples"])
    grid = ctx.train(_training(p, (_spec(p, p["rho"]),) * len(optimizers), optimizers,
                               labels), data, tag="clip")
    claims = _claims(p, stable, grid, g_bar)
    ctx.extra["measured"].update(_measured(p, grid))
    _draw(ctx, p, stable, grid, g_bar)
    return claims


def _final(ds, label):
    """Final training-set loss per seed (NaN where the run diverged)."""
    return ds.train_loss.sel(point=label).isel(learning_rate=0, eval_step=-1).values


def diverged(ds, label) -> np.ndarray:
    """Per seed: the loss became non-finite at some step (the engine's ``diverged_at``)."""
    return ds.diverged_at.sel(point=label).isel(learning_rate=0).values >= 0


def blown_up(ds, label) -> np.ndarray:
    """Per seed: diverged, or a final training loss above BLOWN_UP × the baseline."""
    return diverged(ds, label) | ~(_final(ds, label) <= BLOWN_UP * adding_baseline_loss())


def _measured(p, grid) -> dict:
    """Per clipping setting (its label: ``none``, or ``<m>x`` for τ = m ḡ; not a bare number,
    which the numbers file would read as a list index), the count of runs that diverged
    (``diverged_runs/<label>``) and of those blown up, diverged or ending above BLOWN_UP ×
    the baseline (``blown_up_runs/<label>``), as panels (a) and (b) draw them."""
    labels = ["none"] + [f"{m:g}x" for m in p["multiples"]]
    return {name: {label: int(fn(grid, label).sum()) for label in labels}
            for name, fn in (("diverged_runs", diverged), ("blown_up_runs", blown_up))}


def _claims(p, stable, grid, g_bar):
    inside = [f"{m:g}x" for m in p["multiples"] if PASCANU[0] <= m <= PASCANU[1]]
    ref = float(np.nanmedian(_final(stable, "stable")))
    claims = [
        Claim("explodes_without_clipping",
              f"ReLU RNN, ρ = {p['rho']:g}, T = {p['length']}, SGD lr {p['lr']:g}, no "
              "clipping: more than half of the runs diverge (fraction)",
              float(diverged(grid, "none").mean()), 0.5, 0.0, SOURCE, kind="greater"),
        Claim("initial_norm_exploded",
              f"at ρ = {p['rho']:g} the first gradient's norm exceeds the stable network's "
              f"average ḡ = {g_bar:.3g} by more than 100× (log10 of the median ratio)",
              float(np.log10(np.nanmedian(grid.grad_norm.sel(point="none").isel(
                  learning_rate=0, step=0).values) / g_bar)), 2.0, 0.0, SOURCE,
              kind="greater")]
    if inside:  # thresholds within Pascanu's range were run
        finals = np.concatenate([_final(grid, label) for label in inside])
        claims += [
            Claim("no_divergence_pascanu_range",
                  f"clipped at τ = {', '.join(inside)} ḡ (within Pascanu's half to ten "
                  "times): no run diverges (fraction)",
                  float(np.mean([diverged(grid, label).mean() for label in inside])), 0.0,
                  0.0, SOURCE),
            Claim("converges_pascanu_range",
                  f"clipped at τ = {', '.join(inside)} ḡ: the median final training loss "
                  f"equals the stable ρ = 1 network's ({ref:.4f}; relative, ± {SAME_LOSS:g})",
                  float(np.nanmedian(finals)), ref, SAME_LOSS, SOURCE, kind="rel")]
    loosest = max(p["multiples"])
    if loosest >= 1000:
        claims.append(Claim(
            "loose_clipping_does_not_protect",
            f"clipped at τ = {loosest:g} ḡ (far above the range): runs diverge again "
            "(fraction diverged, > 0)", float(diverged(grid, f"{loosest:g}x").mean()), 0.0,
            0.0, SOURCE, kind="greater"))
    return claims


# -------------------------------------------------------------------------- figure
def _draw(ctx, p, stable, grid, g_bar):
    m = np.asarray(p["multiples"], float)
    labels = [f"{v:g}x" for v in m]
    baseline = adding_baseline_loss()
    with plotting.style():
        fig, axes = plotting.figure("double", 2.6, ncols=3, gridspec_kw={"wspace": 0.45})
        ax = axes[0]
        ax.axvspan(*PASCANU, color="0.9", label="Pascanu: ½–10 × ḡ")
        for k, (what, fn) in enumerate((("non-finite", diverged),
                                        (f"or loss > {BLOWN_UP:g}×baseline", blown_up))):
            frac = [fn(grid, label).mean() for label in labels]
            ax.plot(m, frac, "o-" if k == 0 else "s:", ms=4 - k,
                    color=plotting.OKABE_ITO[k], label=f"clipped: {what}")
            ax.axhline(fn(grid, "none").mean(), color=plotting.OKABE_ITO[k], ls="--",
                       lw=0.9, label=f"no clipping: {what}")
        ax.set_xscale("log")
        ax.set_xlabel("threshold τ / ḡ")
        ax.set_ylabel("fraction of runs")
        ax.set_title(f"(a) ρ = {p['rho']:g}, {p['seeds']} seeds", fontsize=7)
        ax.set_ylim(-0.05, 1.75)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.legend(fontsize=5, loc="upper left")

        ax = axes[1]
        # the runs left out of the loss axis are counted on an axis of their own, a strip
        # above the panel: on the loss axis a count would read as a loss
        counts = ax.inset_axes([0.0, 1.03, 1.0, 0.2], sharex=ax)
        ax.axvspan(*PASCANU, color="0.9")
        for k, label in enumerate(labels):
            final = _final(grid, label)
            ok = ~blown_up(grid, label)
            ax.plot(np.full(ok.sum(), m[k]), final[ok], ".", color=plotting.OKABE_ITO[0],
                    ms=3, alpha=0.6)
            counts.bar(m[k], (~ok).sum(), width=0.35 * m[k], color=plotting.OKABE_ITO[5])
            counts.annotate(f"{(~ok).sum()}", (m[k], (~ok).sum()), fontsize=5.5,
                            ha="center", va="bottom", xytext=(0, 1),
                            textcoords="offset points")
        counts.set_ylim(0, 1.45 * p["seeds"])
        counts.set_yticks([0, p["seeds"]])
        counts.set_ylabel(f"left out\n(of {p['seeds']})", fontsize=5.5)
        counts.tick_params(labelbottom=False, labelsize=5.5)
        counts.grid(False)
        ax.axhline(baseline, color="0.3", ls="--", lw=0.9, label="baseline 1/12")
        ax.axhline(np.nanmedian(_final(stable, "stable")), color=plotting.OKABE_ITO[2],
                   ls=":", lw=1.0, label="stable ρ = 1 (median)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("threshold τ / ḡ")
        ax.set_ylabel("final training loss (per seed)")
        ax.set_ylim(top=40 * baseline)  # room for the legend above the data
        counts.set_title("(b) final loss against τ", fontsize=7)
        handles = ax.get_legend_handles_labels()[0] + [Patch(
            color=plotting.OKABE_ITO[5], label=f"above: count of runs non-finite or\n"
                                               f"> {BLOWN_UP:g}×baseline (not drawn here)")]
        ax.legend(handles=handles, fontsize=5, loc="upper center")

        ax = axes[2]
        steps = np.arange(p["steps"])
        unclipped = grid.grad_norm.sel(point="none").isel(learning_rate=0).values
        for k, run in enumerate(unclipped):  # most runs diverge: each drawn, not a median
            ax.plot(steps, run, color="0.5", lw=0.4, alpha=0.6,
                    label="no clipping (each run)" if k == 0 else None)
        div = grid.diverged_at.sel(point="none").isel(learning_rate=0).values
        for step in div[div >= 0]:
            ax.plot(step, np.nanmax(unclipped[:, :max(1, step)]), "x", color="0.3", ms=4)
        curves = []
        inside = [label for v, label in zip(m, labels) if PASCANU[0] <= v <= PASCANU[1]]
        inside = inside or labels  # (no threshold in Pascanu's range: the smallest)
        curves.append((f"clipped, τ = {inside[0]} ḡ", grid.grad_norm.sel(point=inside[0]),
                       plotting.OKABE_ITO[0]))
        curves.append(("stable ρ = 1", stable.grad_norm.sel(point="stable"),
                       plotting.OKABE_ITO[2]))
        for label, norm, color in curves:
            norm = norm.isel(learning_rate=0).values
            norm = np.where(np.mean(np.isfinite(norm), axis=0) >= 0.5, norm, np.nan)
            plotting.median_band(ax, steps, norm, color, label=label)
        ax.axhline(g_bar, color="0.5", ls=":", lw=0.9, label="ḡ")
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("‖g‖ before clipping")
        ax.set_title("(c) gradient norm; ✕ non-finite loss next step", fontsize=7)
        ax.legend(fontsize=5.5)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
