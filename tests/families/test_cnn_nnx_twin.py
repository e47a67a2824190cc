"""The CNN family's NNX twin holds the weights sweeps draw and computes what the Linen ConvNet
computes: the same logits, and ``diagnose`` gives the same numbers on both, layer by layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradstudy.families.cnn import (
    CNNSpec,
    ConvNet,
    apply,
    nnx_convnet,
    nnx_convnet_from_params,
    sample_params,
)
from gradstudy.tools import diagnose

SPECS = {
    "plain": CNNSpec(depth=4, channels=6, kernel_size=3, length=12, out_dim=3,
                     activation="tanh", sigma_w=1.4, padding="circular"),
    "batchnorm": CNNSpec(depth=4, channels=6, kernel_size=5, length=12, out_dim=3,
                         block="batchnorm"),
    "residual": CNNSpec(depth=4, channels=6, kernel_size=3, in_channels=2, length=12,
                        out_dim=3, block="residual"),
}


def _inputs(spec):
    shape = (8, spec.length) + ((spec.in_channels,) if spec.in_channels > 1 else ())
    return jax.random.normal(jax.random.PRNGKey(1), shape)


def _loss(y, batch):
    return jnp.mean(y**2)


def _linen_leaves(spec, params) -> dict:
    """The Linen parameters under the twin's paths: input_layer/kernel, hidden/0/scale,
    readout/bias, ... (the stacked layers' leading axis split)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        kind, _, name = (k.key for k in path)  # e.g. ("hidden", "conv", "kernel")
        if kind == "hidden":
            out.update({f"hidden/{i}/{name}": leaf[i] for i in range(spec.depth - 1)})
        else:
            out[f"{kind}/{name}"] = leaf
    return out


def _twin_leaves(twin) -> dict:
    return {"/".join(str(k) for k in path): v.get_value()
            for path, v in nnx.to_flat_state(nnx.state(twin, nnx.Param))}


@pytest.mark.parametrize("block", list(SPECS))
def test_nnx_twin_has_the_sweep_weights_and_the_linen_numbers(block):
    spec = SPECS[block]
    key = jax.random.PRNGKey(4)
    x = _inputs(spec)
    twin = nnx_convnet(spec, nnx.Rngs(params=key))
    params = sample_params(spec, nnx.Rngs(params=key).params())  # the stream's first key
    expected = _linen_leaves(spec, params)
    leaves = _twin_leaves(twin)
    assert sorted(leaves) == sorted(expected)  # no parameter missing or extra (e.g. a bias)
    for name, value in expected.items():
        np.testing.assert_array_equal(leaves[name], value, err_msg=name)
    np.testing.assert_allclose(twin(x), apply(spec)(params, x), rtol=1e-5, atol=1e-7)

    a = diagnose(twin, x, _loss)
    b = diagnose(ConvNet(spec), x, _loss, variables={"params": params},
                 select=["input_layer", "hidden", "readout"])
    layers = [f"hidden/{i}" for i in range(spec.depth - 1)]
    assert list(a.module.values) == ["input_layer", *layers, "readout"]
    assert list(b.module.values) == ["input_layer",
                                     *(f"hidden[{i}]" for i in range(spec.depth - 1)),
                                     "readout"]
    for name in ("backprop_norm", "param_grad_norm", "loss"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=2e-5, err_msg=name)
    # the layers differ from each other by more than the tolerance
    assert np.ptp(np.log(a.backprop_norm.values)) > 1e-2
    assert np.ptp(np.log(a.param_grad_norm.values)) > 1e-2


@pytest.mark.parametrize("block", list(SPECS))
def test_nnx_twin_of_given_params_uses_every_one_of_them(block):
    # sampled biases are 0 and BN scales 1: random ones make a dropped or misplaced
    # bias, scale or offset visible in the logits
    spec = SPECS[block]
    x = _inputs(spec)
    base = sample_params(spec, jax.random.PRNGKey(7))
    leaves, treedef = jax.tree.flatten(base)
    keys = jax.random.split(jax.random.PRNGKey(8), len(leaves))
    params = jax.tree.unflatten(treedef, [
        leaf + 0.3 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)])
    twin = nnx_convnet_from_params(spec, params)
    y = apply(spec)(params, x)
    np.testing.assert_allclose(twin(x), y, rtol=1e-5, atol=1e-6)
    assert not np.allclose(twin(x), apply(spec)(base, x), atol=1e-3)
    # a (batch, length) input of an in_channels = 1 network, or (batch, length, C)
    assert twin(x).shape == (8, spec.out_dim)
