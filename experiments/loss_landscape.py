"""The seed's "hilly terrain": SGD, momentum, RMSProp and Adam paths on one 2-D loss surface.

A two-parameter loss with an ill-conditioned bowl, hills and a deeper valley behind them;
every optimizer starts from the same point (optax, full batch, float64).  Claims are exact
update rules, measured on the paths: every SGD step moves each weight against the sign of its
partial derivative (by exactly lr·g), Adam's first step is lr·g/(|g|+ε) per coordinate and
RMSProp's is lr·g/√((1−ρ)g²+ε) — so the adaptive methods take nearly equal steps in both
coordinates however different the slopes are.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import plotting
from gradstudy.engine import OptimizerSpec, trajectory
from gradstudy.studies import Claim, require

NAME = "loss_landscape"
DESCRIPTION = "SGD / momentum / RMSProp / Adam paths on a 2-D hilly loss; exact update rules"
SCALES = {"smoke": {"steps": 60, "grid": 120}, "paper": {"steps": 150, "grid": 300}}
LIMITS = {"steps": (2, 100_000), "grid": (20, 2000)}
START = (-2.6, 1.3)
OPTIMIZERS = {  # label -> spec (learning rates chosen so that every path stays on the map)
    "SGD": OptimizerSpec("sgd", 0.1),
    "momentum (β=0.9)": OptimizerSpec("momentum", 0.03, momentum=0.9),
    "RMSProp (ρ=0.9)": OptimizerSpec("rmsprop", 0.03, decay=0.9),
    "Adam": OptimizerSpec("adam", 0.05),
}
SOURCE = "update rules: Rumelhart et al. 1986; Tieleman & Hinton 2012; Kingma & Ba 2015"


def loss(w):
    """An ill-conditioned bowl (curvatures 0.15 and 2), hills, and a well at (1.8, −0.2)."""
    x, y = w[0], w[1]
    return (0.5 * (0.15 * x**2 + 2.0 * y**2) + 0.35 * jnp.sin(2.0 * x) * jnp.cos(1.5 * y)
            - 0.8 * jnp.exp(-((x - 1.8) ** 2 + (y + 0.2) ** 2) / 0.4))


def validate(p):
    require(p["steps"] >= 2, "steps", f"must be >= 2, got {p['steps']}")


def run(ctx, p):
    with jax.enable_x64(True):
        start = jnp.asarray(START, jnp.float64)
        paths = {label: [np.asarray(a) for a in trajectory(loss, start, spec, p["steps"])]
                 for label, spec in OPTIMIZERS.items()}
        xs, ys = np.meshgrid(np.linspace(-3.2, 3.2, p["grid"]),
                             np.linspace(-1.8, 1.8, p["grid"] * 9 // 16))
        surface = np.asarray(jax.vmap(jax.vmap(lambda a, b: loss(jnp.stack([a, b]))))(
            jnp.asarray(xs), jnp.asarray(ys)))
        path_losses = {k: np.asarray(jax.vmap(loss)(jnp.asarray(w))) for k, (w, _, _) in
                       paths.items()}
    claims = _claims(paths)
    _draw(ctx, xs, ys, surface, paths, path_losses)
    return claims


def _claims(paths):
    claims = []
    w, g, u = paths["SGD"]
    moving = g != 0
    against = np.mean(np.sign(u[moving]) == -np.sign(g[moving]))
    claims.append(Claim("sgd_against_gradient_sign",
                        "every SGD step moves each weight against the sign of its partial "
                        "derivative (fraction of steps × coordinates)", float(against), 1.0,
                        0.0, SOURCE))
    lr = OPTIMIZERS["SGD"].learning_rate
    claims.append(Claim("sgd_step_is_lr_g", "every SGD step is −lr·g (max relative error)",
                        float(np.max(np.abs(u / (-lr * g) - 1))), 0.0, 1e-12, SOURCE))
    spec = OPTIMIZERS["Adam"]
    _, g, u = paths["Adam"]
    expected = -spec.learning_rate * g[0] / (np.abs(g[0]) + spec.eps)
    claims.append(Claim("adam_first_step", "Adam's first step is lr·g/(|g|+ε) per coordinate "
                        "(max relative error)", float(np.max(np.abs(u[0] / expected - 1))),
                        0.0, 1e-12, SOURCE))
    spec = OPTIMIZERS["RMSProp (ρ=0.9)"]
    _, g, u = paths["RMSProp (ρ=0.9)"]
    expected = -spec.learning_rate * g[0] / np.sqrt((1 - spec.decay) * g[0] ** 2 + spec.eps)
    claims.append(Claim("rmsprop_first_step", "RMSProp's first step is lr·g/√((1−ρ)g²+ε) "
                        "per coordinate (max relative error)",
                        float(np.max(np.abs(u[0] / expected - 1))), 0.0, 1e-12, SOURCE))
    # the slopes at the start differ by a factor; Adam's step sizes do not
    _, g, u = paths["Adam"]
    slope_ratio = abs(g[0][1] / g[0][0])
    step_ratio = abs(u[0][1] / u[0][0])
    claims.append(Claim("adam_equal_first_steps",
                        f"Adam's first step has equal size in both coordinates although the "
                        f"slopes differ {slope_ratio:.1f}× (step-size ratio)",
                        float(step_ratio), 1.0, 1e-6, SOURCE))
    return claims


# the loss panel's log axis starts here: a path that reached the lowest loss (a difference
# of 0, or float64 round-off) is drawn on this floor instead of vanishing from a log axis
LOSS_FLOOR = 1e-9
# end markers, drawn after every path and largest first: the paths of SGD, momentum and
# Adam end within 3e-4 of each other, so concentric markers keep each end visible
END_MARKERS = (("o", 9), ("s", 6.5), ("^", 5), ("D", 3))


def _draw(ctx, xs, ys, surface, paths, path_losses):
    from matplotlib.lines import Line2D

    with plotting.style():
        fig, (ax, ax_loss) = plotting.figure(
            "double", 2.9, ncols=2, gridspec_kw={"width_ratios": [1.6, 1], "wspace": 0.32})
        levels = np.linspace(surface.min(), surface.max(), 24)
        ax.contourf(xs, ys, surface, levels, cmap="Greys", alpha=0.7)
        ax.contour(xs, ys, surface, levels, colors="0.45", linewidths=0.3)
        ax.grid(False)  # a map: the contours are its grid
        floor = min(v.min() for v in path_losses.values())
        handles = []
        for k, (label, (w, _, _)) in enumerate(paths.items()):
            color, ls = plotting.OKABE_ITO[k], plotting.LINESTYLES[k]
            marker, size = END_MARKERS[k]
            ax.plot(w[:, 0], w[:, 1], color=color, ls=ls, lw=1.3, zorder=3)
            ax.plot(w[-1, 0], w[-1, 1], marker, color=color, ms=size, mec="w", mew=0.6,
                    zorder=10 + k)
            ax_loss.plot(np.arange(len(w)),
                         np.maximum(path_losses[label] - floor, LOSS_FLOOR), color=color,
                         ls=ls, lw=1.2, label=label)
            handles.append(Line2D([], [], color=color, ls=ls, lw=1.3, marker=marker,
                                  ms=min(size, 5), mec="w", mew=0.4, label=f"{label}"))
        ax.plot(*START, "k*", ms=8, zorder=12)
        handles.append(Line2D([], [], color="k", ls="none", marker="*", ms=7, label="start"))
        ax.set_xlabel("$w_1$")
        ax.set_ylabel("$w_2$")
        ax.set_title("loss surface (darker = higher); paths from one start, marker = end",
                     fontsize=7)
        ax.legend(handles=handles, loc="lower left", fontsize=6, ncol=2)
        ax_loss.axhline(LOSS_FLOOR, color="0.4", ls=":", lw=0.8)
        ax_loss.text(0.02, LOSS_FLOOR * 1.6, "floor: ≤ 10⁻⁹",
                     fontsize=6, color="0.3", va="bottom",
                     transform=ax_loss.get_yaxis_transform())
        ax_loss.set_yscale("log")
        ax_loss.set_ylim(LOSS_FLOOR / 3, None)
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss − lowest loss reached by any path")
        ax_loss.set_title("loss along each path", fontsize=7)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
