"""SGD, momentum, RMSProp and Adam in the vanishing regime: per-layer updates.

Expectations, stated before measuring.  In a deep sigmoid MLP (Xavier) ‖∂L/∂W_l‖ falls by
orders of magnitude towards the input.  SGD and momentum steps are proportional to the
gradient, so the early layers hardly move.  Adam's first step is lr·g/(|g| + ε) per entry:
≈ lr·sign(g) wherever |g| ≫ ε, so every layer moves by ≈ lr·√(entries) — the early layers
move like the late ones, and the network can learn.  Where |g| ≪ ε (ε = 1e-8) the step is
lr·g/ε instead, and the early layers stay frozen: in a 30-layer sigmoid net the gradients of
layer 2 are ≈ 1e-20.  optax's RMSProp puts ε inside the square root, lr·g/√((1−ρ)g² + ε):
it normalizes only gradients above √(ε/(1−ρ)) ≈ 3e-4, and below that its step is lr·g/√ε.
"""

import math

import numpy as np

from gradstudy import MLPSpec, plotting
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.studies import Claim, moving_average, require

NAME = "optimizers"
DESCRIPTION = "SGD / momentum / RMSProp / Adam per-layer updates in a vanishing sigmoid MLP"
SCALES = {
    "smoke": {"width": 64, "shallow": 8, "deep": 30, "seeds": 2, "steps": 300},
    "paper": {"width": 64, "shallow": 8, "deep": 30, "seeds": 8, "steps": 1000},
}
LIMITS = {"width": (8, 1024), "shallow": (4, 16), "deep": (20, 40), "seeds": (1, 256),
          "steps": (20, 100_000)}
OPTIMIZERS = {"SGD": OptimizerSpec("sgd", 0.1), "momentum": OptimizerSpec("momentum", 0.1),
              "RMSProp": OptimizerSpec("rmsprop", 1e-3), "Adam": OptimizerSpec("adam", 1e-3)}
LN10 = math.log(10)
SOURCE = "Kingma & Ba 2015 (Adam); Tieleman & Hinton 2012 (RMSProp); optax's update rules"


def validate(p):
    require(p["deep"] > p["shallow"], "deep", f"must exceed shallow ({p['shallow']})")


def _spec(p, depth):
    return MLPSpec(width=p["width"], depth=depth, in_dim=40, out_dim=10, activation="sigmoid",
                   init="glorot_normal")


def run(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    runs = {}
    # the deep net's claims are about its first step: two steps are trained
    # (the four optimizers of one depth are one training: one compiled program)
    for depth, steps in ((p["shallow"], p["steps"]), (p["deep"], 2)):
        ds = ctx.train(
            Training(points=(_spec(p, depth),) * len(OPTIMIZERS),
                     optimizer=tuple(OPTIMIZERS.values()), labels=tuple(OPTIMIZERS),
                     steps=steps, seeds=p["seeds"], batch_size=64,
                     eval_every=max(1, steps // 4), record_every=max(1, steps // 20)),
            data, tag=f"d{depth}")
        for k, label in enumerate(OPTIMIZERS):
            runs[(depth, label)] = ds.isel(point=[k])
    claims = _claims(p, runs)
    _draw(ctx, p, runs)
    return claims


def _first(ds, name):
    """(seed, layer) values of ``name`` at the first step."""
    return ds[name].isel(point=0, learning_rate=0, record=0).values


def _claims(p, runs):
    shallow, deep, n = p["shallow"], p["deep"], p["width"]
    claims = []
    adam = OPTIMIZERS["Adam"]
    upd = _first(runs[(shallow, "Adam")], "layer_update_norm")
    claims.append(Claim(
        "adam_early_moves_like_late",
        f"depth {shallow}, Adam's first step: ‖ΔW_2‖/‖ΔW_L‖ above 0.9 (every entry moves by "
        f"≈ lr; SGD's ratio is the gradient's, ≈ 1e-4; median over seeds)",
        float(np.median(upd[:, 1] / upd[:, shallow - 1])), 0.9, 0.0, SOURCE, kind="greater"))
    claims.append(Claim(
        "adam_step_is_lr_per_entry",
        f"depth {shallow}, Adam's first step at layer L: ‖ΔW_L‖/(lr·√(n²)) in [0.9, 1] "
        "(median over seeds)",
        float(np.median(upd[:, shallow - 1] / (adam.learning_rate * n))), 0.9, 0.0, SOURCE,
        kind="range", upper=1.0))
    grad = _first(runs[(deep, "Adam")], "layer_grad_norm")
    upd = _first(runs[(deep, "Adam")], "layer_update_norm")
    expected = adam.learning_rate * grad[:, 1] / adam.eps
    claims.append(Claim(
        "adam_frozen_below_eps",
        f"depth {deep}: layer-2 gradients ≪ ε, so Adam's first step there is lr·g/ε "
        f"(max relative error over seeds; ‖g_2‖ ≈ {np.median(grad[:, 1]):.1e})",
        float(np.max(np.abs(upd[:, 1] / expected - 1))), 0.0, 1e-3, SOURCE))
    claims.append(Claim(
        "adam_frozen_ratio",
        f"depth {deep}, Adam's first step: ‖ΔW_2‖/‖ΔW_L‖ below 1e-6 (median over seeds)",
        float(np.median(upd[:, 1] / upd[:, deep - 1])), 1e-6, 0.0, SOURCE, kind="less"))
    rms = OPTIMIZERS["RMSProp"]
    grad = _first(runs[(shallow, "RMSProp")], "layer_grad_norm")
    upd = _first(runs[(shallow, "RMSProp")], "layer_update_norm")
    expected = rms.learning_rate * grad[:, 1] / math.sqrt(rms.eps)
    claims.append(Claim(
        "rmsprop_eps_inside_sqrt",
        f"depth {shallow}: layer-2 gradients below √(ε/(1−ρ)) ≈ 3e-4, so RMSProp's first step "
        "there is lr·g/√ε (max relative error over seeds)",
        float(np.max(np.abs(upd[:, 1] / expected - 1))), 0.0, 1e-2, SOURCE))
    finals = {label: float(np.nanmedian(runs[(shallow, label)].train_loss.isel(
        point=0, learning_rate=0, eval_step=-1).values)) for label in OPTIMIZERS}
    claims.append(Claim(
        "adam_learns", f"depth {shallow}: Adam lowers the training loss below ln 10 − 0.3 "
        f"in {p['steps']} steps (median over seeds)", finals["Adam"], LN10 - 0.3, 0.0,
        SOURCE, kind="less"))
    claims.append(Claim(
        "sgd_stuck", f"depth {shallow}: SGD's training loss stays above ln 10 − 0.05 "
        f"(median over seeds)", finals["SGD"], LN10 - 0.05, 0.0, SOURCE, kind="greater"))
    return claims


def _first_step_theory(p, depth, label, ds):
    """(seed, layer) ‖ΔW_l‖/‖W_l‖ of the first step that the claims test, from each seed's
    own ‖g_l‖ and ‖W_l‖: Adam's lr·g/(|g|+ε) and RMSProp's lr·g/√((1−ρ)g²+ε) per entry,
    with the N_l entries of a layer taken of equal size |g| = ‖g_l‖/√N_l (exact in both
    limits the claims check: lr·√N_l for |g| ≫ ε, lr·‖g_l‖/ε for |g| ≪ ε)."""
    spec = OPTIMIZERS[label]
    grad = _first(ds, "layer_grad_norm")
    weight = _first(ds, "layer_update_norm") / _first(ds, "layer_update_ratio")
    dims = np.asarray([40] + [p["width"]] * depth + [10], float)
    entries = dims[:-1] * dims[1:]
    g = grad / np.sqrt(entries)  # the entries' size
    if label == "Adam":
        per_entry = g / (g + spec.eps)
    else:
        per_entry = g / np.sqrt((1 - spec.decay) * g**2 + spec.eps)
    return spec.learning_rate * np.sqrt(entries) * per_entry / weight


def _draw(ctx, p, runs):
    styles = {label: (plotting.OKABE_ITO[k], plotting.LINESTYLES[k])
              for k, label in enumerate(OPTIMIZERS)}
    with plotting.style():
        fig, axes = plotting.figure("double", 2.8, ncols=3, gridspec_kw={"wspace": 0.42})
        for ax, depth in zip(axes[:2], (p["shallow"], p["deep"])):
            for label in OPTIMIZERS:
                ratio = _first(runs[(depth, label)], "layer_update_ratio")
                color, ls = styles[label]
                plotting.median_band(ax, np.arange(1, ratio.shape[1] + 1), ratio, color,
                                     label=label, ls=ls)
            for label in ("RMSProp", "Adam"):  # the expectations the claims test
                theory = _first_step_theory(p, depth, label, runs[(depth, label)])
                ax.plot(np.arange(1, theory.shape[1] + 1), np.median(theory, axis=0),
                        color="k", lw=0.7, zorder=4,
                        label="theory (RMSProp, Adam): first step, entries of equal size"
                        if label == "Adam" else None)
            ax.set_yscale("log")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("layer $l$ ($L$+1 = readout)")
            ax.set_title(f"first step, {depth}-layer sigmoid MLP", fontsize=7)
        axes[0].set_ylabel(r"$\|\Delta W_l\| / \|W_l\|$ (median, 10–90 %)")
        # one legend for the three panels, below them (inside, it covered the curves)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=5,
                   bbox_to_anchor=(0.5, -0.02), fontsize=6.5)
        ax = axes[2]
        for label in OPTIMIZERS:
            loss = runs[(p["shallow"], label)].loss.isel(point=0, learning_rate=0).values
            color, ls = styles[label]
            med = np.nanmedian(loss, axis=0)
            window = max(1, med.size // 20)
            smooth = moving_average(med, window)
            ax.plot(np.arange(window - 1, med.size), smooth, color=color, ls=ls, label=label)
        ax.axhline(LN10, color="0.4", ls=":", lw=0.9)
        ax.text(0.98, LN10 + 0.01, "ln 10", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=6, color="0.3")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (median, smoothed)")
        ax.set_title(f"training, {p['shallow']} layers", fontsize=7)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
