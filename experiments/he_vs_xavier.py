"""He et al. (2015), Fig. 3, scaled down: deep ReLU MLPs with Xavier or He init on MNIST-1D.

Expectations, stated before measuring: on square ReLU layers Xavier's σ_w² = 1 halves the
back-propagated ‖δ‖² at every layer (χ = σ_w²/2), so at init ‖δ_1‖²/‖δ_L‖² = 2^−(L−1), while
He's σ_w² = 2 keeps it ≈ 1 (mean field).  In training (SGD with momentum, the same for
both): at 30 layers Xavier stalls near the constant predictor's loss ln 10 while He
converges; at 22 layers both converge, He earlier (He et al. 2015, Fig. 3).
"""

import math

import numpy as np

from gradstudy import MLPSpec, Sweep, plotting
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.studies import (
    K_SE,
    Claim,
    first_last_log10_ratio,
    log_mean_square_excess,
    moving_average,
    require,
    tolerance,
)
from gradstudy.theory import backprop_profile

NAME = "he_vs_xavier"
DESCRIPTION = "ReLU MLPs, depth 22 and 30, Xavier vs He init, trained on MNIST-1D"
SCALES = {
    # smoke: 14 instead of 22 layers, where a 2-seed, 1000-step Xavier run escapes its
    # plateau (at 22 layers it takes ≈ 750–1000 steps, with a seed-to-seed spread)
    "smoke": {"width": 64, "depths": [14, 30], "seeds": 2, "steps": 1000, "batch": 64,
              "lr": 0.01, "init_seeds": 8},
    "paper": {"width": 64, "depths": [22, 30], "seeds": 8, "steps": 2000, "batch": 64,
              "lr": 0.01, "init_seeds": 32},
}
LIMITS = {"width": (4, 1024), "depths": {"range": (2, 200), "len": (2, 2), "increasing": True},
          "seeds": (1, 256), "steps": (50, 100_000), "batch": (1, 4000),
          "lr": (1e-6, 10.0), "init_seeds": (4, 4096)}
INITS = {"Xavier": "glorot_normal", "He": "he_normal"}
LN10 = math.log(10)
STALL_MARGIN = 0.15  # "stalled": final training loss above ln 10 − this
LEARN_MARGIN = 0.5  # "converging": final training loss below ln 10 − this
THRESHOLD = 2.0  # "earlier": first step where the smoothed median loss is below this
SOURCE = "He et al. 2015, Fig. 3; mean field (Poole et al. 2016; Schoenholz et al. 2017)"


def validate(p):
    require(p["steps"] >= 50, "steps", f"must be >= 50, got {p['steps']}")


def _spec(p, depth, init):
    return MLPSpec(width=p["width"], depth=depth, in_dim=40, out_dim=10, activation="relu",
                   init=init)


def run(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    claims, runs = [], {}
    # both depths at init in one sweep (one program: every depth in one pass)
    sweep = ctx.sweep(Sweep(points=tuple(_spec(p, max(p["depths"]), init)
                                         for init in INITS.values()),
                            depths=tuple(p["depths"]), seeds=p["init_seeds"], batch=64,
                            labels=tuple(INITS), loss="linear"), tag="init")
    for depth in p["depths"]:
        points = tuple(_spec(p, depth, init) for init in INITS.values())
        runs[depth] = ctx.train(Training(points=points, labels=tuple(INITS),
                                         optimizer=OptimizerSpec("momentum", p["lr"]),
                                         steps=p["steps"], seeds=p["seeds"],
                                         batch_size=p["batch"], eval_every=p["steps"] // 4,
                                         record_every=max(1, p["steps"] // 20)),
                                data, tag=f"train-d{depth}")
        claims += _init_claims(p, depth, sweep)
    claims += _training_claims(p, runs)
    _draw(ctx, p, runs, sweep)
    return claims


def _init_claims(p, depth, ds):
    claims = []
    for k, (label, init) in enumerate(INITS.items()):
        spec = _spec(p, depth, init)
        predicted = float(np.log10(backprop_profile(spec, 1.0, depth)[0]))
        log_ratio = first_last_log10_ratio(ds.backprop_norm.values[k], p["depths"])[
            :, p["depths"].index(depth)]
        excess, se = log_mean_square_excess(log_ratio, predicted)
        power = round(2 * predicted / math.log10(2))
        claims.append(Claim(
            f"init_ratio_{label.lower()}_d{depth}",
            f"at init, depth {depth}, {label}: ½ log10 of the seed mean of ‖δ_1‖²/‖δ_L‖² "
            f"equals mean field's ½ log10 2^{power} ({K_SE:g} SE)",
            predicted + excess, predicted, tolerance(se), SOURCE))
    return claims


def _final_loss(ds, label):
    """Median over seeds of the training-set loss after the last step."""
    return float(np.nanmedian(ds.train_loss.sel(point=label).isel(learning_rate=0,
                                                                   eval_step=-1).values))


def _smoothed_median(ds, label):
    loss = ds.loss.sel(point=label).isel(learning_rate=0).values  # (seed, step)
    window = max(1, loss.shape[-1] // 20)
    median = np.nanmedian(loss, axis=0)
    return moving_average(median, window), window


def _first_below(ds, label, threshold):
    smooth, window = _smoothed_median(ds, label)
    below = np.flatnonzero(smooth < threshold)
    return float(below[0] + window - 1) if below.size else math.inf


def _training_claims(p, runs):
    shallow, deep = p["depths"]
    claims = []
    for label in INITS:
        claims.append(Claim(
            f"converges_{label.lower()}_d{shallow}",
            f"depth {shallow}, {label}: training loss after {p['steps']} steps below "
            f"ln 10 − {LEARN_MARGIN:g} (median over seeds)",
            _final_loss(runs[shallow], label), LN10 - LEARN_MARGIN, 0.0, SOURCE, kind="less"))
    he, xavier = (_first_below(runs[shallow], label, THRESHOLD) for label in ("He", "Xavier"))
    claims.append(Claim(
        f"he_earlier_d{shallow}",
        f"depth {shallow}: He reaches loss {THRESHOLD:g} in fewer than half the steps "
        f"Xavier needs (step ratio He/Xavier, smoothed seed median)",
        he / xavier if math.isfinite(xavier) else (0.0 if math.isfinite(he) else math.nan),
        0.5, 0.0, SOURCE, kind="less"))
    claims.append(Claim(
        f"xavier_stalls_d{deep}",
        f"depth {deep}, Xavier: training loss after {p['steps']} steps still above "
        f"ln 10 − {STALL_MARGIN:g} (stalled; median over seeds)",
        _final_loss(runs[deep], "Xavier"), LN10 - STALL_MARGIN, 0.0, SOURCE, kind="greater"))
    claims.append(Claim(
        f"he_converges_d{deep}",
        f"depth {deep}, He: training loss after {p['steps']} steps below ln 10 − "
        f"{LEARN_MARGIN:g} (median over seeds)",
        _final_loss(runs[deep], "He"), LN10 - LEARN_MARGIN, 0.0, SOURCE, kind="less"))
    return claims


def _draw(ctx, p, runs, sweep):
    colors = {"Xavier": plotting.OKABE_ITO[0], "He": plotting.OKABE_ITO[1]}
    with plotting.style():
        fig, axes = plotting.figure("double", 2.8, ncols=3,
                                    gridspec_kw={"width_ratios": [1, 1.3, 1.3],
                                                 "wspace": 0.4})
        ax = axes[0]
        for k, label in enumerate(INITS):
            for j, (depth, ls) in enumerate(zip(p["depths"], ("-", "--"))):
                bp = sweep.backprop_norm.values[k, :, j, :depth]  # (seed, layer)
                sq = np.nanmean(bp**2, axis=0)
                ax.plot(np.arange(1, depth + 1), sq / sq[-1], color=colors[label], ls=ls,
                        label=f"{label}, L={depth}")
                theory = backprop_profile(_spec(p, depth, INITS[label]), 1.0, depth) ** 2
                ax.plot(np.arange(1, depth + 1), theory, color="0.3", ls=":", lw=0.8)
        ax.plot([], [], color="0.3", ls=":", lw=0.8, label="mean field")
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_ylabel(r"$\overline{\|\delta_l\|^2} / \overline{\|\delta_L\|^2}$ at init")
        ax.set_title("back-propagated signal at init")
        ax.legend(fontsize=6, loc="lower right")
        any_diverged, notes = False, []
        for ax, depth in zip(axes[1:], p["depths"]):
            ds = runs[depth]
            for label in INITS:
                loss = ds.loss.sel(point=label).isel(learning_rate=0).values
                smooth, window = _smoothed_median(ds, label)
                steps = np.arange(loss.shape[-1])
                ax.plot(steps, np.nanmedian(loss, axis=0), color=colors[label], alpha=0.25,
                        lw=0.6)
                ax.plot(steps[window - 1:], smooth, color=colors[label], lw=1.4,
                        label=f"{label}: median of {loss.shape[0]} seeds (faint), smoothed")
                diverged = ds.diverged_at.sel(point=label).values.ravel()
                _mark_diverged(ax, diverged[diverged >= 0], DIVERGED_ROW[label],
                               colors[label], loss.shape[-1])
                n_div = int((diverged >= 0).sum())
                if n_div:
                    any_diverged = True
                    notes.append(f"{label}: {n_div} of {diverged.size} runs diverged")
            ax.axhline(LN10, color="0.4", ls=":", lw=0.9, label="ln 10 (constant predictor)")
            if notes:  # which runs the medians leave out (their loss is not finite)
                ax.text(0.97, 0.04, "\n".join(notes), transform=ax.transAxes, ha="right",
                        va="bottom", fontsize=6)
                notes.clear()
            ax.set_ylim(0, LN10 + 0.6)
            # the whole training, also where every run diverged in its first steps (the
            # losses after a divergence are NaN, and autoscaling would show those steps only)
            ax.set_xlim(-0.03 * p["steps"], p["steps"])
            ax.set_xlabel("SGD step (momentum 0.9)")
            ax.set_title(f"{depth} layers, width {p['width']}")
        if any_diverged:
            axes[1].plot([], [], "x", color="0.3", ms=5, mew=1.2,
                         label="diverged run: step of its first non-finite loss "
                               "(×k: k runs there)")
        axes[1].set_ylabel("training loss (minibatch)")
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=2 if any_diverged else 3,
                   fontsize=6, bbox_to_anchor=(0.62, 0.0))
        plotting.save_figure(fig, ctx.figures_dir, NAME)


# diverged runs: one row of ✕ per init above the ln 10 line, so that the two never overlap
DIVERGED_ROW = {"Xavier": LN10 + 0.45, "He": LN10 + 0.25}


def _mark_diverged(ax, steps, y, color, total_steps):
    """One ✕ per group of diverged runs whose steps lie within 2 % of the axis of each
    other (they would print on top of each other), labelled ×k for k > 1 runs: every
    diverged run is counted in the figure."""
    groups = []
    for step in np.sort(steps):
        if groups and step - groups[-1][0] <= 0.02 * total_steps:
            groups[-1][1] += 1
        else:
            groups.append([step, 1])
    for step, k in groups:
        ax.plot(step, y, "x", color=color, ms=5, mew=1.2, clip_on=False)
        if k > 1:
            ax.annotate(f"×{k}", (step, y), xytext=(4, 0), textcoords="offset points",
                        fontsize=6, color=color, va="center")
