"""``diagnose(..., variants=...)``: points that differ only in scalars share one compiled
program.  Each variant must equal a separate ``diagnose`` of the model built at that value
(the same seeds), the user's ``init_fn`` is traced once for all variants, and the CLI prints
one table per variant."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from test_cli import _main  # cli.main in-process: (exit code, stdout, stderr)

from gradstudy.errors import ConfigError
from gradstudy.tools import diagnose, diagnosis_table, plot_diagnosis


class Tanh(nn.Module):
    depth: int = 5
    width: int = 16
    sigma_w2: float = 1.0

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.variance_scaling(self.sigma_w2, "fan_in", "normal")
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width, kernel_init=init)(x))
        return nn.Dense(3, kernel_init=init)(x)


X = jax.random.normal(jax.random.PRNGKey(5), (8, 16))
VALUES = [0.25, 1.0, 3.0]


def _loss(y, x):
    return jnp.mean(y ** 2)


def _scaled_init(counter):
    def init_fn(key, sigma_w2):
        counter.append(1)  # one per trace, not per variant
        params = Tanh().init(key, X)
        return jax.tree_util.tree_map_with_path(
            lambda path, w: w * jnp.sqrt(sigma_w2) if path[-1].key == "kernel" else w, params)
    return init_fn


def test_each_variant_equals_its_own_model_and_shares_one_program():
    traces = []
    ds = diagnose(Tanh(), X, _loss, init_fn=_scaled_init(traces), seeds=3,
                  variants={"sigma_w2": VALUES})
    assert ds.backprop_norm.dims == ("variant", "seed", "module")
    assert list(ds.sigma_w2.values) == VALUES
    assert len(traces) == 2  # eval_shape once, the program once: not once per variant
    for k, value in enumerate(VALUES):
        alone = diagnose(Tanh(sigma_w2=value), X, _loss, seeds=3)
        for name in ("backprop_norm", "param_grad_norm", "out_q", "grad_norm", "loss"):
            np.testing.assert_allclose(ds[name].values[k], alone[name].values, rtol=2e-5,
                                       err_msg=f"{name}, sigma_w2={value}")
    # the variants are really different networks: ‖∂L/∂h‖ at the input grows with σ_w²
    first = np.median(ds.backprop_norm.values[:, :, 0] / ds.backprop_norm.values[:, :, -1],
                      axis=1)
    assert first[0] < first[1] < first[2]


def test_variants_table_and_figure(tmp_path):
    ds = diagnose(Tanh(), X, _loss, init_fn=_scaled_init([]), seeds=2,
                  variants={"sigma_w2": VALUES})
    text = diagnosis_table(ds)
    assert [line for line in text.splitlines() if line.startswith("variant")] == [
        "variant 0: sigma_w2=0.25", "variant 1: sigma_w2=1", "variant 2: sigma_w2=3"]
    plot_diagnosis(ds, tmp_path / "v.png")
    assert (tmp_path / "v.png").stat().st_size > 10_000


@pytest.mark.parametrize("kwargs, match", [
    ({"variants": {"s": [1.0]}}, r"^variants: need init_fn\(key, \*\*scalars\)"),
    ({"variants": {"s": [1.0, 2.0], "t": [1.0]}, "init_fn": lambda k, s, t: None},
     r"^variants: every list needs one value per variant; s has 2, t has 1$"),
    ({"variants": {"s": ["a"]}, "init_fn": lambda k, s: None},
     r"^variants: s must be a list of 1 to 4096 finite numbers"),
    ({"variants": {"s": [np.nan]}, "init_fn": lambda k, s: None},
     r"^variants: s must be a list of 1 to 4096 finite numbers"),
    ({"variants": {"seed": [1.0]}, "init_fn": lambda k, seed: None},
     r"^variants: names must be identifiers other than seed and variant"),
    ({"variants": {}, "init_fn": lambda k: None}, r"^variants: must be a non-empty dict"),
])
def test_bad_variants_are_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        diagnose(Tanh(), X, _loss, seeds=2, **kwargs)


def test_cli_prints_a_table_per_variant(tmp_path, capsys):
    code, out, err = _main(["diagnose", "examples.models:deep_tanh_gains", "--seeds", "2",
                            "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "variant 2: sigma_w2=2" in out
    with xr.open_dataset(tmp_path / "results/diagnose/custom/deep_tanh_gains/diagnose.nc") as ds:
        assert ds.sizes["variant"] == 3 and list(ds.sigma_w2.values) == [0.5, 1.0, 2.0]


class ScanOverTime(nn.Module):
    """A cell in a user-written nn.scan over time with broadcast parameters: measured as an
    average over its T calls (no per-step record), which the table must say."""

    @nn.compact
    def __call__(self, x):  # x: (batch, time, features)
        step = nn.scan(lambda cell, h, xt: (jnp.tanh(cell(h) + xt),) * 2,
                       variable_broadcast="params", split_rngs={"params": False},
                       in_axes=1, out_axes=1)
        h, _ = step(nn.Dense(x.shape[-1]), jnp.zeros_like(x[:, 0]), x)
        return nn.Dense(2)(h)


def test_scan_over_time_rows_are_labelled_as_averages():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 3))
    ds = diagnose(ScanOverTime(), x, _loss, seeds=2)
    assert "Dense_0" in [str(m) for m in ds.module.values]
    row = [str(m) for m in ds.module.values].index("Dense_0")
    assert np.all(ds.calls.values[:, row] == 6)
    text = diagnosis_table(ds)
    assert "rows are per-call averages: Dense_0 (6×)" in text
    # a model without repeated calls has no such line
    assert "per-call averages" not in diagnosis_table(diagnose(Tanh(), X, _loss, seeds=2))
