"""The MLP family's NNX twin holds the weights sweeps draw and computes what the Linen MLP
computes: ``diagnose`` gives the same numbers on both, layer by layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradstudy.families.mlp import MLP, MLPSpec, nnx_mlp, sample_params
from gradstudy.tools import diagnose


def _loss(out, batch):
    y = out[0] if isinstance(out, tuple) else out  # the Linen MLP also returns its stats
    return jnp.mean(y**2)


@pytest.mark.parametrize("spec", [
    MLPSpec(width=16, depth=6, in_dim=5, out_dim=3, activation="tanh", sigma_w=1.3,
            sigma_b=0.2),
    MLPSpec(width=16, depth=4, in_dim=5, out_dim=3, activation="relu", init="he_normal",
            norm="layernorm", residual_alpha=0.5),
    MLPSpec(width=16, depth=3, in_dim=5, out_dim=3, norm="batchnorm"),
])
def test_nnx_twin_has_the_sweep_weights_and_the_linen_numbers(spec):
    key = jax.random.PRNGKey(4)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 5))
    twin = nnx_mlp(spec, nnx.Rngs(params=key))
    params = sample_params(spec, nnx.Rngs(params=key).params())  # the stream's first key
    np.testing.assert_array_equal(twin.hidden[1].kernel[...],
                                  params["hidden"]["dense"]["kernel"][1])
    a = diagnose(twin, x, _loss)
    b = diagnose(MLP(spec), x, _loss, variables={"params": params},
                 select=["input_layer", "hidden", "readout"])
    assert list(a.module.values) == (["input_layer"]
                                     + [f"hidden/{i}" for i in range(spec.depth - 1)]
                                     + ["readout"])
    assert list(b.module.values) == (["input_layer"]
                                     + [f"hidden[{i}]" for i in range(spec.depth - 1)]
                                     + ["readout"])
    # (out_q differs by design: the Linen layers also output their statistics)
    for name in ("backprop_norm", "param_grad_norm", "loss"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=2e-5, err_msg=name)
    # the layers differ from each other by more than the tolerance
    assert np.ptp(np.log(a.backprop_norm.values)) > 1e-2
