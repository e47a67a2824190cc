"""Deep 1-D CNNs on MNIST-1D: plain (He, delta-orthogonal), BatchNorm and residual blocks.

At init (mean field for convolutions, Xiao et al. 2018, which assumes periodic signals:
circular padding here): a ReLU layer multiplies E‖∂L/∂h‖² by χ = σ_w² E[φ'²] = 1 for He
(σ_w² = 2/fan_in) and for delta-orthogonal kernels with gain √2, so the back-propagated
signal keeps its mean square through depth: ½ log10 of the seed mean of
‖δ_1‖²/‖δ_L‖² is 0.  With BatchNorm before the ReLU and no skip connections the gradient
explodes towards the input; for fully connected layers at large batch and width the
squared norm grows by π/(π − 1) ≈ 1.467 per layer (Yang et al. 2019), the rate tested
here on convolutions (BatchNorm over batch and positions).  Residual
blocks h_l = h_(l−1) + α conv(φ(h_(l−1))), α = 1/√(L − 1), keep it within a bounded factor.

In training (Adam, the same settings for every block): at depth 50 the plain networks are
expected to train worse than the residual ones (He et al. 2016: deeper plain networks
have higher training error); a shallow CNN and a GRU reading the signal as a sequence are
sanity anchors against the MNIST-1D paper's 94 % (CNN) and 91 % (GRU) test accuracy,
which were reached with longer training than here, so only a lower range is claimed.
"""

import math

import numpy as np
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from gradstudy import Sweep, plotting
from gradstudy.data import mnist1d, sequence_mnist1d
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.families.cnn import CNNSpec
from gradstudy.families.rnn import RNNSpec
from gradstudy.studies import (
    K_SE,
    Claim,
    log_mean_square_excess,
    mean_se,
    moving_average,
    tolerance,
)

NAME = "cnn_depth"
DESCRIPTION = "1-D CNNs up to depth 50 on MNIST-1D: plain He / delta-orthogonal, " \
              "BatchNorm, residual; per-layer gradients at init and training"
BLOCKS = ("plain He", "plain δ-orthogonal", "BatchNorm", "residual")
SCALES = {
    "smoke": {"deep": 30, "shallow": 4, "channels": 8, "init_seeds": 8,
              "seeds": 2, "steps": 150, "lr": 3e-3, "gru_hidden": 16, "gru_steps": 100,
              "train_blocks": ["plain He", "residual"]},
    "paper": {"deep": 50, "shallow": 4, "channels": 16, "init_seeds": 16,
              "seeds": 4, "steps": 400, "lr": 3e-3, "gru_hidden": 32, "gru_steps": 2000,
              "train_blocks": ["plain He", "plain δ-orthogonal", "BatchNorm", "residual"]},
}
LIMITS = {"deep": (17, 200), "shallow": (2, 16), "channels": (2, 256),
          "init_seeds": (4, 1024), "seeds": (1, 64), "steps": (20, 100_000),
          "lr": (1e-6, 1.0), "gru_hidden": (2, 512), "gru_steps": (20, 100_000),
          "train_blocks": {"choices": BLOCKS, "len": (1, 4), "distinct": True}}
KERNEL = 3  # taps of every convolution
MARKERS = "osD^"  # figure: one per block, so that equal accuracies stay distinguishable
BN_FACTOR = math.pi / (math.pi - 1)  # Yang et al. 2019: BN→ReLU, per layer, large batch
ANCHORS = {"CNN": 0.94, "GRU": 0.91}  # Greydanus 2020, MNIST-1D test accuracy
MIN_ANCHOR_STEPS = {"CNN": 400, "GRU": 1000}  # the anchor claims need this much training
SOURCE_INIT = ("mean field for CNNs: Xiao et al. 2018; He et al. 2015; BatchNorm: Yang et al. "
               "2019")
SOURCE_TRAIN = "He et al. 2016 (plain vs residual); Greydanus 2020 (MNIST-1D anchors)"


def _spec(p, depth, block):
    common = {"depth": depth, "channels": p["channels"], "kernel_size": KERNEL,
              "padding": "circular"}
    return {"plain He": CNNSpec(**common, block="plain", init="he_normal"),
            "plain δ-orthogonal": CNNSpec(**common, block="plain", init="delta_orthogonal",
                                          sigma_w=math.sqrt(2)),
            "BatchNorm": CNNSpec(**common, block="batchnorm", init="he_normal"),
            "residual": CNNSpec(**common, block="residual", init="he_normal")}[block]


def run(ctx, p):
    init = ctx.sweep(Sweep(points=tuple(_spec(p, p["deep"], b) for b in BLOCKS),
                           depths=(p["deep"],), seeds=p["init_seeds"], batch=32,
                           labels=BLOCKS, loss="linear"), tag="init")
    data = mnist1d(ctx.results_dir.parent / "data")
    adam = OptimizerSpec("adam", p["lr"])

    def training(points, labels, steps=p["steps"]):
        return Training(points=points, labels=labels, optimizer=adam, steps=steps,
                        seeds=p["seeds"], batch_size=32, eval_every=steps // 2,
                        record_every=max(1, steps // 10))

    runs = {(depth, block): ctx.train(training((_spec(p, depth, block),), (block,)), data,
                                      tag=f"d{depth}-{block.split()[-1][:8]}")
            for depth in (p["shallow"], p["deep"]) for block in p["train_blocks"]}
    gru = ctx.train(training((RNNSpec(cell="gru", hidden=p["gru_hidden"], in_dim=1,
                                      out_dim=10, length=40),), ("GRU",), p["gru_steps"]),
                    sequence_mnist1d(data), tag="gru")
    claims = _init_claims(p, init) + _train_claims(p, runs, gru)
    # the numbers the paper quotes besides the claims (summary.json, figures/numbers.tex)
    ctx.extra.setdefault("measured", {}).update(_measured(p, runs, gru))
    _draw(ctx, p, init, runs, gru)
    return claims


# -------------------------------------------------------------------------- claims
def _log10_ratio(init, block):
    """(seeds,) log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖."""
    b = init.backprop_norm.sel(point=block).values
    return np.log10(b[:, 0] / b[:, -1])


def _init_claims(p, init):
    L = p["deep"]
    claims = []
    for block, key in (("plain He", "he"), ("plain δ-orthogonal", "delta_orthogonal")):
        excess, se = log_mean_square_excess(_log10_ratio(init, block), 0.0)
        claims.append(Claim(
            f"init_flat_{key}", f"at init, depth {L}, {block} (ReLU, χ = 1): ½ log10 of the "
            f"seed mean of ‖δ_1‖²/‖δ_L‖² is mean field's 0 ({K_SE:g} SE)", excess, 0.0,
            tolerance(se), SOURCE_INIT))
    per_layer = 2 * _log10_ratio(init, "BatchNorm") / (L - 1)  # log10 of the squared factor
    _, se = mean_se(per_layer)  # widened below 8 seeds, like every other error bar
    claims.append(Claim(
        "init_batchnorm_growth", f"at init, depth {L}, BatchNorm→ReLU: ‖∂L/∂h‖² grows by "
        f"π/(π − 1) = {BN_FACTOR:.3f} per layer towards the input (geometric mean over "
        f"layers and seeds; {K_SE:g} SE)", float(10 ** np.mean(per_layer)), BN_FACTOR,
        tolerance(se * np.log(10) * BN_FACTOR), SOURCE_INIT))
    claims.append(Claim(
        "init_batchnorm_explodes", f"at init, depth {L}, BatchNorm→ReLU without skip "
        "connections: the gradient explodes towards the input (per-layer factor of "
        "‖∂L/∂h‖², geometric mean, above 1)", float(10 ** np.mean(per_layer)), 1.0, 0.0,
        SOURCE_INIT, kind="greater"))
    return claims


def _final(ds, name):
    return ds[name].isel(point=0, learning_rate=0, eval_step=-1).values


def _train_claims(p, runs, gru):
    deep, shallow, blocks = p["deep"], p["shallow"], p["train_blocks"]
    claims = []
    if "plain He" in blocks:
        plain = float(np.nanmedian(_final(runs[(deep, "plain He")], "train_loss")))
        plain_shallow = float(np.nanmedian(_final(runs[(shallow, "plain He")],
                                                  "train_loss")))
        claims.append(Claim(
            "deep_plain_degrades",
            f"plain He CNN: the final training loss at depth {deep} is above the one at "
            f"depth {shallow} ({plain_shallow:.3f}; same steps; medians)", plain,
            plain_shallow, 0.0, SOURCE_TRAIN, kind="greater"))
        if "residual" in blocks:
            residual = float(np.nanmedian(_final(runs[(deep, "residual")], "train_loss")))
            claims.append(Claim(
                "deep_residual_trains_better",
                f"depth {deep}, {p['steps']} Adam steps: the residual CNN's final training "
                f"loss is below the plain He CNN's ({plain:.3f}; medians over seeds)",
                residual, plain, 0.0, SOURCE_TRAIN, kind="less"))
    if p["steps"] >= MIN_ANCHOR_STEPS["CNN"]:
        best_shallow = max(float(np.nanmedian(_final(runs[(shallow, b)], "test_accuracy")))
                           for b in blocks)
        claims.append(Claim(
            "shallow_cnn_anchor",
            f"depth {shallow}, {p['steps']} Adam steps: the best block's test accuracy "
            f"(median over seeds) is at least 0.6 and at most the paper's "
            f"{ANCHORS['CNN']:.0%} + 3 % (trained longer there)", best_shallow, 0.6,
            0.0, SOURCE_TRAIN, kind="range", upper=ANCHORS["CNN"] + 0.03))
    if p["gru_steps"] >= MIN_ANCHOR_STEPS["GRU"]:
        claims.append(Claim(
            "gru_anchor",
            f"GRU (hidden {p['gru_hidden']}) on MNIST-1D as a sequence, {p['gru_steps']} "
            f"Adam steps: test accuracy (median) is at least 0.5 and at most the paper's "
            f"{ANCHORS['GRU']:.0%} + 3 %", float(np.nanmedian(_final(gru, "test_accuracy"))),
            0.5, 0.0, SOURCE_TRAIN, kind="range", upper=ANCHORS["GRU"] + 0.03))
    return claims


def _slug(block: str) -> str:
    """A block's key in the numbers file: "plain δ-orthogonal" → "plain_delta_orthogonal"."""
    return block.replace("δ", "delta").replace("-", "_").replace(" ", "_").lower()


def _measured(p, runs, gru) -> dict:
    """The final test accuracy and training loss (medians over seeds) of every trained
    network: ``test_accuracy/depth<d>/<block>``, ``train_loss/depth<d>/<block>`` for the
    blocks of ``train_blocks`` at the shallow and the deep depth, and ``…/gru``."""
    out = {"test_accuracy": {}, "train_loss": {}}
    for (depth, block), ds in runs.items():
        for field in out:
            out[field].setdefault(f"depth{depth}", {})[_slug(block)] = float(
                np.nanmedian(_final(ds, field)))
    for field in out:
        out[field]["gru"] = float(np.nanmedian(_final(gru, field)))
    return out


# -------------------------------------------------------------------------- figure
def _draw(ctx, p, init, runs, gru):
    L = p["deep"]
    layers = np.arange(1, L + 1)
    with plotting.style():
        fig, axes = plotting.figure("double", 2.8, ncols=3, gridspec_kw={"wspace": 0.5})
        ax = axes[0]
        for k, block in enumerate(BLOCKS):
            b = init.backprop_norm.sel(point=block).values
            plotting.median_band(ax, layers, b / b[:, -1:], plotting.OKABE_ITO[k],
                                 label=block)
        ax.axhline(1.0, color="0.3", ls="--", lw=0.9, label="mean field χ = 1")
        ax.plot(layers, np.sqrt(BN_FACTOR) ** (L - layers), color=plotting.OKABE_ITO[2],
                ls=":", lw=0.9, label="√(π/(π−1)) per layer")
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_ylabel(r"$\|\partial L/\partial h_l\| \;/\; \|\partial L/\partial h_L\|$")
        ax.set_title(f"(a) at init, depth {L}, {p['init_seeds']} seeds\n(median, 10–90 %)",
                     fontsize=7)
        # below the panel: inside, the BatchNorm curve and its theory cross the upper right
        ax.legend(fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.2))

        ax = axes[1]
        depths = [p["shallow"], L]
        # categories (depth 4, depth 50, GRU), not a numeric axis: no lines between them; the
        # blocks side by side within a category, each with its own marker
        for k, block in enumerate(BLOCKS):
            if block not in p["train_blocks"]:
                continue
            acc = [_final(runs[(d, block)], "test_accuracy") for d in depths]
            x = np.arange(2) + 0.16 * (k - 1.5)
            ax.plot(x, [np.nanmedian(a) for a in acc], MARKERS[k], ms=4, ls="none",
                    color=plotting.OKABE_ITO[k], label=block, zorder=4)
            for xi, a in zip(x, acc):
                ax.plot(np.full(a.size, xi + 0.05), a, ".", color=plotting.OKABE_ITO[k],
                        ms=2, alpha=0.7)
        for edge in (0.5, 1.5):
            ax.axvline(edge, color="0.8", lw=0.6)
        # each anchor over the category it is for
        ax.hlines(ANCHORS["CNN"], -0.5, 1.5, color="0.3", ls="--", lw=0.9,
                  label=f"paper: CNN {ANCHORS['CNN']:.0%}")
        ax.hlines(ANCHORS["GRU"], 1.5, 2.5, color="0.5", ls=":", lw=0.9,
                  label=f"paper: GRU {ANCHORS['GRU']:.0%}")
        g = _final(gru, "test_accuracy")
        ax.plot(2.0, np.nanmedian(g), "*", color=plotting.OKABE_ITO[5], ms=6, ls="none",
                label=f"GRU, {p['gru_steps']} steps", zorder=4)
        ax.plot(np.full(g.size, 2.05), g, ".", color=plotting.OKABE_ITO[5], ms=2, alpha=0.7)
        ax.set_xticks([0, 1, 2], [f"CNN\ndepth {p['shallow']}", f"CNN\ndepth {L}", "GRU"])
        ax.set_xlim(-0.5, 2.5)
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.grid(False, axis="x")
        ax.set_ylabel("final test accuracy")
        ax.set_title(f"(b) MNIST-1D, {p['steps']} Adam steps: median,\n{p['seeds']} seeds (dots)",
                     fontsize=7)
        ax.legend(fontsize=5, loc="upper center", ncol=2, bbox_to_anchor=(0.5, -0.2))

        ax = axes[2]
        for k, block in enumerate(BLOCKS):
            if block not in p["train_blocks"]:
                continue
            loss = runs[(L, block)].loss.isel(point=0, learning_rate=0).values
            window = max(1, loss.shape[-1] // 30)
            smooth = np.stack([moving_average(s, window) for s in loss])
            # plain He and δ-orthogonal both stay at ln 10: He dashed and on top, so that
            # the one drawn under it shows between the dashes
            plotting.median_band(ax, np.arange(smooth.shape[-1]) + window - 1, smooth,
                                 plotting.OKABE_ITO[k], label=block,
                                 ls=(0, (3, 2)) if block == "plain He" else "-",
                                 zorder=3 if block == "plain He" else 2)
        ax.axhline(math.log(10), color="0.4", ls=":", lw=0.9, label="ln 10 (chance)")
        ax.set_yscale("log")
        # less than a decade: plain tick labels, not 3×10⁰
        ax.yaxis.set_major_locator(FixedLocator([0.3, 0.4, 0.6, 1, 1.5, 2, 3]))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Adam step")
        ax.set_ylabel("minibatch loss")
        ax.set_title(f"(c) training at depth {L} (median,\n10–90 %, moving average of "
                     f"{window})", fontsize=7)
        ax.legend(fontsize=5, loc="lower left")
        plotting.save_figure(fig, ctx.figures_dir, NAME)
