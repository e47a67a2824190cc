"""The figures of six studies, read as a reviewer would (issue 16): each study's drawing
function on small synthetic data (no cached results needed), checked for what a reader
must be able to see — unique panel letters, no grid over heatmaps, mathtext labels, the
expectations the claims test drawn, divergence marked, the claim's cells marked."""

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest
import xarray as xr
from matplotlib.colors import to_rgb

from gradstudy import plotting, theory

ROOT = Path(__file__).resolve().parent.parent


def _study(name):
    spec = importlib.util.spec_from_file_location(f"_figtest_{name}",
                                                  ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Figures the studies save, kept open (save_figure replaced); closed afterwards."""
    figs = []
    monkeypatch.setattr(plotting, "save_figure",
                        lambda fig, directory, name, close=True: figs.append(fig))
    yield figs, SimpleNamespace(figures_dir=tmp_path, results_dir=tmp_path / "r", extra={})
    for fig in figs:
        plt.close(fig)


def _grid_visible(ax) -> bool:
    return any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())


def _all_text(fig) -> str:
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(texts)


# ------------------------------------------------------------------------ plotting helpers
def test_heatmap_switches_the_grid_off_and_panel_titles_are_unique_letters():
    with plotting.style():
        fig, axes = plotting.figure("double", ncols=3)
        assert _grid_visible(axes[0]), "the paper style draws a grid"
        mesh = plotting.heatmap(axes[0], [0, 1, 2], [0, 1], np.ones((1, 2)))
        assert isinstance(mesh, matplotlib.collections.QuadMesh)
        assert not _grid_visible(axes[0]), "no grid lines over the cells"
        plotting.panel_titles(axes, ["x", "y", "z"], fontsize=7)
        assert [ax.get_title() for ax in axes] == ["(a) x", "(b) y", "(c) z"]
        with pytest.raises(ValueError, match="3 axes but 2 titles"):
            plotting.panel_titles(axes, ["x", "y"])
    plt.close(fig)


# -------------------------------------------------------------------------- loss_landscape
def test_loss_landscape_titles_clear_the_labels_and_every_end_marker_shows(drawn):
    figs, ctx = drawn
    study = _study("loss_landscape")
    study.run(ctx, {"steps": 12, "grid": 24})
    (fig,) = figs
    ax, ax_loss = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = ax.title.get_window_extent(renderer)
    ylabel = ax_loss.yaxis.label.get_window_extent(renderer)
    assert not title.overlaps(ylabel), "the left title runs into the right panel's y-label"
    text = _all_text(fig)
    assert "(+10⁻⁹)" not in text and "floor" in text, "the log floor is explained"
    # every end marker is drawn above every path, the last optimizer (Adam) on top, each
    # with its own marker shape
    paths = [line for line in ax.lines if len(line.get_xdata()) > 1]
    ends = [line for line in ax.lines if len(line.get_xdata()) == 1
            and line.get_marker() != "*"]
    assert len(ends) == len(study.OPTIMIZERS)
    assert min(e.get_zorder() for e in ends) > max(p.get_zorder() for p in paths)
    assert ends[-1].get_zorder() == max(e.get_zorder() for e in ends)
    assert len({e.get_marker() for e in ends}) == len(ends)
    assert not _grid_visible(ax), "no grid over the contour map"


# ------------------------------------------------------------------- vanishing_symptoms
def _training_ds(labels, seeds, steps, layers, records=3, rng=None, **variables):
    rng = rng or np.random.default_rng(0)
    shape_rec = (len(labels), 1, seeds, records, layers)
    data = {"loss": (("point", "learning_rate", "seed", "step"),
                     2.0 + rng.random((len(labels), 1, seeds, steps)))}
    for name in ("layer_update_ratio", "layer_update_norm", "layer_grad_norm"):
        data[name] = (("point", "learning_rate", "seed", "record", "layer"),
                      variables.get(name, 10.0 ** rng.uniform(-8, -1, shape_rec)))
    return xr.Dataset(data, coords={"point": list(labels),
                                    "record_step": ("record", np.arange(records) * 10)})


def test_vanishing_symptoms_heatmaps_have_no_grid_and_a_mathtext_colour_bar(drawn):
    figs, ctx = drawn
    study = _study("vanishing_symptoms")
    p = {"depth": 4, "steps": 30}
    ds = _training_ds(tuple(study.NETWORKS), seeds=2, steps=30, layers=p["depth"] + 1)
    study._draw(ctx, p, ds)
    (fig,) = figs
    heatmaps = [ax for ax in fig.axes[1:3]]
    assert all(ax.collections for ax in heatmaps)
    assert not any(_grid_visible(ax) for ax in heatmaps)
    colorbar = fig.axes[-1].get_ylabel()
    assert "ΔW_l" not in colorbar and r"\Delta W_l" in colorbar and "$" in colorbar


# --------------------------------------------------------------------------- optimizers
def _optax_first_step_ratio(tx, grad_norm, weight_norm, entries):
    """‖ΔW‖/‖W‖ of optax's own first step on a layer whose N entries all have size
    ‖g‖/√N (random signs): the independent reference for the drawn expectation."""
    a = grad_norm / math.sqrt(entries)
    signs = jnp.where(jax.random.bernoulli(jax.random.key(int(entries)), shape=(entries,)),
                      1.0, -1.0)
    g = jnp.asarray(a * signs, jnp.float64)
    params = jnp.zeros(entries, jnp.float64)
    updates, _ = tx.update(g, tx.init(params), params)
    return float(jnp.linalg.norm(updates)) / weight_norm


def test_optimizers_draws_the_first_step_the_claims_test(drawn):
    figs, ctx = drawn
    study = _study("optimizers")
    p = {"width": 8, "shallow": 4, "deep": 6, "steps": 40}
    rng = np.random.default_rng(1)
    runs, expected = {}, {}
    for depth in (p["shallow"], p["deep"]):
        layers = depth + 1
        dims = [40] + [p["width"]] * depth + [10]
        entries = [dims[k] * dims[k + 1] for k in range(layers)]
        # gradient norms spanning both regimes: entries far below and far above ε
        grad = 10.0 ** np.linspace(-14, 0, layers)[None, :] * rng.uniform(0.5, 2, (2, layers))
        weight = rng.uniform(1, 3, (2, layers))
        for label in study.OPTIMIZERS:
            spec = study.OPTIMIZERS[label]
            update = rng.uniform(0.1, 1, (2, layers))  # only its ratio to W matters
            ds = _training_ds((label,), seeds=2, steps=40, layers=layers, records=1, rng=rng,
                              layer_grad_norm=grad[None, None, :, None, :],
                              layer_update_norm=update[None, None, :, None, :],
                              layer_update_ratio=(update / weight)[None, None, :, None, :])
            runs[(depth, label)] = ds
            if label in ("Adam", "RMSProp"):
                tx = (optax.adam(spec.learning_rate, eps=spec.eps) if label == "Adam" else
                      optax.rmsprop(spec.learning_rate, decay=spec.decay, eps=spec.eps))
                with jax.enable_x64(True):
                    per_seed = [[_optax_first_step_ratio(tx, grad[s, k], weight[s, k],
                                                         entries[k])
                                 for k in range(layers)] for s in range(2)]
                expected[(depth, label)] = np.median(per_seed, axis=0)
    study._draw(ctx, p, runs)
    (fig,) = figs
    for ax, depth in zip(fig.axes[:2], (p["shallow"], p["deep"])):
        theory_lines = [line for line in ax.lines if line.get_color() == "k"]
        assert len(theory_lines) == 2, "one expectation each for RMSProp and Adam"
        drawn_y = [np.asarray(line.get_ydata()) for line in theory_lines]
        for label in ("RMSProp", "Adam"):
            assert any(np.allclose(y, expected[(depth, label)], rtol=1e-5) for y in drawn_y), \
                (label, depth)
    labels = fig.legends[0].get_texts()
    assert any("theory" in t.get_text() for t in labels)
    assert "ΔW_l" not in fig.axes[0].get_ylabel() and "$" in fig.axes[0].get_ylabel()


# ---------------------------------------------------------------- exploding_and_clipping
def test_exploding_and_clipping_letters_colours_and_a_data_bound_axis(drawn):
    figs, ctx = drawn
    study = _study("exploding_and_clipping")
    p = dict(study.SCALES["smoke"], seeds=4, gd_seeds=4, steps=20, gd_steps=20,
             multiples=[0.5, 0.9, 1.1, 1.5, 2.0, 4.0, 10.0, 30.0])
    rng = np.random.default_rng(2)
    c = p["multiples"]
    loss = np.exp(-np.arange(20) / 10.0)[None, None, :] * rng.uniform(1, 2, (len(c), 4, 1))
    diverged = np.full((len(c), 4), -1)
    diverged[-2:] = 3
    loss[-2:, :, 3:] = np.nan
    gd = xr.Dataset({"loss": (("point", "learning_rate", "seed", "step"), loss[None]),
                     "diverged_at": (("point", "learning_rate", "seed"), diverged[None])})
    runs = {}
    settings = [("none", None)] + [(m, t) for m in study.METHODS
                                   for t in study._thresholds(p, m)]
    for method, threshold in settings:
        norm = 10 ** rng.uniform(0, 2, (1, 1, 4, 20))
        div = np.full((1, 1, 4), -1)
        if method == "none":  # a run blows up to 1e14 before it diverges, the others later
            norm[..., 2] = [1e3, 1e4, 1e5, 1e14]
            norm[..., 3:] = np.nan
            div[:] = 3
        runs[(method, threshold)] = xr.Dataset({
            "grad_norm": (("point", "learning_rate", "seed", "step"), norm),
            "loss": (("point", "learning_rate", "seed", "step"), 2 + rng.random((1, 1, 4, 20))),
            "clip_fired": (("point", "learning_rate", "seed", "step"),
                           rng.random((1, 1, 4, 20)) > 0.5),
            "diverged_at": (("point", "learning_rate", "seed"), div)})
    study._draw(ctx, p, gd, np.array([50.0, 200.0]), runs)
    (fig,) = figs
    titles = [ax.get_title() for ax in fig.axes]
    assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)"]
    # panel (a): neighbouring multiples differ clearly in colour (RGB distance) or dash
    lines = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("c = ")]
    assert len(lines) == len(c)
    for a, b in zip(lines, lines[1:]):
        distance = np.linalg.norm(np.subtract(to_rgb(a.get_color()), to_rgb(b.get_color())))
        assert distance > 0.25 and a.get_linestyle() != b.get_linestyle(), (a, b)
    # panel (c): the axis ends within a decade of the largest median drawn, not at the
    # 1e14 of a run about to diverge; the divergence is marked at the top edge
    ax = fig.axes[2]
    medians = np.concatenate([ln.get_ydata() for ln in ax.lines])
    top = np.nanmax(medians)
    assert ax.get_ylim()[1] <= 10 * 10 ** np.ceil(np.log10(top)), (ax.get_ylim(), top)
    marks = [coll for coll in ax.collections if "diverged" in str(coll.get_label())]
    assert marks, "divergence marked, with a legend entry"
    assert np.allclose(marks[0].get_offsets()[:, 1], 1.0), "at the top edge (axes units)"


# --------------------------------------------------------------------------- fixes_table
def test_fixes_table_shows_explosion_at_init_on_a_log_axis(drawn):
    figs, ctx = drawn
    study = _study("fixes_table")
    p = {"fixes": ["He"], "seeds": 2, "steps": 10}
    rows = {}
    for setting, grad in (("vanishing", 0.9), ("exploding", 242.0)):
        for k, label in enumerate(study._rows(p)):
            rows[(setting, label)] = {"ratio": -0.1 if setting == "exploding" else -11.0,
                                      "grad_init": grad if label == "baseline" else 4.1,
                                      "loss": 1.0, "accuracy": 0.3, "diverged": 0.0,
                                      "seeds": 2}
    study._draw(ctx, p, rows)
    (fig,) = figs
    logs = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert len(logs) == 1, "the init gradient norm on a log axis"
    xs = np.concatenate([ln.get_xdata() for ln in logs[0].lines])
    assert 242.0 in xs and 4.1 in xs, "the exploding baseline's ‖∇W‖ at init is drawn"
    lo, hi = logs[0].get_xlim()
    assert lo < 4.1 and 242.0 < hi


def test_fixes_table_summary_takes_the_init_gradient_norm_at_step_0():
    study = _study("fixes_table")
    rng = np.random.default_rng(3)
    grad_norm = rng.uniform(1, 100, (1, 1, 3, 5))
    ds = xr.Dataset({
        "layer_grad_norm": (("point", "learning_rate", "seed", "record", "layer"),
                            rng.uniform(1, 2, (1, 1, 3, 1, 5))),
        "grad_norm": (("point", "learning_rate", "seed", "step"), grad_norm),
        "diverged_at": (("point", "learning_rate", "seed"), np.full((1, 1, 3), -1)),
        "train_loss": (("point", "learning_rate", "seed", "eval_step"), np.ones((1, 1, 3, 2))),
        "test_accuracy": (("point", "learning_rate", "seed", "eval_step"),
                          np.ones((1, 1, 3, 2)))})
    row = study._summarise(ds, depth=4)
    assert row["grad_init"] == pytest.approx(sorted(grad_norm[0, 0, :, 0])[1], rel=1e-12)


# -------------------------------------------------------------------------- trainability
def test_trainability_marks_the_claims_cells_and_names_the_critical_line(drawn):
    figs, ctx = drawn
    study = _study("trainability")
    p = {"width": 8, "depths": [2, 8, 64], "sigma_w2": [0.25, 1.0, 1.76, 4.0], "steps": 10}
    s2w = np.asarray(p["sigma_w2"])
    accuracy = np.array([[0.3, 0.3, 0.1], [0.3, 0.3, 0.35], [0.4, 0.4, 0.4],
                         [0.3, 0.3, 0.1]])  # (σ_w², depth)
    with jax.enable_x64(True):
        xi = np.asarray(theory.mean_field(jnp.tanh, jnp.asarray(s2w), study.SIGMA_B2).xi_c)
    study._draw(ctx, p, s2w, accuracy, np.zeros_like(accuracy, bool), xi)
    (fig,) = figs
    ax = fig.axes[0]
    assert not _grid_visible(ax)
    # independently: the cells deeper than 6ξ_c, and those of them that trained
    deep = np.asarray(p["depths"])[None, :] > 6 * xi[:, None]
    trained = deep & (accuracy > study.CHANCE + study.MARGIN)
    assert deep.sum() >= 2 and 1 <= trained.sum() < deep.sum(), "the test covers both kinds"
    hatched = [r for r in ax.patches if r.get_hatch()]
    outlined = [r for r in ax.patches if not r.get_hatch()]
    assert len(hatched) == deep.sum() and len(outlined) == trained.sum()
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "critical" in legend and "deep_untrainable" in legend
    assert f"{int(deep.sum())} cells" in legend
