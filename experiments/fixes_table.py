"""The seed's table of fixes, measured: one change at a time to a vanishing and to an
exploding network, trained on MNIST-1D.

Settings.  Vanishing: a 20-layer sigmoid MLP with Xavier init, SGD lr 0.1 (its loss stays at
ln 10).  Exploding: a 10-layer ReLU MLP with He init × σ_w = 1.4, SGD lr 0.05 (most runs
reach a non-finite loss in a few steps).  Each row changes one thing: activation (ReLU with
He init, leaky ReLU), initialisation (Xavier, He, orthogonal), normalisation (BatchNorm,
LayerNorm), a residual branch (h + 0.5·f(h)), clipping by global norm (1.0), or raw inputs
(×5 + 2) instead of standardised ones.  Reported per row, over the seeds: the gradient ratio
at init (log10 ‖∂L/∂W_2‖/‖∂L/∂W_L‖, hidden layers), the final training loss, test accuracy
and the fraction of runs diverged.

Expectations, stated before measuring: in the vanishing setting ReLU + He, BatchNorm and
the residual branch train (loss well below ln 10), ReLU + He raises the init gradient ratio
by orders of magnitude, and clipping changes nothing (it only shrinks large gradients); in
the exploding setting the unclipped baseline diverges in at least half of the runs, and
clipping, BatchNorm, LayerNorm and He's own scale (σ_w = 1) prevent divergence.  (A first
draft also expected LayerNorm to fix the sigmoid network; a smoke run showed it does not —
LayerNorm keeps each layer's pre-activations at unit scale, where σ' ≤ 1/4 still shrinks
the gradient — so LayerNorm's vanishing row is reported without a claim.)
"""

import math

import numpy as np

from gradstudy import MLPSpec, plotting
from gradstudy.data import mnist1d, transform_inputs
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.results import write_text_atomic
from gradstudy.studies import Claim

NAME = "fixes_table"
DESCRIPTION = "each fix (ReLU, init, BatchNorm, LayerNorm, residual, clipping, inputs) measured"
SCALES = {
    # smoke: rows with claims, on three networks per setting (each network is a compiled
    # program; clipping and He run on the baseline's)
    "smoke": {"width": 32, "seeds": 4, "steps": 300,
              "fixes": ["ReLU + He", "residual", "clipping", "He"]},
    "paper": {"width": 64, "seeds": 8, "steps": 600,
              "fixes": ["ReLU + He", "leaky ReLU", "Xavier", "He", "orthogonal",
                        "BatchNorm", "LayerNorm", "residual", "clipping", "raw inputs"]},
}
LN10 = math.log(10)
SETTINGS = {
    "vanishing": {"depth": 20, "activation": "sigmoid", "init": "glorot_normal",
                  "sigma_w": 1.0, "lr": 0.1},
    "exploding": {"depth": 10, "activation": "relu", "init": "he_normal", "sigma_w": 1.4,
                  "lr": 0.05},
}
FIXES = {  # label -> (spec changes, clip threshold or None, raw inputs)
    "baseline": ({}, None, False),
    "ReLU + He": ({"activation": "relu", "init": "he_normal", "sigma_w": 1.0}, None, False),
    "leaky ReLU": ({"activation": "leaky_relu_0.2"}, None, False),
    "Xavier": ({"init": "glorot_normal", "sigma_w": 1.0}, None, False),
    "He": ({"init": "he_normal", "sigma_w": 1.0}, None, False),
    "orthogonal": ({"init": "orthogonal", "sigma_w": 1.0}, None, False),
    "BatchNorm": ({"norm": "batchnorm"}, None, False),
    "LayerNorm": ({"norm": "layernorm"}, None, False),
    "residual": ({"residual_alpha": 0.5}, None, False),
    "clipping": ({}, 1.0, False),
    "raw inputs": ({}, None, True),
}
RAW_SCALE, RAW_SHIFT = 5.0, 2.0
# the baseline row is always run; a claim whose row is not among the fixes is not made
LIMITS = {"width": (8, 512), "seeds": (2, 128), "steps": (20, 100_000),
          "fixes": {"choices": tuple(f for f in FIXES if f != "baseline"),
                    "len": (1, len(FIXES) - 1), "distinct": True}}
SOURCE = "the seed's table of fixes; Glorot & Bengio 2010; He et al. 2015; Ioffe & Szegedy " \
         "2015; Ba et al. 2016; He et al. 2016; Pascanu et al. 2013"


def _rows(p) -> list[str]:
    return ["baseline"] + [f for f in p["fixes"] if f != "baseline"]


def run(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    raw = transform_inputs(data, RAW_SCALE, RAW_SHIFT)
    rows = {}
    for setting, base in SETTINGS.items():
        # one training per setting (rows on the same network share a compiled program,
        # clipping included); the raw-input row trains on other data, on its own
        labels = {False: [], True: []}
        for label in _rows(p):
            labels[FIXES[label][2]].append(label)
        for raw_inputs, group in labels.items():
            if not group:
                continue
            specs, optimizers = zip(*(_row(p, base, label) for label in group))
            ds = ctx.train(Training(points=specs, optimizer=optimizers, labels=tuple(group),
                                    steps=p["steps"], seeds=p["seeds"], batch_size=64,
                                    eval_every=p["steps"], record_every=p["steps"]),
                           raw if raw_inputs else data,
                           tag=f"{setting}-raw_inputs" if raw_inputs else setting)
            for k, label in enumerate(group):
                rows[(setting, label)] = _summarise(ds.isel(point=[k]), base["depth"])
    claims = _claims(rows)
    # every cell of the table, for the paper to quote (summary.json, figures/numbers.tex)
    ctx.extra.setdefault("measured", {}).update(_measured(rows))
    _write_table(ctx, p, rows)
    _draw(ctx, p, rows)
    return claims


def _row(p, base, label):
    """(network, optimizer) of one row of a setting."""
    changes, clip, _ = FIXES[label]
    spec = MLPSpec(width=p["width"], depth=base["depth"], in_dim=40, out_dim=10,
                   activation=base["activation"], init=base["init"],
                   sigma_w=base["sigma_w"]).replace(**changes)
    opt = OptimizerSpec("sgd", base["lr"]) if clip is None else OptimizerSpec(
        "sgd", base["lr"], clip="global_norm", clip_threshold=clip)
    return spec, opt


def _summarise(ds, depth):
    run = dict(point=0, learning_rate=0)
    grads = ds.layer_grad_norm.isel(record=0, **run).values  # (seed, layer)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(grads[:, 1] / grads[:, depth - 1])
    diverged = ds.diverged_at.isel(**run).values >= 0
    loss = ds.train_loss.isel(eval_step=-1, **run).values
    accuracy = ds.test_accuracy.isel(eval_step=-1, **run).values
    finite = np.isfinite(ratio)
    # ‖∂L/∂W‖ over all layers at init (step 0, before any clipping): where an exploding ReLU
    # net shows its explosion (its per-layer ratio is ≈ 0: every layer grows alike)
    init = ds.grad_norm.isel(step=0, **run).values
    return {"ratio": float(np.median(ratio[finite])) if finite.any() else float("nan"),
            "grad_init": float(np.median(init[np.isfinite(init)])) if np.isfinite(init).any()
            else float("nan"),
            "loss": float(np.median(loss[~diverged])) if (~diverged).any() else float("nan"),
            "accuracy": float(np.median(accuracy[~diverged])) if (~diverged).any()
            else float("nan"),
            "diverged": float(diverged.mean()), "seeds": int(diverged.size)}


def _slug(label) -> str:
    """A row's key in the summary: ``ReLU + He`` → ``relu_he``, ``raw inputs`` →
    ``raw_inputs``."""
    return "_".join(label.lower().replace("+", " ").split())


# the numbers of a row that the summary keeps (its table cells, and the bars' init norm)
MEASURED_FIELDS = ("ratio", "grad_init", "loss", "accuracy", "diverged")


def _measured(rows) -> dict:
    """``{setting: {row slug: {field: value}}}``: the table's numbers (NaN where every run
    diverged), keyed so that the paper quotes e.g. ``vanishing/layernorm/ratio``."""
    out: dict = {}
    for (setting, label), row in rows.items():
        out.setdefault(setting, {})[_slug(label)] = {f: float(row[f]) for f in MEASURED_FIELDS}
    return out


def _claims(rows):
    claims = []
    base = rows[("vanishing", "baseline")]
    claims.append(Claim("vanishing_baseline_stuck", "vanishing baseline (20-layer sigmoid, "
                        "Xavier): final training loss within 0.05 of ln 10 (median)",
                        base["loss"], LN10, 0.05, SOURCE))
    for fix in [f for f in ("ReLU + He", "BatchNorm", "residual") if ("vanishing", f) in rows]:
        row = rows[("vanishing", fix)]
        claims.append(Claim(f"vanishing_fixed_by_{fix.split()[0].lower()}",
                            f"vanishing setting, {fix}: final training loss below ln 10 − 0.3",
                            row["loss"], LN10 - 0.3, 0.0, SOURCE, kind="less"))
    if ("vanishing", "ReLU + He") in rows:
        claims.append(Claim(
            "relu_he_raises_ratio", "vanishing setting: ReLU + He raises the init gradient "
            "ratio log10 ‖∂L/∂W_2‖/‖∂L/∂W_L‖ by more than 3 decades",
            rows[("vanishing", "ReLU + He")]["ratio"] - base["ratio"], 3.0, 0.0, SOURCE,
            kind="greater"))
    if ("vanishing", "clipping") in rows:
        claims.append(Claim(
            "clipping_does_not_fix_vanishing", "vanishing setting: clipping leaves the final "
            "training loss within 0.05 of the baseline's",
            rows[("vanishing", "clipping")]["loss"], base["loss"], 0.05, SOURCE))
    ex = rows[("exploding", "baseline")]
    claims.append(Claim("exploding_baseline_diverges", "exploding baseline (10-layer ReLU, He "
                        "× 1.4): at least half of the runs diverge (fraction)", ex["diverged"],
                        0.5, 0.0, SOURCE, kind="range", upper=1.0))
    for fix in [f for f in ("clipping", "BatchNorm", "LayerNorm", "He")
                if ("exploding", f) in rows]:
        claims.append(Claim(f"exploding_fixed_by_{fix.lower()}",
                            f"exploding setting, {fix}: no run diverges (fraction)",
                            rows[("exploding", fix)]["diverged"], 0.0, 0.0, SOURCE))
    return claims


def _fmt(x, digits=2):
    if not math.isfinite(x):
        return "--"
    text = f"{x:.{digits}f}"
    # −0.04 rounds to "-0.0": a sign the reader would take for a measured direction
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _write_table(ctx, p, rows):
    lines = [r"\begin{tabular}{l" + "rrrr" * 2 + "}", r"\toprule",
             r" & \multicolumn{4}{c}{vanishing (sigmoid, 20 layers)} & "
             r"\multicolumn{4}{c}{exploding (ReLU, He$\times$1.4, 10 layers)} \\",
             r"fix & ratio & loss & test acc. & div. & ratio & loss & test acc. & div. \\",
             r"\midrule"]
    for label in _rows(p):
        cells = []
        for setting in SETTINGS:
            r = rows[(setting, label)]
            cells += [_fmt(r["ratio"], 1), _fmt(r["loss"]), _fmt(r["accuracy"]),
                      _fmt(r["diverged"])]
        lines.append(f"{label} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic("\n".join(lines) + "\n", ctx.figures_dir / f"{NAME}.tex")


PANELS = (  # key, x label, log axis
    ("ratio", "init $\\log_{10} \\|\\nabla W_2\\| / \\|\\nabla W_L\\|$\n"
     "(ReLU: ≈ 0 even if exploding)", False),
    ("grad_init", "init $\\|\\nabla W\\|$, all layers\n(log scale)", True),
    ("loss", "final training loss", False),
    ("accuracy", "test accuracy", False),
    ("diverged", "fraction diverged", False))


def _draw(ctx, p, rows):
    labels = _rows(p)
    y = np.arange(len(labels))
    with plotting.style():
        fig, axes = plotting.figure("double", 3.4, ncols=len(PANELS), sharey=True,
                                    gridspec_kw={"wspace": 0.25})
        grad = [r["grad_init"] for r in rows.values() if np.isfinite(r["grad_init"])]
        for k, (setting, color) in enumerate(zip(SETTINGS, plotting.OKABE_ITO)):
            off = (k - 0.5) * 0.35
            for ax, (key, xlabel, log) in zip(axes, PANELS):
                values = np.asarray([rows[(setting, label)][key] for label in labels])
                ok = np.isfinite(values)
                if log:  # a bar on a log axis has no base: a dot at the value, a thin stem
                    ax.hlines(y[ok] + off, min(grad) / 3, values[ok], color=color, lw=0.8)
                    ax.plot(values[ok], y[ok] + off, "o", color=color, ms=3.5)
                else:
                    ax.barh(y[ok] + off, values[ok], height=0.35, color=color,
                            label=setting if key == "diverged" else None)
                for i in np.flatnonzero(~ok):  # all runs diverged: no value, marked
                    ax.plot(0, y[i] + off, "x", color=color, ms=5, clip_on=False)
                ax.set_xlabel(xlabel, fontsize=7)
        axes[1].set_xscale("log")
        axes[1].set_xlim(min(grad) / 3, max(grad) * 3)
        axes[1].tick_params(axis="x", which="minor", bottom=False)
        axes[2].axvline(LN10, color="0.4", ls=":", lw=0.9)
        axes[2].text(LN10, len(labels) - 0.4, "ln 10", fontsize=6, ha="center")
        axes[3].axvline(0.1, color="0.4", ls=":", lw=0.9)
        axes[3].text(0.1, len(labels) - 0.4, "chance", fontsize=6, ha="center")
        axes[4].set_xlim(0, 1.05)
        axes[0].set_yticks(y, labels)
        axes[0].invert_yaxis()
        axes[4].legend(fontsize=6, loc="center right")
        fig.suptitle(f"one change at a time, {p['seeds']} seeds, {p['steps']} SGD steps "
                     "(✕: every run diverged)", fontsize=8)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
