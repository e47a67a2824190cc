"""Normalisation layers shared by the model families (LayerNorm, BatchNorm with batch
statistics), written out so that every operation is visible to the probes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPS = 1e-5


class Normalize(nn.Module):
    """LayerNorm (feature axis) or BatchNorm with batch statistics (every axis but the
    features: the batch, and for a conv stack's ``(batch, length, channels)`` also the
    positions)."""

    kind: str
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z):
        if self.kind == "none":
            return z
        axis = -1 if self.kind == "layernorm" else tuple(range(z.ndim - 1))
        mean = jnp.mean(z, axis=axis, keepdims=True)
        var = jnp.var(z, axis=axis, keepdims=True)
        z = (z - mean) * jax.lax.rsqrt(var + BN_EPS)
        scale = self.param("scale", nn.initializers.ones, (z.shape[-1],), self.dtype)
        offset = self.param("offset", nn.initializers.zeros, (z.shape[-1],), self.dtype)
        return z * scale + offset
