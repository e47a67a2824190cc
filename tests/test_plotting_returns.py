"""Every public plotting function returns its matplotlib Figure, open, with or without a
path (notebooks show the returned figure); with a path it also writes the PNG and PDF."""

import io

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import optax
import pytest
from matplotlib.figure import Figure

from gradstudy import plotting
from gradstudy.tools import (
    diagnose,
    monitor,
    monitor_dataset,
    plot_diagnosis,
    plot_monitor_heatmap,
)


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = jnp.tanh(nn.Dense(8)(x))
        return nn.Dense(2)(x)


def _loss(out, batch):
    return jnp.mean(out ** 2)


@pytest.fixture(scope="module")
def diagnosis():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    return diagnose(_Tiny(), x, _loss, seeds=2)


@pytest.fixture(scope="module")
def monitored():
    model = _Tiny()
    x = jax.random.normal(jax.random.key(0), (4, 3))
    params = model.init(jax.random.key(1), x)
    tx = monitor(every=1, capacity=4, inner=optax.sgd(0.1))
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: _loss(model.apply(p, x), x))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(3):
        params, state = step(params, state)
    return monitor_dataset(state, params)


def _renders(fig) -> bool:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue().startswith(b"\x89PNG")


def _check_open_and_unregistered(fig, before):
    assert isinstance(fig, Figure)
    assert fig.axes, "the returned figure has its axes"
    assert plt.get_fignums() == before, "the figure is not registered with pyplot (no leak)"
    assert _renders(fig), "the returned figure is still open and drawable"


@pytest.mark.parametrize("with_path", [False, True])
def test_plot_diagnosis_returns_its_figure(diagnosis, tmp_path, with_path):
    before = plt.get_fignums()
    path = tmp_path / "sub" / "flow.png" if with_path else None
    fig = plot_diagnosis(diagnosis, path, title="tiny")
    _check_open_and_unregistered(fig, before)
    assert fig.axes[0].get_title() == "tiny"
    if with_path:
        assert (tmp_path / "sub" / "flow.png").stat().st_size > 0
        assert (tmp_path / "sub" / "flow.pdf").stat().st_size > 0
    else:
        assert not any(tmp_path.iterdir()), "no path: nothing written"


@pytest.mark.parametrize("with_path", [False, True])
def test_plot_monitor_heatmap_returns_its_figure(monitored, tmp_path, with_path):
    before = plt.get_fignums()
    path = tmp_path / "heat.png" if with_path else None
    fig = plot_monitor_heatmap(monitored, path)
    _check_open_and_unregistered(fig, before)
    if with_path:
        assert (tmp_path / "heat.png").stat().st_size > 0
        assert (tmp_path / "heat.pdf").stat().st_size > 0
    else:
        assert not any(tmp_path.iterdir())


def test_plotting_figure_and_save_figure(tmp_path):
    fig, ax = plotting.figure("single")
    assert isinstance(fig, Figure) and ax.figure is fig
    paths = plotting.save_figure(fig, tmp_path / "a", "kept", close=False)
    assert [p.name for p in paths] == ["kept.pdf", "kept.png"]
    assert fig.number in plt.get_fignums(), "close=False keeps the figure open in pyplot"
    assert _renders(fig)
    plotting.save_figure(fig, tmp_path / "a", "closed")
    assert fig.number not in plt.get_fignums(), "the default closes it (the studies' loop)"


def test_plotting_leaves_the_backend_alone(tmp_path):
    """Drawing (not only importing) keeps the session's backend: a notebook stays inline."""
    backend = matplotlib.get_backend()
    fig, _ = plotting.figure()
    plotting.save_figure(fig, tmp_path, "b")
    assert matplotlib.get_backend() == backend


def test_plot_diagnosis_of_one_network_draws_no_band_and_keeps_its_legend_in_its_column(
        diagnosis):
    """One seed (a built NNX model, or fixed variables): no 10–90 % band or "(median)"
    labels, "1 seed" in the title, and the legend within the axes' width (it overflowed into
    the next panel when two columns held three entries), below the axes."""
    fig = plot_diagnosis(diagnosis.isel(seed=[0]))
    ax = fig.axes[0]
    assert ax.get_title().endswith("1 seed)")
    labels = ax.get_legend_handles_labels()[1]
    assert not any("10–90" in s or "median" in s for s in labels), labels
    assert not ax.collections, "no band drawn from one seed"
    fig.canvas.draw()
    legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert box.x0 <= legend.x0 and legend.x1 <= box.x1
    assert legend.y1 <= box.y0
    several = plot_diagnosis(diagnosis)  # two seeds: the band and its label are back
    assert any("10–90" in s for s in several.axes[0].get_legend_handles_labels()[1])
