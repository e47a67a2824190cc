"""Exploding gradients in training, and gradient clipping.

(a) Full-batch gradient descent against the quadratic model.  Expectation: on the quadratic
model of the loss at init, a step η multiplies the component along the top Hessian
eigenvector by (1 − ηλ_max), so the loss decreases monotonically for η < 2/λ_max and the
top component grows for η > 2/λ_max (by ≥ 3× per step from η = 4/λ_max, where the loss
must rise at once).  A network is not its quadratic model: above 2/λ_max it is expected to
"catapult" — the curvature falls, training goes on (Lewkowycz et al. 2020: up to η ≈
4/λ_max and beyond for ReLU nets) — and to diverge only well above.  λ_max is measured
per network by power iteration on Hessian-vector products; learning rates are multiples c
of each network's own 2/λ_max.

(b) A deep ReLU MLP initialised too large (He × σ_w = 1.4: χ = 1.96 per layer) trained with
SGD on MNIST-1D: expected to diverge (non-finite loss) in most runs without clipping, in the
first steps; clipping by value, by global norm or adaptively (unit-wise, not the output
layer) bounds every step, so no run is expected to diverge at the tightest threshold.
Recorded: the fraction of runs diverged and when, the fraction of steps where clipping
fired, and the gradient norm before clipping over time.
"""

import warnings

import numpy as np

from gradstudy import MLPSpec, plotting
from gradstudy.data import mnist1d, teacher_student
from gradstudy.engine import OptimizerSpec, Training, initial_curvature
from gradstudy.studies import Claim

NAME = "exploding_and_clipping"
DESCRIPTION = "GD vs 2/λ_max of the Hessian; exploding ReLU MLP without and with clipping"
SCALES = {
    "smoke": {"gd_seeds": 4, "gd_steps": 60, "multiples": [0.5, 0.9, 1.5, 2.0, 30.0],
              "seeds": 4, "steps": 100, "gain": 1.4, "lr": 0.05,
              "value_thresholds": [1.0], "norm_thresholds": [10.0], "agc_thresholds": [0.1]},
    "paper": {"gd_seeds": 16, "gd_steps": 200,
              "multiples": [0.5, 0.9, 1.1, 1.5, 2.0, 4.0, 10.0, 30.0],
              "seeds": 16, "steps": 300, "gain": 1.4, "lr": 0.05,
              "value_thresholds": [0.1, 1.0, 10.0], "norm_thresholds": [1.0, 10.0, 100.0],
              "agc_thresholds": [0.01, 0.1, 1.0]},
}
LIMITS = {"gd_seeds": (2, 256), "gd_steps": (20, 100_000),
          "multiples": {"range": (1e-3, 1e3), "len": (2, 16), "distinct": True,
                        "increasing": True},
          "seeds": (2, 256), "steps": (20, 100_000), "gain": (0.1, 10.0), "lr": (1e-5, 10.0),
          **{f"{m}_thresholds": {"range": (1e-4, 1e4), "len": (1, 8), "distinct": True}
             for m in ("value", "norm", "agc")}}
METHODS = {"value": "by value", "global_norm": "by global norm", "adaptive": "adaptive (AGC)"}
THRESHOLD_PARAM = {"value": "value_thresholds", "global_norm": "norm_thresholds",
                   "adaptive": "agc_thresholds"}
EARLY = 10  # steps over which the quadratic model's (non-)monotone loss is checked
LAMBDA_ITERATIONS = 300  # Hessian-vector products of the power iteration for λ_max
SOURCE_GD = ("quadratic model: LeCun et al. 1993; catapult: Lewkowycz et al. 2020; "
             "edge of stability: Cohen et al. 2021")
SOURCE_CLIP = "Pascanu et al. 2013 (clipping); Brock et al. 2021 (AGC)"


def _thresholds(p, method) -> list[float]:
    return sorted(float(t) for t in p[THRESHOLD_PARAM[method]])


def run(ctx, p):
    gd, lam = _gradient_descent(ctx, p)
    clipped = _clipping_runs(ctx, p)
    claims = _gd_claims(p, gd) + _clip_claims(p, clipped)
    # the numbers the paper quotes besides the claims (summary.json, figures/numbers.tex)
    measured = ctx.extra.setdefault("measured", {})
    measured.update(_gd_measured(p, gd, lam))
    measured.update(_clip_measured(clipped))
    _draw(ctx, p, gd, lam, clipped)
    return claims


# ----------------------------------------------------------------- (a) GD against 2/λ_max
GD_SPEC = MLPSpec(width=64, depth=4, in_dim=16, out_dim=1, activation="relu",
                  init="he_normal")


def _gradient_descent(ctx, p):
    data = teacher_student(features=16, outputs=1, train=256, test=64, seed=1)
    base = Training(points=(GD_SPEC,), optimizer=OptimizerSpec("sgd", 0.1),
                    steps=p["gd_steps"], seeds=p["gd_seeds"], batch_size=None, loss="mse",
                    eval_every=p["gd_steps"], record_every=p["gd_steps"])
    curvature = initial_curvature(base, data, iterations=LAMBDA_ITERATIONS,
                                  cache_dir=ctx.results_dir, name="gd-curvature")
    lam = np.asarray(curvature.lambda_max.values, float)
    # the power iteration's worst relative residual ‖Hv − λv‖/λ, written to the summary
    ctx.extra.setdefault("measured", {})["lambda_max_relative_residual"] = float(
        np.max(np.asarray(curvature.residual.values) / lam))
    training = Training(points=(GD_SPEC,), optimizer=OptimizerSpec("sgd", 0.1),
                        steps=p["gd_steps"], seeds=p["gd_seeds"], batch_size=None,
                        loss="mse", learning_rates=tuple(2.0 * c for c in p["multiples"]),
                        seed_lr_scale=tuple(1.0 / lam), eval_every=p["gd_steps"],
                        record_every=p["gd_steps"])
    return ctx.train(training, data, tag="gd"), lam


def _list(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _monotone(ds):
    """(multiple, seed): whether the loss decreased at each of the first EARLY steps."""
    loss = ds.loss.isel(point=0).values  # (multiple, seed, step)
    with np.errstate(invalid="ignore"):
        steps = np.diff(loss[:, :, :EARLY + 1], axis=-1)
    return np.all(steps < 0, axis=-1)


def _gd_measured(p, ds, lam) -> dict:
    """λ_max's range over the networks, and per multiple c (keyed ``c1.1``, ``c4``, …) the
    number of runs whose loss decreased at each of the first EARLY steps and the number
    that diverged (of ``gd_runs`` each)."""
    monotone = _monotone(ds)
    diverged = ds.diverged_at.isel(point=0).values >= 0  # (multiple, seed)
    keys = [f"c{m:g}" for m in p["multiples"]]
    return {"lambda_max_min": float(np.min(lam)), "lambda_max_max": float(np.max(lam)),
            "gd_runs": int(diverged.shape[1]),
            "gd_monotone_runs": {k: int(n) for k, n in zip(keys, monotone.sum(axis=1))},
            "gd_diverged_runs": {k: int(n) for k, n in zip(keys, diverged.sum(axis=1))}}


def _gd_claims(p, ds):
    c = np.asarray(p["multiples"])
    monotone = _monotone(ds)  # (multiple, seed)
    diverged = ds.diverged_at.isel(point=0).values >= 0
    below, twice, catapult = c < 1, c >= 2, (c > 1) & (c <= 2)
    first = [f"{m:g}" for m, d in zip(c, diverged) if d.any()]
    first_note = f"; the first multiple with a diverged run is {first[0]}" if first else ""
    claims = []
    if below.any():  # (a --set of multiples may leave a group empty: no claim on it)
        claims += [
            Claim("gd_monotone_below", f"η < 2/λ_max (c = {_list(c[below])}): the loss "
                  f"decreases at each of the first {EARLY} steps (fraction of runs)",
                  float(monotone[below].mean()), 1.0, 0.0, SOURCE_GD),
            Claim("gd_no_divergence_below", "η < 2/λ_max: no run diverges (fraction diverged)",
                  float(diverged[below].mean()), 0.0, 0.0, SOURCE_GD)]
    if twice.any():
        claims.append(Claim(
            "gd_rises_at_twice", f"η ≥ 2·(2/λ_max) (c = {_list(c[twice])}): the top-curvature "
            f"component grows by |1 − 2c| ≥ 3 per step, so the loss rises within the first "
            f"{EARLY} steps (fraction of runs)", float((~monotone[twice]).mean()), 1.0, 0.0,
            SOURCE_GD))
    if catapult.any():
        claims.append(Claim(
            "gd_catapult_no_divergence", f"2/λ_max < η ≤ 4/λ_max (c = {_list(c[catapult])}): "
            "no run diverges — the curvature falls instead (catapult phase; fraction "
            "diverged)", float(diverged[catapult].mean()), 0.0, 0.0, SOURCE_GD))
    if c[-1] >= 10:
        claims.append(Claim(
            "gd_diverges_far_above",
            f"η = {c[-1]:g} × 2/λ_max: every run diverges (fraction diverged){first_note}",
            float(diverged[-1].mean()), 1.0, 0.0, SOURCE_GD))
    return claims


# -------------------------------------------------------------------- (b) clipping
def _clip_spec(p):
    return MLPSpec(width=64, depth=10, in_dim=40, out_dim=10, activation="relu",
                   init="he_normal", sigma_w=p["gain"])


def _clipping_runs(ctx, p):
    """Every clipping method and threshold (and none) on the same network: one training,
    one compiled program (the optimizers are per-point, selected per run)."""
    data = mnist1d(ctx.results_dir.parent / "data")
    settings = [("none", None)] + [(m, t) for m in METHODS for t in _thresholds(p, m)]
    optimizers = tuple(OptimizerSpec("sgd", p["lr"]) if method == "none" else
                       OptimizerSpec("sgd", p["lr"], clip=method, clip_threshold=threshold)
                       for method, threshold in settings)
    labels = tuple(_setting_key(method, threshold) for method, threshold in settings)
    ds = ctx.train(Training(points=(_clip_spec(p),) * len(settings), optimizer=optimizers,
                            labels=labels, steps=p["steps"], seeds=p["seeds"], batch_size=64,
                            eval_every=p["steps"], record_every=max(1, p["steps"] // 10)),
                   data, tag="clip")
    return {setting: ds.isel(point=[k]) for k, setting in enumerate(settings)}


def _diverged(ds):
    return ds.diverged_at.values.ravel()


def _setting_key(method, threshold) -> str:
    """A clipping setting's key in the summary: ``none``, ``value-0.1``, …."""
    return method if threshold is None else f"{method}-{threshold:g}"


def _clip_measured(runs) -> dict:
    """Per clipping setting (:func:`_setting_key`): the runs diverged (of ``clip_runs``) and
    the fraction of steps, over all its runs and steps, at which clipping fired; and over
    every clipped setting together, the runs (``clipped_runs``) and those diverged
    (``clipped_diverged_runs``)."""
    out = {"clip_runs": int(_diverged(runs[("none", None)]).size),
           "clip_diverged_runs": {}, "clip_fired": {}, "clipped_runs": 0,
           "clipped_diverged_runs": 0}
    for (method, threshold), ds in runs.items():
        key = _setting_key(method, threshold)
        diverged = int((_diverged(ds) >= 0).sum())
        out["clip_diverged_runs"][key] = diverged
        if method != "none":
            out["clip_fired"][key] = float(np.mean(ds.clip_fired.values))
            out["clipped_runs"] += int(_diverged(ds).size)
            out["clipped_diverged_runs"] += diverged
    return out


def _clip_claims(p, runs):
    none = _diverged(runs[("none", None)])
    claims = [
        Claim("explodes_without_clipping", f"He × σ_w = {p['gain']:g}, SGD lr {p['lr']:g}, "
              "no clipping: more than half of the runs diverge (fraction)",
              float((none >= 0).mean()), 0.5, 0.0, SOURCE_CLIP, kind="greater"),
        Claim("diverges_early", "runs that diverge without clipping do so within the first "
              "20 steps (median step of divergence)",
              float(np.median(none[none >= 0])) if (none >= 0).any() else float("nan"),
              20.0, 0.0, SOURCE_CLIP, kind="less"),
    ]
    for method, label in METHODS.items():
        tight = min(_thresholds(p, method))
        claims.append(Claim(
            f"no_divergence_{method}", f"clipping {label} at {tight:g}: no run diverges "
            "(fraction)", float((_diverged(runs[(method, tight)]) >= 0).mean()), 0.0, 0.0,
            SOURCE_CLIP))
    return claims


# -------------------------------------------------------------------------- figure
# one distinct hue per multiple c (Okabe–Ito without its yellow, then greys), and the dash
# pattern cycling with the rank: neighbouring multiples differ in hue and in dash (shades of
# one red for c = 1.1, 1.5, 2 could not be told apart)
MULTIPLE_COLORS = ["#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "0.45",
                   "#000000"]


def _multiple_styles(n):
    """(colour, linestyle) of the n multiples, in increasing order of c."""
    colors = [MULTIPLE_COLORS[k % len(MULTIPLE_COLORS)] for k in range(n)]
    return [(col, plotting.LINESTYLES[k % len(plotting.LINESTYLES)])
            for k, col in enumerate(colors)]


def _mark_diverged(ax, steps, color, label=None):
    """✕ at the top edge of ``ax`` at each step where a run diverged (the value there is not
    finite, so no data coordinate can hold it)."""
    steps = np.unique(steps)
    ax.scatter(steps, np.ones(steps.size), marker="x", s=18, linewidths=1.1, color=color,
               transform=ax.get_xaxis_transform(), clip_on=False, zorder=6, label=label)


def _draw(ctx, p, gd, lam, runs):
    c = np.asarray(p["multiples"])
    with plotting.style():
        fig, axes = plotting.figure("double", 5.4, nrows=2, ncols=2,
                                    gridspec_kw={"hspace": 0.6, "wspace": 0.35})
        ax = axes[0, 0]
        loss = gd.loss.isel(point=0).values  # (multiple, seed, step)
        for k, (mult, (color, ls)) in enumerate(zip(c, _multiple_styles(len(c)))):
            with warnings.catch_warnings():  # all-NaN steps: every run has diverged
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(loss[k] / loss[k][:, :1], axis=0)
            div = gd.diverged_at.isel(point=0, learning_rate=k).values
            label = f"c = {mult:g}" + (f" (✕ {np.sum(div >= 0)}/{div.size})"
                                       if (div >= 0).any() else "")
            ax.plot(np.arange(med.size), med, color=color, ls=ls, label=label)
            if (div >= 0).any():
                _mark_diverged(ax, [np.median(div[div >= 0])], color)
        ax.set_yscale("log")
        low = min(np.nanmin(ln.get_ydata()) for ln in ax.lines if np.isfinite(ln.get_ydata()).any())
        ax.set_ylim(10 ** np.floor(np.log10(low)), 3e3)  # from the data up; ✕ above
        ax.set_xlabel("full-batch GD step")
        ax.set_ylabel("loss / initial loss (median)")
        ax.legend(fontsize=5.5, ncol=2, loc="upper right", handlelength=2.6)

        ax = axes[0, 1]
        none = (_diverged(runs[("none", None)]) >= 0).mean()
        for k, (method, label) in enumerate(METHODS.items()):
            th = np.asarray(_thresholds(p, method))
            frac = [(_diverged(runs[(method, t)]) >= 0).mean() for t in th]
            fired = [runs[(method, t)].clip_fired.values.mean() for t in th]
            ax.plot(th, frac, "o-", color=plotting.OKABE_ITO[k], label=f"{label}: diverged")
            ax.plot(th, fired, "s:", color=plotting.OKABE_ITO[k], ms=3,
                    label=f"{label}: steps clipped")
        ax.axhline(none, color="0.3", ls="--", lw=0.9, label="no clipping: diverged")
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.75)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("clipping threshold (each method its own unit)")
        ax.set_ylabel("fraction")
        ax.legend(fontsize=5, loc="upper center", ncol=2)

        ax = axes[1, 0]
        top = 0.0
        for k, (key, ds) in enumerate([(("none", None), runs[("none", None)])] + [
                ((m, min(_thresholds(p, m))), runs[(m, min(_thresholds(p, m)))])
                for m in METHODS]):
            norm = ds.grad_norm.isel(point=0, learning_rate=0).values  # (seed, step)
            # a median of the few runs left after most diverged would look like the typical
            # run: drawn only where at least half of the runs are finite
            norm = np.where(np.mean(np.isfinite(norm), axis=0) >= 0.5, norm, np.nan)
            label = "no clipping" if key[0] == "none" else f"{METHODS[key[0]]} {key[1]:g}"
            color = "0.3" if key[0] == "none" else plotting.OKABE_ITO[k - 1]
            line = plotting.median_band(ax, np.arange(norm.shape[1]), norm, color, label=label)
            top = max(top, np.nanmax(line.get_ydata()))
            div = ds.diverged_at.values.ravel()
            if (div >= 0).any():
                d = div[div >= 0]
                _mark_diverged(ax, d, color, label=f"{label}: run diverged ({d.size} of "
                               f"{div.size}, steps {d.min()}–{d.max()})")
        ax.set_yscale("log")
        # the axis holds the medians: the upper band of the runs about to diverge (up to
        # 1e16, one step wide) would squeeze them into the bottom; ✕ marks the divergence
        ax.set_ylim(None, 10 ** np.ceil(np.log10(top) + 0.5))
        ax.set_xlabel("SGD step")
        ax.set_ylabel("‖g‖ (median, 10–90 %)")
        ax.legend(fontsize=5.5)

        ax = axes[1, 1]
        for k, method in enumerate(METHODS):
            tight = min(_thresholds(p, method))
            ds = runs[(method, tight)]
            loss = ds.loss.isel(point=0, learning_rate=0).values
            plotting.median_band(ax, np.arange(loss.shape[1]), loss, plotting.OKABE_ITO[k],
                                 label=f"{METHODS[method]} {tight:g}")
        ax.axhline(np.log(10), color="0.4", ls=":", lw=0.9, label="ln 10")
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("training loss (median, 10–90 %)")
        ax.legend(fontsize=5.5)
        plotting.panel_titles(axes, [
            rf"GD, η = c·2/$\lambda_{{\max}}$ ($\lambda_{{\max}}$ {np.min(lam):.0f}–"
            f"{np.max(lam):.0f}); ✕ diverged",
            f"{p['seeds']} seeds: runs diverged (clipped: all 0), steps clipped",
            "‖g‖ before clipping (≥ half finite); ✕ diverged",
            "with clipping (tightest), the same nets train"], fontsize=7)
        plotting.save_figure(fig, ctx.figures_dir, NAME)
