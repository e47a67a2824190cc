"""Closed forms of the mean-field maps where no quadrature is needed: the length map and
``χ₁`` of the identity, of ReLU and of leaky ReLU, and ReLU's correlation map (the
arc-cosine kernel), the exact counterparts of :func:`gradstudy.theory.length_map`,
:func:`gradstudy.theory.chi1` and :func:`gradstudy.theory.correlation_map` for these
activations.

References:
    K. He, X. Zhang, S. Ren, J. Sun. "Delving deep into rectifiers: surpassing
    human-level performance on ImageNet classification." ICCV 2015.

    Y. Cho, L. K. Saul. "Kernel methods for deep learning." NeurIPS 2009.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradstudy.theory._quadrature import _safe_sqrt

__all__ = [
    "leaky_relu_chi1",
    "leaky_relu_length_map",
    "linear_chi1",
    "linear_length_map",
    "relu_chi1",
    "relu_correlation_map",
    "relu_length_map",
]


def linear_length_map(q, sigma_w2, sigma_b2):
    """Length map of ``φ(h) = h``: ``σ_w² q + σ_b²``."""
    return sigma_w2 * q + sigma_b2


def linear_chi1(sigma_w2):
    """``χ₁`` of ``φ(h) = h``: ``σ_w²``."""
    return sigma_w2


def relu_length_map(q, sigma_w2, sigma_b2):
    """Length map of ReLU: ``σ_w² q / 2 + σ_b²`` (He et al. 2015)."""
    return sigma_w2 * q / 2 + sigma_b2


def relu_chi1(sigma_w2):
    """``χ₁`` of ReLU: ``σ_w² / 2`` (independent of ``q``); critical at ``σ_w² = 2``."""
    return sigma_w2 / 2


def leaky_relu_length_map(q, sigma_w2, sigma_b2, negative_slope=0.01):
    """Length map of leaky ReLU with slope ``a``: ``σ_w² q (1 + a²) / 2 + σ_b²``."""
    return sigma_w2 * q * (1 + negative_slope**2) / 2 + sigma_b2


def leaky_relu_chi1(sigma_w2, negative_slope=0.01):
    """``χ₁`` of leaky ReLU with slope ``a``: ``σ_w² (1 + a²) / 2``."""
    return sigma_w2 * (1 + negative_slope**2) / 2


@jax.jit
def relu_correlation_map(c, q, sigma_w2, sigma_b2):
    """Closed-form ReLU correlation map (arc-cosine kernel, Cho & Saul 2009).

    Returns the output *correlation* ``c' = (σ_w² k(c) + σ_b²) / q'`` for two inputs of
    equal variance ``q`` and correlation ``c``, where
    ``k(c) = E[relu(u_a) relu(u_b)] = q / (2π) [√(1-c²) + (π - arccos c) c]`` and
    ``q' = σ_w² q / 2 + σ_b²`` is the output variance. This is :func:`correlation_map`
    for ReLU without quadrature error; ``c = 1`` maps to 1 for every ``q``, and
    ``dc'/dc`` is finite up to ``c = 1`` (where it equals ``relu_chi1 · q / q'``).
    """
    c = jnp.asarray(c)
    c = jnp.where(c > 1, 1.0, jnp.where(c < -1, -1.0, c))  # clip, but d/dc = 1 at ±1
    sin = _safe_sqrt(1 - c * c)
    # arccos c written as atan2 so that d/dc is finite at |c| = 1: the divergent
    # derivatives of sin and arccos cancel analytically (dk/dc = q (π - arccos c) / 2π).
    angle = jnp.arctan2(sin, c)
    kernel = q / (2 * jnp.pi) * (sin + (jnp.pi - angle) * c)
    return (sigma_w2 * kernel + sigma_b2) / relu_length_map(q, sigma_w2, sigma_b2)
