"""Long memory: the adding and copy-memory tasks over sequence lengths, tanh RNN vs LSTM/GRU.

Expectations, stated before measuring.  The adding problem (Le, Jaitly & Hinton 2015
variant of Hochreiter & Schmidhuber 1997) needs the two marked values, which can be T steps
before the output: a model that does not carry them predicts the mean, whose loss is the
baseline Var = 1/6 (1/12 in the engine's ½‖y − t‖² convention).  The copy-memory task
(Arjovsky, Shah & Bengio 2016) needs 10 symbols T + 10 steps later; predicting blanks and
then uniform symbols gives the baseline 10·ln 8/(T + 20).  Published trend: gated cells
(LSTM, GRU) solve lengths at which the tanh RNN, whose gradient through time vanishes
(``rnn_through_time``), stays at the baseline.  Trained here with Adam (lr 0.01, batch 32,
hidden 32) on fixed generated training sets; the numbers are the final test-set losses.

"Solved" (adding): final test loss below 10 % of the baseline.  "Beats" (copy): below 90 %
of the baseline (copy is the harder task).  "At the baseline": not below 95 % of it (a model
still converging to the mean predictor is above it).
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from gradstudy import plotting
from gradstudy.data import adding_baseline_loss, adding_problem, copy_baseline, copy_memory
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.families.rnn import RNNSpec
from gradstudy.studies import Claim, moving_average

NAME = "long_memory"
DESCRIPTION = "adding and copy-memory tasks over sequence lengths: tanh RNN vs LSTM vs GRU"
SCALES = {
    "smoke": {"adding": [50], "copy": [10], "hidden": 32, "seeds": 2, "steps": 700,
              "copy_steps": 300, "batch": 32, "lr": 0.01, "train_size": 4000},
    "paper": {"adding": [10, 50, 100], "copy": [10, 30], "hidden": 32, "seeds": 4,
              "steps": 2000, "copy_steps": 1500, "batch": 32, "lr": 0.01,
              "train_size": 10000},
}
LENGTHS = {"range": (2, 400), "len": (1, 6), "distinct": True, "increasing": True}
LIMITS = {"adding": LENGTHS, "copy": LENGTHS, "hidden": (4, 512), "seeds": (1, 64),
          "steps": (20, 100_000), "copy_steps": (20, 100_000), "batch": (1, 100),
          "lr": (1e-5, 1.0), "train_size": (100, 100_000)}
CELLS = {"tanh RNN": "tanh", "LSTM": "lstm", "GRU": "gru"}
MARKERS = "os^"  # one per cell: equal fractions stay distinguishable
DODGE = 1.07  # figure: the cells' markers side by side at each T (factor on the log axis)
SOLVED = 0.1  # adding: final test loss below this fraction of the baseline
BEATS = 0.9  # copy: below this fraction of the baseline
AT_BASELINE = 0.05  # "stays at the baseline": within this relative distance
MIN_COPY_STEPS = 1500  # the copy claim on gated cells needs this many steps (smoke: fewer)
SOURCE = ("Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015 (adding); Arjovsky, Shah "
          "& Bengio 2016 (copy)")


def _spec(p, task, length, cell):
    in_dim, out_dim, readout = (2, 1, "last") if task == "adding" else (10, 10, "sequence")
    return RNNSpec(cell=cell, hidden=p["hidden"], in_dim=in_dim, out_dim=out_dim,
                   length=length + (20 if task == "copy" else 0), readout=readout)


def _train(ctx, p, task, length):
    """One training per cell (their weights differ in number: separate programs anyway);
    merged along ``point``."""
    import xarray as xr

    if task == "adding":
        data = adding_problem(length, n_train=p["train_size"], n_test=1000, seed=length)
        loss, steps, baseline = "mse", p["steps"], adding_baseline_loss()
    else:
        data = copy_memory(length, n_train=p["train_size"], n_test=1000, seed=length)
        loss, steps, baseline = "cross_entropy", p["copy_steps"], copy_baseline(length)
    runs = [ctx.train(Training(points=(_spec(p, task, length, cell),), labels=(label,),
                               optimizer=OptimizerSpec("adam", p["lr"]), steps=steps,
                               seeds=p["seeds"], batch_size=p["batch"], loss=loss,
                               eval_every=max(1, steps // 4),
                               record_every=max(1, steps // 10)),
                      data, tag=f"{task}-T{length}-{cell}")
            for label, cell in CELLS.items()]
    keep = ["loss", "test_loss", "train_loss", "diverged_at"]
    return xr.concat([ds[keep] for ds in runs], dim="point"), baseline


def run(ctx, p):
    runs = {(task, T): _train(ctx, p, task, T) for task in ("adding", "copy")
            for T in p[task]}
    claims = _claims(p, runs)
    ctx.extra.setdefault("measured", {}).update(_measured(runs))
    _draw(ctx, p, runs)
    return claims


def _final_ratio(ds, baseline, label):
    """Final test loss / baseline per seed (NaN for a diverged run)."""
    return ds.test_loss.sel(point=label).isel(learning_rate=0, eval_step=-1).values / baseline


def _window(n_steps: int) -> int:
    """The moving-average window of the minibatch losses (panels b and d; steps to solve)."""
    return max(1, n_steps // 40)


def steps_to_solve(loss, baseline) -> np.ndarray:
    """Per seed, the first step at which the moving average (:func:`_window`) of the
    minibatch loss, ending at that step, is below SOLVED × ``baseline``; NaN where it never
    is.  ``loss``: (seed, step) minibatch losses."""
    loss = np.asarray(loss, float)
    window = _window(loss.shape[-1])
    out = np.full(loss.shape[0], np.nan)
    for k, run in enumerate(loss):
        below = np.nonzero(moving_average(run, window) < SOLVED * baseline)[0]
        if below.size:
            out[k] = below[0] + window - 1  # the step the window ends at (0-based)
    return out


def _measured(runs) -> dict:
    """Per task, length and cell (``<task>/T<T>/<cell>``, cell tanh, lstm or gru): the final
    test loss over the baseline (``final_ratio/…/{median, min, max}`` over seeds), the count
    of seeds below the task's threshold (``seeds_below/…``: SOLVED for adding, BEATS for
    copy), and for adding the first step at which each seed solves it in its minibatch loss
    (``steps_to_solve/…/{first, last, never}``: the earliest and latest seed, NaN as the
    latest if some seed never does, and the count of those)."""
    out = {"final_ratio": {}, "seeds_below": {}, "steps_to_solve": {}}
    for (task, T), (ds, baseline) in runs.items():
        threshold = SOLVED if task == "adding" else BEATS
        for label, cell in CELLS.items():
            key = f"T{T}"
            ratio = _final_ratio(ds, baseline, label)
            out["final_ratio"].setdefault(task, {}).setdefault(key, {})[cell] = {
                "median": float(np.median(ratio)), "min": float(np.min(ratio)),
                "max": float(np.max(ratio))}
            out["seeds_below"].setdefault(task, {}).setdefault(key, {})[cell] = int(
                np.sum(ratio < threshold))
            if task == "adding":
                steps = steps_to_solve(ds.loss.sel(point=label).isel(learning_rate=0).values,
                                       baseline)
                never = int(np.isnan(steps).sum())
                out["steps_to_solve"].setdefault(key, {})[cell] = {
                    "first": float(np.nanmin(steps)) if never < steps.size else float("nan"),
                    "last": float(np.max(steps)), "never": never}
    return out


def _claims(p, runs):
    claims = []
    T = max(p["adding"])
    ds, baseline = runs[("adding", T)]
    for label in ("LSTM", "GRU"):
        claims.append(Claim(
            f"adding_{label.lower()}_solves_T{T}",
            f"adding problem, T = {T}: {label} solves it (final test loss < {SOLVED:g} × "
            f"baseline) in more than half of the seeds (fraction)",
            float(np.mean(_final_ratio(ds, baseline, label) < SOLVED)), 0.5, 0.0, SOURCE,
            kind="greater"))
    ratio = _final_ratio(ds, baseline, "tanh RNN")
    claims += [
        Claim(f"adding_tanh_fails_T{T}", f"adding problem, T = {T}: the tanh RNN solves it in "
              "no seed (fraction)", float(np.mean(ratio < SOLVED)), 0.0, 0.0, SOURCE),
        Claim(f"adding_tanh_baseline_T{T}", f"adding problem, T = {T}: the tanh RNN stays at "
              f"the baseline 1/12: its final test loss is above {1 - AT_BASELINE:g} × "
              "baseline (median ratio)", float(np.median(ratio)), 1 - AT_BASELINE, 0.0,
              SOURCE, kind="greater")]
    if p["copy"]:
        T = max(p["copy"])
        ds, baseline = runs[("copy", T)]
        claims.append(Claim(
            f"copy_tanh_baseline_T{T}", f"copy task, T = {T}: the tanh RNN stays at the "
            f"baseline 10·ln 8/(T + 20): its final test loss is above {1 - AT_BASELINE:g} × "
            "baseline (median ratio)", float(np.median(_final_ratio(ds, baseline, "tanh RNN"))),
            1 - AT_BASELINE, 0.0, SOURCE, kind="greater"))
        if p["copy_steps"] >= MIN_COPY_STEPS:
            claims.append(Claim(
                f"copy_gru_beats_T{T}", f"copy task, T = {T}: the GRU beats the baseline "
                f"(final test loss < {BEATS:g} × baseline; median ratio)",
                float(np.median(_final_ratio(ds, baseline, "GRU"))), BEATS, 0.0, SOURCE,
                kind="less"))
    return claims


# -------------------------------------------------------------------------- figure
def _draw(ctx, p, runs):
    tasks = [t for t in ("adding", "copy") if p[t]]
    with plotting.style():
        fig, axes = plotting.figure("double", 2.7 * len(tasks), nrows=len(tasks), ncols=2,
                                    squeeze=False, gridspec_kw={"hspace": 0.6,
                                                                "wspace": 0.3})
        for row, task in enumerate(tasks):
            threshold = SOLVED if task == "adding" else BEATS
            what = "solved" if task == "adding" else "beat baseline"
            ax = axes[row, 0]
            lengths = np.asarray(p[task])
            for k, label in enumerate(CELLS):
                frac = [float(np.mean(_final_ratio(runs[(task, T)][0], runs[(task, T)][1],
                                                   label) < threshold)) for T in lengths]
                # equal fractions would hide each other: the cells are set side by side in
                # T (a small factor on the log axis), never moved in the fraction itself
                ax.plot(lengths * DODGE ** (k - 1), frac, MARKERS[k] + "-", ms=4, lw=0.8,
                        color=plotting.OKABE_ITO[k], label=label)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(lengths))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(lengths.min() / 1.3, lengths.max() * 1.3)
            ax.set_ylim(-0.08, 1.08)
            # a fraction of the seeds takes only the values k/seeds
            ticks = np.linspace(0, 1, p["seeds"] + 1) if p["seeds"] <= 8 else \
                np.linspace(0, 1, 6)
            ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_xlabel("sequence length T")
            ax.set_ylabel(f"fraction of seeds {what}")
            ax.set_title(f"({'ac'[row]}) {task}: final test loss < {threshold:g}×baseline, "
                         f"{p['seeds']} seeds", fontsize=7)
            ax = axes[row, 1]
            T = max(p[task])
            ds, baseline = runs[(task, T)]
            for k, label in enumerate(CELLS):
                loss = ds.loss.sel(point=label).isel(learning_rate=0).values / baseline
                window = _window(loss.shape[-1])
                smooth = np.stack([moving_average(s, window) for s in loss])
                steps = np.arange(smooth.shape[-1]) + window - 1
                plotting.median_band(ax, steps, smooth, plotting.OKABE_ITO[k], label=label)
                div = ds.diverged_at.sel(point=label).values.ravel()
                if (div >= 0).any():  # at the top edge of the panel, not at a loss value
                    ax.plot(div[div >= 0], np.full((div >= 0).sum(), 0.98), "x",
                            color=plotting.OKABE_ITO[k], ms=5, clip_on=False,
                            transform=ax.get_xaxis_transform(),
                            label=f"{label}: diverged (step)")
            ax.axhline(1.0, color="0.3", ls="--", lw=0.9, label="baseline")
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()
            if hi / lo < 30:  # about a decade: plain numbers, not 2×10⁰
                ax.yaxis.set_major_locator(FixedLocator([0.5, 0.6, 0.8, 1, 1.5, 2, 3]))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("Adam step")
            ax.set_ylabel(f"minibatch loss / baseline\n(moving average of {window})")
            ax.set_title(f"({'bd'[row]}) {task}, T = {T}: median, 10–90 % of seeds",
                         fontsize=7)
        # one legend for all panels (a cell has one colour everywhere), below them: inside,
        # every panel has curves or markers in each corner
        handles = [plt.Line2D([], [], color=plotting.OKABE_ITO[k], marker=MARKERS[k], ms=4,
                              label=label) for k, label in enumerate(CELLS)]
        handles.append(plt.Line2D([], [], color="0.3", ls="--", lw=0.9,
                                  label="baseline (mean predictor)"))
        for ax in axes[:, 1]:  # the diverged markers, if any were drawn
            handles += [h for h in ax.get_legend_handles_labels()[0]
                        if h.get_label().endswith("diverged (step)")]
        fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4),
                   bbox_to_anchor=(0.5, 0.0), fontsize=7)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
