"""The input–output Jacobian of a fully connected network, at several depths in one pass.

``J_d = ∂h_{d+1}/∂h_1`` is the product of ``d`` layer Jacobians ``∂h_l/∂h_{l−1}`` (``W_l
diag φ'(h_{l−1})`` for a plain layer; LayerNorm and residual branches are included, since
each layer is differentiated as it is built).  One forward pass through the stack carries
``J`` along: a layer pushes every column of ``J`` through its JVP (one batched matmul per
layer for a plain one), and the squared singular values of ``J`` are taken where the pass
reaches a requested depth, so every depth of a nested family costs one pass.

References:
    J. Pennington, S. S. Schoenholz, S. Ganguli. "Resurrecting the sigmoid in deep learning
    through dynamical isometry." NeurIPS 2017 (the spectrum of ``JJᵀ`` measured).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from gradstudy._validate import require_dtype
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._model import InputLayer, hidden_stack, zero_perturbation
from gradstudy.families.mlp._spec import MLPSpec


def jacobian_squared_singular_values(spec: MLPSpec, params: dict, x: jax.Array,
                                     depths: Sequence[int]) -> jax.Array:
    """Squared singular values of ``∂h_{d+1}/∂h_1`` for each ``d`` of ``depths``.

    Args:
        spec: the network; needs ``spec.depth >= max(depths) + 1`` hidden layers in
            ``params`` (the first ``d + 1`` layers make the depth-``d`` Jacobian).
        params: the network's parameters (``init_params`` / ``sample_network``).
        x: (batch, input_dim) inputs.
        depths: increasing numbers of layer Jacobians in the product (>= 1).

    Returns:
        (len(depths), batch, width) squared singular values, descending.

    Raises:
        ConfigError: depths not increasing and >= 1, too few layers, or batchnorm (a
            per-example Jacobian is undefined with batch statistics).
    """
    depths = tuple(int(d) for d in depths)
    if not depths or depths[0] < 1 or any(b <= a for a, b in zip(depths, depths[1:])):
        raise ConfigError(f"depths: must be increasing integers >= 1, got {depths}")
    if spec.depth < depths[-1] + 1:
        raise ConfigError(f"depth: the depth-{depths[-1]} Jacobian needs spec.depth >= "
                          f"{depths[-1] + 1}, got {spec.depth}")
    if spec.norm == "batchnorm":
        raise ConfigError("norm: per-example Jacobians are undefined with batchnorm")
    require_dtype(spec)
    dtype = jnp.dtype(spec.dtype)
    h = first_hidden_state(spec, params, x)
    layers = params["hidden"]

    def layer(carry, p):
        h, jac = carry  # (batch, width), (batch, width, width)
        f = one_example_layer(spec, p)

        def push(hv, jv):  # every column of J through the layer's JVP
            out, tangents = jax.vmap(lambda t: jax.jvp(f, (hv,), (t,)), in_axes=1,
                                     out_axes=(None, 1))(jv)
            return out, tangents

        h_next, jac_next = jax.vmap(push)(h, jac)
        return (h_next, jac_next), None

    jac = jnp.broadcast_to(jnp.eye(spec.width, dtype=dtype), (x.shape[0],) + (spec.width,) * 2)
    out, done = [], 0
    for d in depths:  # one scan per segment between requested depths
        segment = jax.tree.map(lambda a, lo=done, hi=d: a[lo:hi], layers)
        (h, jac), _ = jax.lax.scan(layer, (h, jac), segment)
        done = d
        out.append(jnp.linalg.svd(jac, compute_uv=False) ** 2)
    return jnp.stack(out)


def first_hidden_state(spec: MLPSpec, params: dict, x: jax.Array) -> jax.Array:
    """(batch, width) ``h_1`` of inputs ``x``: the input layer as the model builds it."""
    dtype = jnp.dtype(spec.dtype)
    h, _ = InputLayer(spec).apply({"params": params["input_layer"]}, x,
                                  zero_perturbation(x.shape[0], spec.width, dtype, dense=False))
    return h


def one_example_layer(spec: MLPSpec, layer_params: dict):
    """``h_{l−1} ↦ h_l`` of one example through the hidden layer with ``layer_params`` (one
    slice of the stacked ``params["hidden"]``), normalisation and residual included."""
    one = zero_perturbation(1, spec.width, jnp.dtype(spec.dtype), 1, dense=False)
    stacked = jax.tree.map(lambda a: a[None], layer_params)

    def f(hv):
        out, _ = hidden_stack(spec, 1).apply({"params": stacked}, hv[None], one)
        return out[0]

    return f
