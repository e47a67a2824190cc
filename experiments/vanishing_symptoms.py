"""The symptoms of vanishing gradients in training, and the fix, on MNIST-1D.

Expectations, stated before measuring: a 10-layer sigmoid MLP with Xavier init has
χ = σ_w² E[σ'(h)²] ≪ 1 per layer, so ‖∂L/∂W_l‖ falls by orders of magnitude towards the
input (mean field: ``gradstudy.theory.weight_grad_profile``).  Trained with plain SGD, its loss
stays near the constant predictor's ln 10, and the relative weight change ‖ΔW_l‖/‖W_l‖ of
the early layers is smaller than that of the last hidden layer by the factor mean field
predicts at init: the early layers are frozen.  The same network with ReLU and He init
learns.
"""

import math

import numpy as np

from gradstudy import MLPSpec, plotting
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.studies import K_SE, Claim, median_se, moving_average, require, tolerance
from gradstudy.theory import weight_grad_profile

NAME = "vanishing_symptoms"
DESCRIPTION = "deep sigmoid MLP: loss stuck at ln 10, early layers frozen; ReLU + He learns"
SCALES = {
    "smoke": {"width": 64, "depth": 10, "seeds": 3, "steps": 400, "lr": 0.1, "batch": 64},
    "paper": {"width": 128, "depth": 10, "seeds": 8, "steps": 1500, "lr": 0.1, "batch": 64},
}
LIMITS = {"width": (8, 2048), "depth": (4, 64), "seeds": (3, 256), "steps": (40, 100_000),
          "lr": (1e-5, 10.0), "batch": (1, 4000)}
NETWORKS = {"sigmoid + Xavier": ("sigmoid", "glorot_normal"), "ReLU + He": ("relu", "he_normal")}
LN10 = math.log(10)
STUCK_MARGIN = 0.05  # "near ln 10": the smoothed median loss stays above ln 10 − this
LEARN_MARGIN = 0.5
# Mean field is exact at infinite width; each layer's χ carries an O(1/n) correction, so
# over the L − 2 hidden layers between layer 2 and layer L the prediction is uncertain by
# about (L − 2)·log10(1 + 2/n) decades (stated, added to the seed-to-seed tolerance).
FINITE_WIDTH_PER_LAYER = 2.0
SOURCE = "Glorot & Bengio 2010; mean field (Schoenholz et al. 2017), gradstudy.theory"


def validate(p):
    require(p["depth"] >= 4, "depth", f"must be >= 4, got {p['depth']}")


def _spec(p, activation, init):
    return MLPSpec(width=p["width"], depth=p["depth"], in_dim=40, out_dim=10,
                   activation=activation, init=init)


def run(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    points = tuple(_spec(p, *v) for v in NETWORKS.values())
    ds = ctx.train(Training(points=points, labels=tuple(NETWORKS),
                            optimizer=OptimizerSpec("sgd", p["lr"]), steps=p["steps"],
                            seeds=p["seeds"], batch_size=p["batch"],
                            eval_every=max(1, p["steps"] // 4),
                            record_every=max(1, p["steps"] // 30)), data)
    claims = _claims(p, ds)
    _draw(ctx, p, ds)
    return claims


def _smoothed(ds, label):
    loss = np.nanmedian(ds.loss.sel(point=label).isel(learning_rate=0).values, axis=0)
    window = max(1, loss.size // 20)
    return moving_average(loss, window)


def _claims(p, ds):
    L = p["depth"]
    sig = "sigmoid + Xavier"
    claims = [Claim(
        "sigmoid_loss_stuck",
        f"sigmoid + Xavier: the smoothed median training loss stays above ln 10 − "
        f"{STUCK_MARGIN:g} for all {p['steps']} steps (its minimum)",
        float(np.min(_smoothed(ds, sig))), LN10 - STUCK_MARGIN, 0.0, SOURCE, kind="greater")]
    # relative update of hidden layer 2 over hidden layer L at the first step (SGD: ΔW = −lr·g,
    # and the square hidden layers have equal ‖W‖ in expectation)
    ratio = ds.layer_update_ratio.sel(point=sig).isel(learning_rate=0, record=0).values
    measured, se = median_se(np.log10(ratio[:, 1] / ratio[:, L - 1]))
    profile = weight_grad_profile(_spec(p, *NETWORKS[sig]), 1.0)
    predicted = float(np.log10(profile[1] / profile[L - 1]))
    theory = (L - 2) * math.log10(1 + FINITE_WIDTH_PER_LAYER / p["width"])
    claims.append(Claim(
        "early_layers_frozen",
        f"sigmoid + Xavier, first step: log10 of ‖ΔW_2‖/‖W_2‖ over ‖ΔW_L‖/‖W_L‖ (median "
        f"over seeds) equals mean field's log10 ‖∂L/∂W_2‖/‖∂L/∂W_L‖ ({K_SE:g} SE + "
        f"{theory:.2f} decades finite width)", measured, predicted,
        tolerance(se) + theory, SOURCE))
    last = ds.layer_update_ratio.sel(point=sig).isel(learning_rate=0).values  # seed, rec, layer
    frozen = float(np.nanmedian(np.nanmax(last[:, :, 1] / last[:, :, L - 1], axis=1)))
    claims.append(Claim(
        "early_layers_stay_frozen",
        "sigmoid + Xavier: over the whole run, layer 2 moves at most 1e-3 as fast as layer L "
        "(largest ratio of relative updates over the records, median over seeds)",
        frozen, 1e-3, 0.0, SOURCE, kind="less"))
    end = float(np.nanmedian(ds.train_loss.sel(point="ReLU + He").isel(
        learning_rate=0, eval_step=-1).values))
    claims.append(Claim(
        "relu_he_learns", f"ReLU + He on the same data: training loss after {p['steps']} "
        f"steps below ln 10 − {LEARN_MARGIN:g} (median over seeds)", end,
        LN10 - LEARN_MARGIN, 0.0, SOURCE, kind="less"))
    return claims


def _draw(ctx, p, ds):
    import matplotlib.colors as mcolors

    L = p["depth"]
    with plotting.style():
        fig, axes = plotting.figure("double", 2.9, ncols=3,
                                    gridspec_kw={"width_ratios": [1.1, 1, 1], "wspace": 0.45})
        ax = axes[0]
        for k, label in enumerate(NETWORKS):
            loss = ds.loss.sel(point=label).isel(learning_rate=0).values
            steps = np.arange(loss.shape[-1])
            smooth = _smoothed(ds, label)
            color = plotting.OKABE_ITO[k]
            ax.plot(steps, np.nanmedian(loss, axis=0), color=color, alpha=0.25, lw=0.6)
            ax.plot(steps[len(steps) - len(smooth):], smooth, color=color, lw=1.4, label=label)
        ax.axhline(LN10, color="0.4", ls=":", lw=0.9, label="ln 10")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("training loss (median over seeds)")
        ax.set_title("loss")
        ax.legend(fontsize=6)
        ratio = {label: np.nanmedian(ds.layer_update_ratio.sel(point=label).isel(
            learning_rate=0).values, axis=0) for label in NETWORKS}  # (record, layer)
        finite = np.concatenate([r[np.isfinite(r) & (r > 0)] for r in ratio.values()])
        norm = mcolors.LogNorm(vmin=max(finite.min(), 1e-12), vmax=finite.max())
        steps = ds.record_step.values
        edges_x = np.concatenate([steps, [2 * steps[-1] - steps[-2]]]) if len(steps) > 1 \
            else np.array([0, 1])
        edges_y = np.arange(0.5, L + 2)
        for ax, label in zip(axes[1:], NETWORKS):
            mesh = plotting.heatmap(ax, edges_x, edges_y, ratio[label].T, norm=norm,
                                    cmap="viridis")
            ax.set_xlabel("SGD step")
            ax.set_title(f"{label}: per layer $l$", fontsize=7)
            ax.set_yticks([1, L // 2, L, L + 1], ["1 (input)", str(L // 2), str(L),
                                                  f"{L + 1} (out)"])
        fig.colorbar(mesh, ax=axes[1:], label=r"relative update $\|\Delta W_l\| / \|W_l\|$"
                     " (median over seeds)", fraction=0.05, pad=0.02)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
