"""The recurrent family's NNX twin holds the weights sweeps draw and computes what the Linen
RecurrentNet computes: the same outputs, and ``diagnose`` gives the same numbers on both,
gate by gate and time step by time step (the twin's cell runs in an ``nnx.RNN``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradstudy.families.rnn import (
    RecurrentNet,
    RNNSpec,
    apply,
    nnx_recurrent_net,
    nnx_recurrent_net_from_params,
    sample_params,
)
from gradstudy.tools import diagnose

T = 6
CASES = [("tanh", "last"), ("relu", "sequence"), ("lstm", "last"), ("lstm", "sequence"),
         ("gru", "last"), ("gru", "sequence")]
KEYWORDS = {"if": "if_", "in": "in_"}  # the twin's names of Linen gates that are keywords


def _spec(cell, readout):
    return RNNSpec(cell=cell, hidden=6, in_dim=3, out_dim=2, length=T, readout=readout,
                   recurrent_scale=1.2, input_scale=1.5)


X = jax.random.normal(jax.random.PRNGKey(1), (4, T, 3))


def _loss(y, batch):
    return jnp.mean(y**2)


def _twin_path(spec, linen_path: str) -> str:
    """cell/lstm/if/kernel -> rnn/cell/if_/kernel; readout/bias -> readout/bias."""
    parts = linen_path.split("/")
    if parts[0] != "cell":
        return linen_path
    assert parts[1] == spec.kind
    gate = parts[2]
    return "/".join(["rnn", "cell", KEYWORDS.get(gate, gate), *parts[3:]])


def _flat(params) -> dict:
    return {"/".join(k.key for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def _twin_leaves(twin) -> dict:
    return {"/".join(str(k) for k in path): v.get_value()
            for path, v in nnx.to_flat_state(nnx.state(twin, nnx.Param))}


@pytest.mark.parametrize("cell, readout", CASES)
def test_nnx_twin_has_the_sweep_weights_and_the_linen_numbers(cell, readout):
    spec = _spec(cell, readout)
    key = jax.random.PRNGKey(4)
    twin = nnx_recurrent_net(spec, nnx.Rngs(params=key))
    params = sample_params(spec, nnx.Rngs(params=key).params())  # the stream's first key
    expected = {_twin_path(spec, k): v for k, v in _flat(params).items()}
    leaves = _twin_leaves(twin)
    assert sorted(leaves) == sorted(expected)  # no parameter missing or extra (e.g. a bias)
    for name, value in expected.items():
        np.testing.assert_array_equal(leaves[name], value, err_msg=name)
    y = twin(X)
    assert y.shape == ((4, 2) if readout == "last" else (4, T, 2))
    np.testing.assert_allclose(y, apply(spec)(params, X), rtol=1e-5, atol=1e-7)

    a = diagnose(twin, X, _loss)
    b = diagnose(RecurrentNet(spec), X, _loss, variables={"params": params},
                 select=["cell/*/*", "readout"])
    linen_gates = [str(m) for m in b.recurrent_module.values]
    gates = [_twin_path(spec, m) for m in linen_gates]  # matched by name, in call order
    n_gates = {"lstm": 8, "gru": 6}.get(cell, 2)
    assert len(gates) == n_gates and list(b.module.values) == [*linen_gates, "readout"]
    assert list(a.module.values) == ["rnn", *gates, "readout"]
    assert list(a.recurrent_module.values) == gates
    rows = a.sel(module=[*gates, "readout"])
    for name in ("backprop_norm", "param_grad_norm"):
        np.testing.assert_allclose(rows[name].values, b[name].values, rtol=2e-5,
                                   err_msg=name)
    np.testing.assert_allclose(a.loss.values, b.loss.values, rtol=2e-5)
    assert a.sizes["time"] == T and np.all(a.calls.sel(module=gates).values == T)
    per_step = a.backprop_norm_per_step.values
    # (exact zeros where a gate's output cannot matter, e.g. GRU's r at h_0 = 0)
    np.testing.assert_allclose(per_step, b.backprop_norm_per_step.values, rtol=2e-5)
    # the time steps and gates differ from each other by more than the tolerance
    assert np.ptp(np.log(per_step[per_step > 0])) > 1e-2
    assert np.ptp(np.log(rows.backprop_norm.values)) > 1e-2


@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
def test_nnx_twin_of_given_params_uses_every_one_of_them(cell):
    # sampled biases are 0: random ones make a dropped or misplaced bias visible
    spec = _spec(cell, "sequence")
    base = sample_params(spec, jax.random.PRNGKey(7))
    leaves, treedef = jax.tree.flatten(base)
    keys = jax.random.split(jax.random.PRNGKey(8), len(leaves))
    params = jax.tree.unflatten(treedef, [
        leaf + 0.3 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)])
    twin = nnx_recurrent_net_from_params(spec, params)
    np.testing.assert_allclose(twin(X), apply(spec)(params, X), rtol=1e-5, atol=1e-6)
    assert not np.allclose(twin(X), apply(spec)(base, X), atol=1e-3)
    # the cell's zero carry, as the Linen network starts from
    carry = twin.rnn.cell.initialize_carry((4, 3))
    for c in jax.tree.leaves(carry):
        assert c.shape == (4, spec.hidden) and not np.any(c)
    assert len(jax.tree.leaves(carry)) == (2 if cell == "lstm" else 1)
