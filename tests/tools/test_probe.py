"""The generic probe core (gradstudy.tools) and diagnose, against independent references:
the MLP fast path, explicit additive perturbations differentiated with ``jax.grad`` (checked
by finite differences in float64), an unrolled copy of a scanned stack, flax's own
``capture_intermediates`` and a per-seed Python loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gradstudy import MLPSpec, gradient_norms, sample_params
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import MLP
from gradstudy.nn import LOSS_FUNCTIONS
from gradstudy.tools import diagnose, diagnosis_summary, diagnosis_table, probe


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _mse(out, batch):
    return 0.5 * jnp.mean(jnp.sum((out - batch["t"]) ** 2, axis=-1))


@pytest.mark.parametrize("activation,norm", [("tanh", "none"), ("relu", "none")])
def test_generic_core_equals_mlp_fast_path(activation, norm):
    """Same network, same loss: ‖∂L/∂h_l‖ and ‖∂L/∂W_l‖ of every layer agree with the
    nested-depth engine (which never forms ∂L/∂W) to rounding."""
    spec = MLPSpec(width=16, depth=6, activation=activation, sigma_w=1.3, sigma_b=0.2,
                   norm=norm, dtype="float64")
    params = sample_params(spec, jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 16))
    t = jax.random.normal(jax.random.PRNGKey(2), (4, 10))
    fast = jax.device_get(gradient_norms(spec, params, x, t, (6,)))
    mse = LOSS_FUNCTIONS["mse"]
    gen = probe(MLP(spec), {"params": params}, (x, t), lambda out, b: mse(out[0], b[1]),
                call_args=lambda b: (b[0],))
    mods, grads = gen["modules"], gen["params"]
    bp = np.concatenate([np.atleast_1d(mods["input_layer/dense"]["backprop_norm"]),
                         mods["hidden/dense"]["backprop_norm"]])
    wk = np.concatenate([np.atleast_1d(grads["input_layer/dense/kernel"]),
                         grads["hidden/dense/kernel"]])
    np.testing.assert_allclose(bp, fast["backprop_norm"][0], rtol=1e-12)
    np.testing.assert_allclose(wk, fast["weight_grad_norm"][0], rtol=1e-12)
    assert float(gen["loss"]) == pytest.approx(float(fast["loss"][0]), rel=1e-14)
    assert mods["hidden/dense"]["calls"].shape == (5,)  # one row per scanned layer


# ---------------------------------------------------------------- plain-Flax test models
class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = jnp.tanh(nn.Conv(6, (3,))(x))
        return nn.Dense(2)(x.mean(axis=1))


class Block(nn.Module):
    @nn.compact
    def __call__(self, h, _):
        return jnp.tanh(nn.Dense(8)(h)), None


class Stack(nn.Module):
    """A user-written nn.scan stack (variable_axes list only "params")."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8)(x)
        x, _ = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
                       length=4)()(x, None)
        return nn.Dense(2)(x)


class PreLN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x + nn.MultiHeadDotProductAttention(num_heads=2)(nn.LayerNorm()(x))
        return x + nn.Dense(8)(nn.gelu(nn.Dense(16)(nn.LayerNorm()(x))))


class Transformer(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = PreLN()(x)
        return nn.Dense(2)(x.mean(axis=1))


def _explicit_perturbation_loss(module, variables, x, t, path):
    """δ ↦ L with δ added to the output of the submodule at ``path`` (a second, independent
    interceptor): ∂L/∂δ at δ = 0 is the back-propagated signal there."""
    def loss(delta):
        def add(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and tuple(context.module.path) == path:
                return out + delta
            return out
        with nn.intercept_methods(add):
            y = module.apply(variables, x)
        return _mse(y, {"t": t})
    return loss


CASES = {
    "cnn": (CNN(), (3, 10, 2), [("Conv_0",), ("Conv_1",), ("Conv_2",)]),
    "transformer": (Transformer(), (2, 5, 8), [
        ("PreLN_0",), ("PreLN_0", "LayerNorm_0"),
        ("PreLN_0", "MultiHeadDotProductAttention_0", "query"),
        ("PreLN_0", "MultiHeadDotProductAttention_0", "out"), ("PreLN_0", "Dense_0")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_backprop_norm_equals_explicit_perturbation_gradient(case):
    """‖∂L/∂output‖ of a CNN's convolutions and of a pre-LN Transformer block's submodules
    (attention projections included) equals ‖∂L/∂δ‖ for an explicit additive perturbation
    δ, whose gradient is itself checked against finite differences (float64)."""
    module, shape, paths = CASES[case]
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    variables = module.init(jax.random.PRNGKey(0), x)
    t = jax.random.normal(jax.random.PRNGKey(2), (shape[0], 2))
    out = probe(module, variables, {"x": x, "t": t}, _mse, call_args=lambda b: (b["x"],))
    captured = module.apply(variables, x, capture_intermediates=True,
                            mutable=["intermediates"])[1]["intermediates"]
    for path in paths:
        y = captured
        for name in path:
            y = y[name]
        y = y["__call__"][0]
        loss = _explicit_perturbation_loss(module, variables, x, t, path)
        delta = jnp.zeros_like(y)
        if path == paths[0]:
            check_grads(loss, (delta,), order=1, modes=["rev"], eps=1e-6)
        reference = jnp.linalg.norm(jax.grad(loss)(delta))
        entry = out["modules"]["/".join(path)]
        assert float(entry["backprop_norm"]) == pytest.approx(float(reference), rel=1e-10)
        # forward statistics against flax's own capture of the same output
        assert float(entry["out_mean"]) == pytest.approx(float(jnp.mean(y)), rel=1e-10,
                                                         abs=1e-14)
        assert float(entry["out_q"]) == pytest.approx(float(jnp.mean(y**2)), rel=1e-10)
        assert float(entry["out_zero_frac"]) == float(jnp.mean(y == 0))
        assert float(entry["calls"]) == 1.0


def test_scanned_stack_is_measured_layer_by_layer():
    """A user-written nn.scan stack (a perturbation collection would be silently dropped
    there): each of the 4 layers gets its own ‖∂L/∂output‖ and ‖∂L/∂W‖, equal to those of an
    unrolled copy of the network with the same weights."""
    module = Stack()
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    t = jax.random.normal(jax.random.PRNGKey(2), (3, 2))
    variables = _f64(module.init(jax.random.PRNGKey(0), x))
    out = probe(module, variables, {"x": x, "t": t}, _mse, call_args=lambda b: (b["x"],))
    layer = out["modules"]["ScanBlock_0/Dense_0"]
    assert layer["backprop_norm"].shape == (4,) and np.all(layer["calls"] == 1)
    p = variables["params"]
    stacked = p["ScanBlock_0"]["Dense_0"]

    def unrolled(deltas):
        h = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
        for i in range(4):
            z = h @ stacked["kernel"][i] + stacked["bias"][i] + deltas[i]
            h = jnp.tanh(z)
        return _mse(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], {"t": t})

    deltas = jnp.zeros((4, 3, 8))
    g = jax.grad(unrolled)(deltas)
    np.testing.assert_allclose(layer["backprop_norm"], jnp.linalg.norm(g, axis=(1, 2)),
                               rtol=1e-10)
    full = jax.grad(lambda prm: _mse(module.apply({"params": prm}, x), {"t": t}))(p)
    np.testing.assert_allclose(out["params"]["ScanBlock_0/Dense_0/kernel"],
                               jnp.linalg.norm(full["ScanBlock_0"]["Dense_0"]["kernel"],
                                               axis=(1, 2)), rtol=1e-12)


class Branchy(nn.Module):
    @nn.compact
    def __call__(self, x):
        unused = nn.Dense(3, name="unused")(x)
        del unused
        return nn.Dense(2, name="used")(x)


def test_module_that_does_not_reach_the_loss_is_reported_not_zero():
    module = Branchy()
    x = jnp.ones((2, 4))
    variables = module.init(jax.random.PRNGKey(0), x)
    out = probe(module, variables, x, lambda y, b: jnp.sum(y**2))
    assert float(out["modules"]["unused"]["calls"]) == 0
    assert np.isnan(out["modules"]["unused"]["backprop_norm"])
    assert float(out["modules"]["used"]["calls"]) == 1
    ds = diagnose(module, x, lambda y, b: jnp.sum(y**2), seeds=2)
    rows = {r["module"]: r for r in diagnosis_summary(ds)}
    assert "not reached" in rows["unused"]["flags"]


class LSTMNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.RNN(nn.LSTMCell(4))(x)[:, -1])


def test_recurrent_cell_is_measured_per_time_step():
    """An LSTM cell applied at T = 5 time steps (nn.RNN broadcasts its parameters over
    time): ‖∂L/∂output_t‖ of the cell's outputs (carry and output) at every step, and their
    mean (calls = 5), against an unrolled loop with explicit perturbations."""
    with jax.enable_x64(False):  # flax's LSTM carry is float32 whatever the inputs
        _recurrent_cell_per_time_step()


def _recurrent_cell_per_time_step():
    module = LSTMNet()
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 2))
    t = jax.random.normal(jax.random.PRNGKey(2), (3, 2))
    variables = module.init(jax.random.PRNGKey(0), x)
    out = probe(module, variables, {"x": x, "t": t}, _mse, call_args=lambda b: (b["x"],))
    cell_entry = out["modules"]["LSTMCell_0"]
    assert float(cell_entry["calls"]) == 5
    # RNN_0's probe lives in the model's parameters: that does not make the model a layer
    assert out["order"] == ["RNN_0", "LSTMCell_0"] + [f"LSTMCell_0/{g}" for g in (
        "ii", "hi", "if", "hf", "ig", "hg", "io", "ho")] + ["Dense_0"]
    p = variables["params"]
    cell = nn.LSTMCell(4)

    def unrolled(deltas):
        carry = cell.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)
        for step in range(5):
            (c, h), y = cell.apply({"params": p["LSTMCell_0"]}, carry, x[:, step])
            carry, y = (c + deltas[step, 0], h + deltas[step, 1]), y + deltas[step, 2]
        return _mse(nn.Dense(2).apply({"params": p["Dense_0"]}, y), {"t": t})

    g = jax.grad(unrolled)(jnp.zeros((5, 3, 3, 4)))
    per_step = jnp.sqrt(jnp.sum(g**2, axis=(1, 2, 3)))
    assert float(cell_entry["backprop_norm"]) == pytest.approx(float(per_step.mean()),
                                                               rel=1e-5)  # float32
    # and step by step: nn.RNN runs with the probe collection stacked over its time scan
    steps = cell_entry["per_step"]
    np.testing.assert_allclose(steps["backprop_norm"], per_step, rtol=1e-5)
    np.testing.assert_array_equal(steps["calls"], np.ones(5))
    gate = out["modules"]["LSTMCell_0/hf"]["per_step"]
    assert gate["backprop_norm"].shape == (5,) and np.all(gate["calls"] == 1)


def test_vmapped_seeds_equal_a_per_seed_loop():
    module = CNN()
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 10, 2))
    batch = {"x": x, "t": jnp.ones((3, 2))}
    ds = diagnose(module, batch, _mse, seeds=3, call_args=lambda b: (b["x"],))
    for s in range(3):
        key = jax.random.fold_in(jax.random.PRNGKey(0), s)
        out = probe(module, module.init(key, x), batch, _mse, call_args=lambda b: (b["x"],))
        for i, label in enumerate(ds.module.values):
            np.testing.assert_allclose(ds.backprop_norm.values[s, i],
                                       out["modules"][str(label)]["backprop_norm"],
                                       rtol=1e-12)
        assert ds.loss.values[s] == pytest.approx(float(out["loss"]), rel=1e-14)
    table = diagnosis_table(ds)
    assert table.splitlines()[2].startswith("Conv_0") and "Dense_0" in table
    one_at_a_time = diagnose(module, batch, _mse, seeds=3, seed_batch=1,
                             call_args=lambda b: (b["x"],))
    np.testing.assert_allclose(one_at_a_time.backprop_norm, ds.backprop_norm, rtol=1e-12)
    with pytest.raises(ConfigError, match=r"^seed_batch: must be an integer"):
        diagnose(module, batch, _mse, seeds=3, seed_batch=0, call_args=lambda b: (b["x"],))


def test_non_scalar_loss_and_bad_seeds_are_one_line_errors():
    module = CNN()
    x = jnp.ones((2, 10, 2))
    variables = module.init(jax.random.PRNGKey(0), x)
    with pytest.raises(ConfigError, match="^loss_fn: must return a scalar"):
        probe(module, variables, x, lambda y, b: y)
    with pytest.raises(ConfigError, match=r"^seeds: must be an integer in \[1, 4096\]"):
        diagnose(module, x, lambda y, b: jnp.sum(y), seeds=0)


def test_deep_tanh_small_init_vanishes_at_the_mean_field_rate():
    """Glorot & Bengio's case from examples/models.py: a 24-layer tanh MLP, σ_w² = 0.5,
    σ_b = 0.  Deep in the net q_l → 0, so mean field gives ‖δ_l‖/‖δ_{l+1}‖ → √(σ_w² φ'(0)²)
    = √0.5 per layer; the geometric mean over the last 8 hidden layers (8 seeds) is within
    2 % of it (σ_w for σ_w² would give 0.84).  The first layers are flagged vanishing by
    ‖∂L/∂output‖ while their ‖∂L/∂W‖ stays flat."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from examples.models import deep_tanh_small_init

    with jax.enable_x64(False):
        module, batch, loss_fn, options = deep_tanh_small_init()
        ds = diagnose(module, batch, loss_fn, seeds=8, **options)
    bp = ds.backprop_norm.values  # (seed, module): Dense_0 .. Dense_24 (readout)
    factors = bp[:, 15:23] / bp[:, 16:24]
    geometric = float(np.exp(np.mean(np.log(factors))))
    assert geometric == pytest.approx(np.sqrt(0.5), rel=0.02)
    rows = diagnosis_summary(ds)
    assert all("vanishing" in r["flags"] for r in rows[:3])
    assert not any("vanishing" in r["flags"] for r in rows[-12:])
    w = np.median(ds.param_grad_norm.values, axis=0)
    assert w[0] / w[4] > 0.8  # flat where ‖∂L/∂output‖ falls by > 5x
    assert bp[:, 4].mean() / bp[:, 0].mean() > 5


def test_diagnose_records_the_signal_through_time():
    """diagnose keeps every time step of modules inside an nn.RNN (dims recurrent_module ×
    time), equal to the probe's, and its table reports the first/last ratio through time."""
    with jax.enable_x64(False):
        module = LSTMNet()
        x = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 2))
        batch = {"x": x, "t": jnp.ones((3, 2))}
        ds = diagnose(module, batch, _mse, seeds=2, call_args=lambda b: (b["x"],))
        out = probe(module, module.init(jax.random.fold_in(jax.random.PRNGKey(0), 1), x),
                    batch, _mse, call_args=lambda b: (b["x"],))
    steps = ds.backprop_norm_per_step.sel(recurrent_module="LSTMCell_0")
    assert steps.dims == ("seed", "time") and steps.shape == (2, 5)
    np.testing.assert_allclose(steps.values[1], out["modules"]["LSTMCell_0"]["per_step"][
        "backprop_norm"], rtol=1e-6)
    med = np.median(steps.values, axis=0)
    line = next(x for x in diagnosis_table(ds).splitlines() if x.startswith("through time"))
    assert f"first/last {med[0] / med[-1]:.2g}" in line
