"""The diagnosis figure's layout: the legend outside the data, below the module names, and
no empty decades reserved for it (a reviewer's "large empty legend area")."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy.tools import diagnose, plot_diagnosis


class _Deep(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(6):
            x = jnp.tanh(nn.Dense(8, name=f"a_rather_long_layer_name_{_}")(x))
        return nn.Dense(2)(x)


def _loss(out, batch):
    return jnp.mean(out ** 2)


@pytest.fixture(scope="module")
def figure():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    ds = diagnose(_Deep(), x, _loss, seeds=3)
    fig = plot_diagnosis(ds)
    fig.canvas.draw()
    return fig, ds


def test_legend_below_the_axes_and_its_tick_labels(figure):
    fig, _ = figure
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0, "the legend covers no data"
    labels = ax.xaxis.get_tightbbox()
    assert legend.y1 <= labels.y0, "nor the rotated module names"


def test_no_empty_decades_reserved_below_the_data(figure):
    """The y range is matplotlib's own margin around the drawn values (bands included):
    the lower limit lies within a factor 10 of the smallest value drawn."""
    fig, ds = figure
    ax = fig.axes[0]
    values = np.concatenate([ds[n].values.ravel() for n in ("backprop_norm",
                                                             "param_grad_norm")])
    smallest = np.min(values[np.isfinite(values) & (values > 0)])
    flag = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
    smallest = min([smallest, *flag])
    assert ax.get_ylim()[0] > smallest / 10
