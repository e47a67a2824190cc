"""``diagnose`` on Flax NNX models: a Linen model and its NNX twin with the same weights give
identical numbers; NNX numbers equal independent ``jax.grad`` references (per block of a
transformer stack, per time step of an ``nnx.RNN``, per parameter leaf with dropout and
BatchNorm); seeds of a factory are one vmapped program equal to a per-seed loop; Linen
dropout and BatchNorm work with the default initialisation; bad models are one line."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradstudy.engine import seed_keys
from gradstudy.errors import ConfigError
from gradstudy.tools import diagnose, diagnosis_table

X = jax.random.normal(jax.random.PRNGKey(0), (32, 4))


def _mse(y, batch):
    return jnp.mean(y**2)


class NNXTanh(nnx.Module):
    def __init__(self, rngs, depth=5, width=16, sigma_w2=1.0):
        init = nnx.initializers.variance_scaling(sigma_w2, "fan_in", "normal")
        self.layers = nnx.List([nnx.Linear(width if i else 4, width, kernel_init=init,
                                           rngs=rngs) for i in range(depth)])
        self.out = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return self.out(x)


class LinenTanh(nn.Module):
    depth: int = 5
    width: int = 16

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width)(x))
        return nn.Dense(1)(x)


def _linen_twin_variables(model: NNXTanh) -> dict:
    layers = list(model.layers) + [model.out]
    return {"params": {f"Dense_{i}": {"kernel": m.kernel[...], "bias": m.bias[...]}
                       for i, m in enumerate(layers)}}


def test_linen_and_nnx_twins_with_the_same_weights_give_identical_numbers():
    model = NNXTanh(nnx.Rngs(3))
    a = diagnose(model, X, _mse)
    b = diagnose(LinenTanh(), X, _mse, variables=_linen_twin_variables(model))
    assert list(a.module.values) == [f"layers/{i}" for i in range(5)] + ["out"]
    assert list(b.module.values) == [f"Dense_{i}" for i in range(6)]
    for name in ("backprop_norm", "param_grad_norm", "out_q", "out_mean", "out_zero_frac",
                 "calls", "grad_norm", "loss", "param_count"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    # a plausible bug (the output of the wrong layer, or the gradient of the input) moves
    # these: adjacent layers differ by more than rounding
    assert np.all(np.abs(np.diff(np.log(a.backprop_norm.values[0]))) > 1e-3)


def test_nnx_factory_seeds_are_one_program_equal_to_a_per_seed_loop():
    ds = diagnose(lambda rngs: NNXTanh(rngs), X, _mse, seeds=3, base_seed=5)
    assert ds.sizes["seed"] == 3 and ds.attrs["model"] == "NNXTanh"
    for s, key in enumerate(seed_keys(5, 3)):
        alone = diagnose(NNXTanh(nnx.Rngs(key)), X, _mse)
        for name in ("backprop_norm", "param_grad_norm", "grad_norm", "loss"):
            np.testing.assert_allclose(ds[name].values[s], alone[name].values[0], rtol=2e-5,
                                       err_msg=name)
    # different seeds are different networks
    assert not np.allclose(ds.loss.values[0], ds.loss.values[1])


def test_nnx_variants_are_traced_scalars_of_the_factory():
    ds = diagnose(lambda rngs, sigma_w2: NNXTanh(rngs, sigma_w2=sigma_w2), X, _mse, seeds=2,
                  variants={"sigma_w2": [0.25, 4.0]})
    assert dict(ds.sizes)["variant"] == 2 and list(ds.sigma_w2.values) == [0.25, 4.0]
    for v, value in enumerate((0.25, 4.0)):
        alone = diagnose(lambda rngs, value=value: NNXTanh(rngs, sigma_w2=value), X, _mse,
                         seeds=2)
        np.testing.assert_allclose(ds.backprop_norm.values[v], alone.backprop_norm.values,
                                   rtol=2e-5)
    # small weights: the signal at the first layer is far below the last (vanishing)
    small = np.median(ds.backprop_norm.values[0], axis=0)
    assert small[0] / small[-2] < 0.2


class Block(nnx.Module):
    """A pre-LN transformer encoder block."""

    def __init__(self, dim, heads, rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.up = nnx.Linear(dim, 2 * dim, rngs=rngs)
        self.down = nnx.Linear(2 * dim, dim, rngs=rngs)

    def __call__(self, h):
        h = h + self.attn(self.norm1(h))
        return h + self.down(nnx.gelu(self.up(self.norm2(h))))


class Transformer(nnx.Module):
    def __init__(self, rngs, depth=4, dim=16, heads=2):
        self.embed = nnx.Linear(3, dim, rngs=rngs)
        self.blocks = nnx.List([Block(dim, heads, rngs) for _ in range(depth)])
        self.head = nnx.Linear(dim, 2, rngs=rngs)

    def __call__(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(axis=1))


def test_nnx_transformer_stack_equals_perturbation_gradients_per_block():
    model = Transformer(nnx.Rngs(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 6, 3))
    ds = diagnose(model, x, _mse, select=Block)
    assert list(ds.module.values) == [f"blocks/{i}" for i in range(4)]

    # reference: ∂L/∂(output of block l) as the gradient of an additive zero perturbation
    def loss_with(eps):
        h = model.embed(x)
        for block, e in zip(model.blocks, eps):
            h = block(h) + e
        return _mse(model.head(h.mean(axis=1)), x)

    shape = jax.eval_shape(lambda: model.embed(x)).shape
    grads = jax.grad(loss_with)([jnp.zeros(shape)] * 4)
    expected = [float(jnp.linalg.norm(g)) for g in grads]
    np.testing.assert_allclose(ds.backprop_norm.values[0], expected, rtol=1e-5)
    # parameters below each block: the per-leaf gradient norms from nnx.grad
    ref = nnx.grad(lambda m: _mse(m(x), x))(model)
    for i in range(4):
        leaves = jax.tree.leaves(nnx.state(ref.blocks[i]))
        norm = float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in leaves)))
        assert ds.param_grad_norm.values[0, i] == pytest.approx(norm, rel=1e-5)
    assert "blocks/3" in diagnosis_table(ds)


class NNXSeqModel(nnx.Module):
    def __init__(self, rngs):
        self.rnn = nnx.RNN(nnx.LSTMCell(3, 8, rngs=rngs), rngs=rngs)
        self.head = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        return self.head(self.rnn(x)[:, -1])


class LinenSeqModel(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="head")(nn.RNN(nn.LSTMCell(8), name="rnn")(x)[:, -1])


def test_nnx_rnn_is_measured_through_time_like_its_linen_twin():
    model = NNXSeqModel(nnx.Rngs(1))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 12, 3))
    a = diagnose(model, x, _mse)
    cell = model.rnn.cell
    names = {"if": "if_"}
    gates = {}
    for g in ("ii", "if", "ig", "io", "hi", "hf", "hg", "ho"):
        dense = getattr(cell, names.get(g, g))
        gates[g] = {"kernel": dense.kernel[...]}
        if dense.bias is not None:
            gates[g]["bias"] = dense.bias[...]
    variables = {"params": {"LSTMCell_0": gates, "head": {"kernel": model.head.kernel[...],
                                                          "bias": model.head.bias[...]}}}
    b = diagnose(LinenSeqModel(), x, _mse, variables=variables)
    cells = [f"rnn/cell/{names.get(g, g)}" for g in ("ii", "hi", "if", "hf", "ig", "hg",
                                                     "io", "ho")]
    assert list(a.recurrent_module.values) == cells
    assert a.sizes["time"] == 12 and np.all(a.calls.sel(module=cells).values == 12)
    np.testing.assert_allclose(a.backprop_norm_per_step.values,
                               b.backprop_norm_per_step.values[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(a.backprop_norm.sel(module=cells).values,
                               b.backprop_norm.values[:, 2:10], rtol=1e-6)
    # the signal grows toward the last step (the loss reads the last output only)
    per_step = a.backprop_norm_per_step.values[0, 0]
    assert per_step[-1] > 10 * per_step[0]


class Regularised(nnx.Module):
    def __init__(self, rngs):
        self.a = nnx.Linear(4, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.b = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.b(self.drop(nnx.relu(self.bn(self.a(x)))))


def test_nnx_dropout_and_batchnorm_in_train_mode_equal_nnx_grad():
    model = Regularised(nnx.Rngs(0, dropout=7))
    model.train()
    ds = diagnose(model, X, _mse)
    # reference on a copy (the model's RNG state: the same dropout mask)
    ref = nnx.grad(lambda m: _mse(m(X), X))(nnx.clone(model))
    flat = dict(nnx.to_flat_state(ref))
    for label in ds.param.values:
        g = flat[tuple(int(k) if k.isdigit() else k for k in str(label).split("/"))]
        expected = float(jnp.linalg.norm(g[...]))
        # abs: the bias before BatchNorm has a zero gradient up to rounding
        assert float(ds.grad_norm.sel(param=label).values[0]) == pytest.approx(
            expected, rel=1e-5, abs=1e-6)
    # dropout zeroes about half of the outputs in train mode, none in eval mode
    assert 0.3 < float(ds.out_zero_frac.sel(module="drop").values[0]) < 0.8
    model.eval()
    frozen = diagnose(model, X, _mse)
    assert float(frozen.out_zero_frac.sel(module="drop").values[0]) < 0.6
    assert not np.allclose(frozen.loss.values, ds.loss.values)


class LinenRegularised(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(16)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
        return nn.Dense(1)(x)


def test_linen_dropout_rngs_and_batch_stats_work_with_the_default_init():
    key = jax.random.PRNGKey(11)
    ds = diagnose(LinenRegularised(), X, _mse, seeds=2, rngs={"dropout": key},
                  mutable=("batch_stats",))
    assert ds.sizes["seed"] == 2 and np.all(np.isfinite(ds.grad_norm.values))
    # reference: seed 0's variables, plain jax.grad through apply with the same rngs
    variables = LinenRegularised().init({"params": seed_keys(0, 2)[0], "dropout": key}, X)

    def loss(params):
        out, _ = LinenRegularised().apply({**variables, "params": params}, X,
                                          rngs={"dropout": key}, mutable=["batch_stats"])
        return _mse(out, X)

    grads = jax.grad(loss)(variables["params"])
    expected = float(jnp.linalg.norm(grads["Dense_1"]["kernel"]))
    assert float(ds.grad_norm.sel(param="Dense_1/kernel").values[0]) == pytest.approx(
        expected, rel=1e-5)


class Scanned(nnx.Module):
    """Four layers stacked with a leading layer axis, applied by nnx.scan."""

    def __init__(self, rngs, depth=4, width=8):
        @nnx.split_rngs(splits=depth)
        @nnx.vmap(in_axes=0, out_axes=0)
        def make(rngs):
            return nnx.Linear(width, width, rngs=rngs)

        self.stack = make(rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def step(h, layer):
            return jnp.tanh(layer(h))

        return step(x, self.stack)


def test_nnx_scanned_stack_is_one_module_averaged_over_its_calls():
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 8))
    ds = diagnose(lambda rngs: Scanned(rngs), x, _mse, seeds=2)
    assert list(ds.module.values) == ["stack"]
    assert np.all(ds.calls.values == 4)
    assert "per-call averages" in diagnosis_table(ds)


@pytest.mark.parametrize("module, match", [
    (42, "module: must be a flax.linen.Module, a flax.nnx.Module"),
    (lambda rngs: 3, "module: a callable model must be a factory rngs -> nnx.Module"),
    (lambda rngs: 1 / 0, "module: the factory .* raised ZeroDivisionError"),
])
def test_bad_models_are_one_line_errors(module, match):
    with pytest.raises(ConfigError, match=match):
        diagnose(module, X, _mse)


def test_nnx_instance_has_one_seed_and_no_linen_arguments():
    model = NNXTanh(nnx.Rngs(0))
    with pytest.raises(ConfigError, match="seeds: an nnx.Module instance has one set"):
        diagnose(model, X, _mse, seeds=4)
    with pytest.raises(ConfigError, match="variables, init_fn: for Linen modules only"):
        diagnose(model, X, _mse, init_fn=lambda k: None)
    with pytest.raises(ConfigError, match="loss_fn: must be callable"):
        diagnose(model, X, "mse")
    # the user's model is left as it was: no probe attributes, same weights
    before = jax.tree.map(np.asarray, nnx.state(model))
    diagnose(model, X, _mse)
    assert not any("gradstudy" in k for k in vars(model.layers[0]))
    jax.tree.map(np.testing.assert_array_equal, before,
                 jax.tree.map(np.asarray, nnx.state(model)))


def test_a_bridged_nnx_model_is_diagnosed_as_the_nnx_model_it_wraps():
    """``nnx.bridge.to_linen`` hides the NNX submodules from Linen's interceptors (it
    used to end in 'no submodule was selected'): diagnose builds the NNX model instead."""
    wrapped = nnx.bridge.to_linen(NNXTanh, depth=3)
    ds = diagnose(wrapped, X, _mse, seeds=2)
    assert list(ds.module.values) == ["layers/0", "layers/1", "layers/2", "out"]
    direct = diagnose(lambda rngs: NNXTanh(rngs, depth=3), X, _mse, seeds=2)
    np.testing.assert_array_equal(ds.backprop_norm.values, direct.backprop_norm.values)
