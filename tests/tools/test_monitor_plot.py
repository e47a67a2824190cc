"""plot_monitor_heatmap: refuses what it cannot draw with one line, and keeps each colour
bar beside its panel."""

import io

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy.errors import ConfigError
from gradstudy.tools import monitor, monitor_dataset, plot_monitor_heatmap


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = jnp.tanh(nn.Dense(8)(x))
        return nn.Dense(2)(x)


@pytest.fixture(scope="module")
def monitored():
    model = _Tiny()
    x = jax.random.normal(jax.random.key(0), (4, 3))
    params = model.init(jax.random.key(1), x)
    tx = monitor(every=1, capacity=4, inner=optax.sgd(0.1))
    state = tx.init(params)
    for _ in range(3):
        grads = jax.grad(lambda p: jnp.mean(model.apply(p, x) ** 2))(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return monitor_dataset(state, params)


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_no_record_yet_is_a_one_line_config_error(monitored):
    """A monitor that has not recorded an update yet: its dataset has no step (here cut
    from a recorded one, as monitor_dataset returns it for such a state)."""
    empty = monitored.isel(step=slice(0, 0))
    with pytest.raises(ConfigError) as err:
        plot_monitor_heatmap(empty)
    message = _one_line(err)
    assert message.startswith("ds:") and "no record" in message


@pytest.mark.parametrize("bad", [None, np.zeros((3, 4)), "monitor_state"])
def test_not_a_monitor_dataset_is_a_one_line_config_error(monitored, bad):
    with pytest.raises(ConfigError) as err:
        plot_monitor_heatmap(bad)
    assert _one_line(err).startswith("ds:")
    with pytest.raises(ConfigError):
        plot_monitor_heatmap(monitored.drop_vars("update_ratio"))


def test_colour_bars_beside_their_panels(monitored):
    """Each colour bar starts within 0.15 in of its panel's right edge and spans the
    panel's height, as saved (the layout placed it past the panel's legend, 0.5 in away,
    at the 200 dpi of the saved PNG)."""
    fig = plot_monitor_heatmap(monitored, title="tiny")
    fig.savefig(io.BytesIO(), format="png", dpi=200)
    every = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    bars = [ax for ax in every if getattr(ax, "_colorbar", None) is not None]
    panels = [ax for ax in fig.axes if ax not in bars]
    assert len(bars) == 2
    width, height = fig.get_size_inches()
    for panel, bar in zip(panels, sorted(bars, key=lambda a: a.get_position().x0)):
        p, b = panel.get_position(), bar.get_position()
        assert 0 <= (b.x0 - p.x1) * width < 0.15
        assert abs(b.y0 - p.y0) * height < 0.02 and abs(b.y1 - p.y1) * height < 0.02


def test_a_state_with_no_update_yet_is_one_line_through_monitor_dataset():
    """The user's path: monitor_dataset of a freshly initialised state (it used to stop in
    numpy's reshape of zero rows), then the heatmap: one line saying there is no record."""
    model = _Tiny()
    x = jax.random.normal(jax.random.key(0), (4, 3))
    params = model.init(jax.random.key(1), x)
    state = monitor(every=1, capacity=4, inner=optax.sgd(0.1)).init(params)
    ds = monitor_dataset(state, params)
    assert ds.sizes["step"] == 0
    with pytest.raises(ConfigError) as err:
        plot_monitor_heatmap(ds)
    assert "no record" in _one_line(err)
