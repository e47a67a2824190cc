"""Schoenholz et al. (2017), scaled down: which (σ_w², depth) tanh networks train at all.

Expectation, stated before measuring: signals propagate through about ξ_c layers (the depth
scale of the correlation map, mean field), so after a fixed budget of SGD steps on
MNIST-1D, networks deeper than 6ξ_c are untrainable (training accuracy at chance) and
networks shallower than ξ_c train (Schoenholz et al. 2017, Fig. 5: the trainable region is
depth ≲ 6ξ_c).  One-sided claims: ≥ 90 % of the cells deeper than 6ξ_c are untrainable and
≥ 90 % of the cells shallower than ξ_c are trainable, where "trainable" is a training
accuracy (median over seeds) above chance + 0.1.  All σ_w² of one depth are one compiled
program (gains are traced).
"""

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import MLPSpec, plotting, theory
from gradstudy.data import mnist1d
from gradstudy.engine import OptimizerSpec, Training
from gradstudy.studies import Claim, require

NAME = "trainability"
DESCRIPTION = "training accuracy over (σ_w², depth) for tanh MLPs vs ξ_c and 6ξ_c"
SCALES = {
    "smoke": {"width": 32, "depths": [2, 8, 32], "sigma_w2": [0.25, 1.0, 1.76, 4.0],
              "seeds": 1, "steps": 300, "lr": 0.05},
    "paper": {"width": 64, "depths": [2, 4, 8, 16, 32, 64],
              "sigma_w2": [0.25, 0.5, 0.8, 1.0, 1.4, 1.76, 2.3, 3.0, 4.0],
              "seeds": 2, "steps": 600, "lr": 0.05},
}
LIMITS = {"width": (8, 1024), "depths": {"range": (1, 256), "len": (2, 12), "distinct": True,
                                         "increasing": True},
          "sigma_w2": {"range": (0.05, 16.0), "len": (2, 16), "distinct": True,
                       "increasing": True},
          "seeds": (1, 64), "steps": (20, 100_000), "lr": (1e-5, 10.0)}
SIGMA_B2 = 0.05
CHANCE = 0.1
MARGIN = 0.1  # trainable: training accuracy above chance + this
FRACTION = 0.9
SOURCE = "Schoenholz et al. 2017 (depth ≲ 6ξ_c trains); ξ_c from mean field, theory.py"


def validate(p):
    require(len(p["depths"]) >= 2, "depths", "need at least 2")


def run(ctx, p):
    data = mnist1d(ctx.results_dir.parent / "data")
    s2w = np.asarray(p["sigma_w2"], float)
    accuracy = np.full((len(s2w), len(p["depths"])), np.nan)
    diverged = np.zeros_like(accuracy, bool)
    for j, depth in enumerate(p["depths"]):
        points = tuple(MLPSpec(width=p["width"], depth=depth, in_dim=40, out_dim=10,
                               activation="tanh", init="gaussian", sigma_w=float(np.sqrt(v)),
                               sigma_b=float(np.sqrt(SIGMA_B2))) for v in s2w)
        ds = ctx.train(Training(points=points, labels=tuple(f"{v:g}" for v in s2w),
                                optimizer=OptimizerSpec("sgd", p["lr"]), steps=p["steps"],
                                seeds=p["seeds"], batch_size=64, eval_every=p["steps"],
                                record_every=p["steps"]), data, tag=f"depth{depth}")
        final = ds.train_accuracy.isel(learning_rate=0, eval_step=-1).values  # (point, seed)
        # a diverged run has not learned: NaN accuracy counts as chance
        accuracy[:, j] = np.median(np.where(np.isfinite(final), final, CHANCE), axis=1)
        diverged[:, j] = np.any(ds.diverged_at.isel(learning_rate=0).values >= 0, axis=1)
    with jax.enable_x64(True):
        xi = np.asarray(theory.mean_field(jnp.tanh, jnp.asarray(s2w), SIGMA_B2).xi_c)
    claims = _claims(p, s2w, accuracy, xi)
    # the numbers the paper quotes besides the claims (summary.json, figures/numbers.tex)
    ctx.extra.setdefault("measured", {}).update(_measured(p, s2w, accuracy, xi))
    _draw(ctx, p, s2w, accuracy, diverged, xi)
    return claims


def _claim_cells(p, xi):
    """{claim id: ((σ_w², depth) cells it is about, trainable expected?, text)}: the one
    definition the claims count and the figure marks."""
    depths = np.asarray(p["depths"], float)
    return {"deep_untrainable": (depths[None, :] > 6 * xi[:, None], False,
                                 "deeper than 6ξ_c are untrainable"),
            "shallow_trainable": (depths[None, :] < xi[:, None], True,
                                  "shallower than ξ_c are trainable")}


def _measured(p, s2w, accuracy, xi) -> dict:
    """Per claim: the number of its cells (``<claim>_cells``) and the cells against its
    expectation (``<claim>_against``: a list, in increasing σ_w² then depth, of
    ``{"sigma_w2", "depth", "depth_over_xi_c", "accuracy"}``)."""
    trainable = accuracy > CHANCE + MARGIN
    depths = np.asarray(p["depths"], float)
    out = {}
    for cid, (cells, want, _) in _claim_cells(p, xi).items():
        out[f"{cid}_cells"] = int(cells.sum())
        out[f"{cid}_against"] = [
            {"sigma_w2": float(s2w[i]), "depth": int(depths[j]),
             "depth_over_xi_c": float(depths[j] / xi[i]), "accuracy": float(accuracy[i, j])}
            for i, j in np.argwhere(cells & (trainable != want))]
    return out


def _claims(p, s2w, accuracy, xi):
    trainable = accuracy > CHANCE + MARGIN
    claims = []
    for cid, (cells, want, text) in _claim_cells(p, xi).items():
        n = int(cells.sum())
        frac = float(np.mean(trainable[cells] == want)) if n else float("nan")
        claims.append(Claim(
            cid, f"at least {FRACTION:.0%} of the {n} cells {text} (training accuracy "
            f"{'≤' if not want else '>'} chance + {MARGIN:g} after {p['steps']} SGD steps)",
            frac, FRACTION, 0.0, SOURCE, kind="range", upper=1.0))
    return claims


def _draw(ctx, p, s2w, accuracy, diverged, xi):
    from matplotlib.patches import Patch, Rectangle

    depths = np.asarray(p["depths"])
    with plotting.style():
        fig, ax = plotting.figure("single", 3.2)
        y = np.log2(depths)
        x_edges, y_edges = plotting.cell_edges(s2w), plotting.cell_edges(y)
        mesh = plotting.heatmap(ax, x_edges, y_edges, accuracy.T, cmap="viridis", vmin=0.0,
                                vmax=max(0.5, float(np.nanmax(accuracy))))
        fig.colorbar(mesh, ax=ax, label="training accuracy (median over seeds)")
        # the cells of claim deep_untrainable: hatched; those that trained anyway (against
        # the claim) outlined
        cells, want, _ = _claim_cells(p, xi)["deep_untrainable"]
        against = cells & ((accuracy > CHANCE + MARGIN) != want)
        for i, j in np.argwhere(cells):
            box = (x_edges[i], y_edges[j]), x_edges[i + 1] - x_edges[i], y_edges[j + 1] - y_edges[j]
            ax.add_patch(Rectangle(*box, fill=False, hatch="///", edgecolor="w", lw=0,
                                   alpha=0.6))
            if against[i, j]:
                ax.add_patch(Rectangle(*box, fill=False, edgecolor="#D55E00", lw=1.6,
                                       zorder=4))
        handles = [Patch(facecolor="none", edgecolor="w", hatch="///", lw=0,
                         label=f"depth > 6$\\xi_c$: the {int(cells.sum())} cells of\n"
                               "claim deep_untrainable"),
                   Patch(facecolor="none", edgecolor="#D55E00", lw=1.6,
                         label=f"of these, trained\n(against the claim): {int(against.sum())}")]
        bad = np.argwhere(diverged)
        if bad.size:
            handles.append(ax.scatter(s2w[bad[:, 0]], y[bad[:, 1]], marker="x", color="w",
                                      s=14, label="a seed diverged"))
        fine = np.linspace(s2w[0], s2w[-1], 400)
        with jax.enable_x64(True):
            xi_fine = np.asarray(theory.mean_field(jnp.tanh, jnp.asarray(fine), SIGMA_B2).xi_c)
            crit = float(theory.critical_sigma_w2(jnp.tanh, SIGMA_B2, 0.5, 4.0))
        for mult, ls in ((1, ":"), (6, "--")):
            handles += ax.plot(fine, np.log2(mult * xi_fine), color="w", ls=ls, lw=1.1,
                               label=rf"depth = {mult if mult > 1 else ''}$\xi_c$")
        handles.append(ax.axvline(crit, color="0.8", lw=0.8, label=rf"critical $\sigma_w^2$ "
                                  rf"= {crit:.2f}" "\n" r"(order–chaos edge, $\chi_1$ = 1)"))
        ax.set_ylim(y_edges[0], y_edges[-1])
        ax.set_yticks(y, [str(d) for d in depths])
        ax.set_xlabel(r"$\sigma_w^2$ ($\sigma_b^2$ = 0.05)")
        ax.set_ylabel("depth")
        ax.set_title(f"tanh, width {p['width']}, {p['steps']} SGD steps", fontsize=7)
        fig.legend(handles=handles, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.03),
                   ncol=2, handlelength=2.5, facecolor="0.35", labelcolor="w", frameon=True)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
