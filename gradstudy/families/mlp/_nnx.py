"""The MLP family's Flax NNX twin: the network of an :class:`MLPSpec` as an ``nnx.Module``.

Same computation as the Linen :class:`~gradstudy.families.mlp.MLP` (``h_1 = Norm(W_1 x +
b_1)``, ``h_l = Norm(W_l φ(h_{l-1}) + b_l)`` (+ ``h_{l-1}`` with a residual branch scale),
``y = W_out φ(h_depth) + b_out``), with the hidden layers as a list of modules
(``hidden/0``, ``hidden/1``, ...) so that a user's NNX code and
:func:`gradstudy.tools.diagnose` see one submodule per layer.  Its weights are drawn by the
family's own sampler (:func:`sample_params`), so ``nnx_mlp(spec, nnx.Rngs(key))`` holds
exactly the weights that sweeps draw for ``key``; :func:`nnx_mlp_from_params` builds the twin
of given Linen parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gradstudy.families.mlp._model import sample_params
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._normalize import BN_EPS


class NNXDense(nnx.Module):
    """``Norm(W φ(h) + b)``: a dense layer with its activation before and its
    normalisation (none, LayerNorm or BatchNorm with batch statistics) after."""

    def __init__(self, kernel, bias, *, activation=None, norm: str = "none",
                 norm_params: dict | None = None, residual_alpha: float | None = None):
        self.kernel = nnx.Param(jnp.asarray(kernel))
        self.bias = nnx.Param(jnp.asarray(bias))
        self.activation = activation
        self.norm = norm
        self.residual_alpha = residual_alpha
        if norm != "none":
            self.scale = nnx.Param(jnp.asarray(norm_params["scale"]))
            self.offset = nnx.Param(jnp.asarray(norm_params["offset"]))

    def __call__(self, h):
        a = h if self.activation is None else get_activation(self.activation)(h)
        z = a @ self.kernel[...] + self.bias[...]
        if self.norm != "none":  # as gradstudy.nn.Normalize
            axis = -1 if self.norm == "layernorm" else tuple(range(z.ndim - 1))
            mean = jnp.mean(z, axis=axis, keepdims=True)
            var = jnp.var(z, axis=axis, keepdims=True)
            z = (z - mean) * jax.lax.rsqrt(var + BN_EPS) * self.scale[...] + self.offset[...]
        if self.residual_alpha is not None:
            z = h + self.residual_alpha * z
        return z


class NNXMLP(nnx.Module):
    """The NNX twin of ``MLP(spec)``: ``input_layer``, ``hidden/0..depth-2``, ``readout``;
    ``__call__(x) -> y`` (the Linen model also returns its per-layer statistics)."""

    def __init__(self, spec: MLPSpec, params: dict):
        self.spec = spec
        norm = spec.norm

        def norm_of(p, layer=None):
            if norm == "none":
                return None
            return {k: (v if layer is None else v[layer]) for k, v in p["norm"].items()}

        first = params["input_layer"]
        self.input_layer = NNXDense(first["dense"]["kernel"], first["dense"]["bias"],
                                    norm=norm, norm_params=norm_of(first))
        layers = []
        if spec.depth > 1:
            hidden = params["hidden"]
            for layer in range(spec.depth - 1):
                layers.append(NNXDense(hidden["dense"]["kernel"][layer],
                                       hidden["dense"]["bias"][layer],
                                       activation=spec.activation, norm=norm,
                                       norm_params=norm_of(hidden, layer),
                                       residual_alpha=spec.residual_alpha))
        self.hidden = nnx.List(layers)
        last = params["readout"]["dense"]
        self.readout = NNXDense(last["kernel"], last["bias"], activation=spec.activation)

    def __call__(self, x):
        h = self.input_layer(x)
        for layer in self.hidden:
            h = layer(h)
        return self.readout(h)


def nnx_mlp_from_params(spec: MLPSpec, params: dict) -> NNXMLP:
    """The NNX twin of ``MLP(spec)`` holding the given Linen parameters (``params`` as
    :func:`sample_params` returns them: the hidden stack's leading layer axis is split)."""
    return NNXMLP(spec, params)


def nnx_mlp(spec: MLPSpec, rngs: nnx.Rngs) -> NNXMLP:
    """An NNX network of ``spec`` with weights drawn as sweeps draw them: those of
    ``sample_params(spec, rngs.params())``."""
    return NNXMLP(spec, sample_params(spec, rngs.params()))
