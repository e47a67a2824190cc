"""The CNN family's Flax NNX twin: the network of a :class:`CNNSpec` as an ``nnx.Module``.

Same computation as the Linen :class:`~gradstudy.families.cnn.ConvNet` (the convolution as
the same sum over the taps of shifted matrix products as :class:`Conv1D`, BatchNorm with
batch statistics as :class:`gradstudy.nn.Normalize`, the pooled readout), with the stacked
layers as a list of modules (``hidden/0``, ``hidden/1``, ...) that hold their own
parameters, so that a user's NNX code and :func:`gradstudy.tools.diagnose` see one
submodule per layer.  Its weights are drawn by the family's own sampler
(:func:`sample_params`), so ``nnx_convnet(spec, nnx.Rngs(key))`` holds exactly the weights
that sweeps draw for ``key``; :func:`nnx_convnet_from_params` builds the twin of given Linen
parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gradstudy._validate import require_dtype
from gradstudy.families.cnn._model import sample_params
from gradstudy.families.cnn._spec import CNNSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._normalize import BN_EPS


class NNXConvLayer(nnx.Module):
    """One conv layer of a :class:`CNNSpec` network (the Linen :class:`ConvLayer`):
    "plain" ``φ(conv(h))``, "batchnorm" ``φ(BN(conv(h)))``, "residual"
    ``h + α·conv(φ(h))`` (the input layer, ``first``: ``conv(x)``).  Parameters: ``kernel``
    (k, C_in, C_out), ``bias`` (None for "batchnorm"), and for "batchnorm" ``scale`` and
    ``offset``."""

    def __init__(self, spec: CNNSpec, params: dict, *, first: bool = False):
        self.block = spec.block
        self.activation = spec.activation
        self.padding = spec.padding
        self.alpha = spec.alpha if spec.block == "residual" else None  # (not NaN: static)
        self.first = first
        conv = params["conv"]
        self.kernel = nnx.Param(jnp.asarray(conv["kernel"]))
        self.bias = nnx.Param(jnp.asarray(conv["bias"])) if "bias" in conv else None
        if spec.block == "batchnorm":
            self.scale = nnx.Param(jnp.asarray(params["norm"]["scale"]))
            self.offset = nnx.Param(jnp.asarray(params["norm"]["offset"]))

    def conv(self, x):
        """The convolution, as :class:`Conv1D`: y_l = Σ_j x_(l+j−p) W_j (+ b)."""
        kernel = self.kernel[...]
        k, length = kernel.shape[0], x.shape[-2]
        p = (k - 1) // 2
        pad = [(0, 0)] * (x.ndim - 2) + [(p, p), (0, 0)]
        xp = jnp.pad(x, pad, mode="wrap" if self.padding == "circular" else "constant")
        y = sum(jnp.einsum("...lc,cd->...ld", xp[..., j:j + length, :], kernel[j])
                for j in range(k))
        if self.bias is not None:
            y = y + self.bias[...]
        return y

    def __call__(self, h):
        phi = get_activation(self.activation)
        if self.block == "residual":
            return self.conv(h) if self.first else h + self.alpha * self.conv(phi(h))
        z = self.conv(h)
        if self.block == "batchnorm":  # as gradstudy.nn.Normalize("batchnorm")
            axis = tuple(range(z.ndim - 1))
            mean = jnp.mean(z, axis=axis, keepdims=True)
            var = jnp.var(z, axis=axis, keepdims=True)
            z = (z - mean) * jax.lax.rsqrt(var + BN_EPS)
            z = z * self.scale[...] + self.offset[...]
        return phi(z)


class NNXConvReadout(nnx.Module):
    """``y = W_out · mean over the length of h (of φ(h) for "residual") + b`` (the Linen
    :class:`Readout`)."""

    def __init__(self, spec: CNNSpec, params: dict):
        self.residual = spec.block == "residual"
        self.activation = spec.activation
        self.kernel = nnx.Param(jnp.asarray(params["dense"]["kernel"]))
        self.bias = nnx.Param(jnp.asarray(params["dense"]["bias"]))

    def __call__(self, h):
        if self.residual:
            h = get_activation(self.activation)(h)
        return jnp.mean(h, axis=-2) @ self.kernel[...] + self.bias[...]


class NNXConvNet(nnx.Module):
    """The NNX twin of ``ConvNet(spec)``: ``input_layer``, ``hidden/0..depth-2``,
    ``readout``; ``__call__(x) -> logits (batch, out_dim)`` for x of shape
    ``(batch, length)`` or ``(batch, length, in_channels)``."""

    def __init__(self, spec: CNNSpec, params: dict):
        self.spec = spec
        self.input_layer = NNXConvLayer(spec, params["input_layer"], first=True)
        hidden = params["hidden"]
        self.hidden = nnx.List([
            NNXConvLayer(spec, jax.tree.map(lambda leaf, i=layer: leaf[i], hidden))
            for layer in range(spec.depth - 1)])
        self.readout = NNXConvReadout(spec, params["readout"])

    def __call__(self, x):
        require_dtype(self.spec)
        if x.ndim == 2:
            x = x[..., None]
        h = self.input_layer(x)
        for layer in self.hidden:
            h = layer(h)
        return self.readout(h)


def nnx_convnet_from_params(spec: CNNSpec, params: dict) -> NNXConvNet:
    """The NNX twin of ``ConvNet(spec)`` holding the given Linen parameters (``params`` as
    :func:`sample_params` returns them: the stacked layers' leading layer axis is split)."""
    return NNXConvNet(spec, params)


def nnx_convnet(spec: CNNSpec, rngs: nnx.Rngs) -> NNXConvNet:
    """An NNX network of ``spec`` with weights drawn as sweeps draw them: those of
    ``sample_params(spec, rngs.params())``."""
    return NNXConvNet(spec, sample_params(spec, rngs.params()))
