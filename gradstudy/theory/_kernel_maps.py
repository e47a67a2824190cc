"""C-maps and Q-maps of whole networks (Deep Kernel Shaping) and the tailored leaky ReLU
of TAT.

In the infinite-width limit a fully connected layer ``h' = W φ(h) + b`` (``W_ij ~ N(0,
σ_w²/N)``, ``b_i ~ N(0, σ_b²)``) maps the variance ``q`` of a pre-activation and the
correlation ``c`` of two inputs' pre-activations through the length map (Q-map) and the
correlation map (C-map) of :mod:`gradstudy.theory._mean_field`.  A network of ``L`` such
layers maps them through the composition of its layers' maps; DKS calls the composition
the network's C-map (Martens et al. 2021, Sec. 3) and shapes it, through the activation,
so that it is neither the constant 1 (every input looks alike: the network is untrainable
without skips) nor the identity.

For a leaky ReLU of negative slope ``α`` the C-map has a closed form (the arc-cosine kernel
of Cho & Saul 2009, degree 1, applied to the positive and negative parts of φ); with the
normalisation ``σ_w² = 2 / (1 + α²)``, ``σ_b² = 0`` (which makes ``q`` a fixed point of the
Q-map for every ``q``) it is

    ``C_α(c) = c + (1 − α)² / (π (1 + α²)) · (√(1 − c²) − c arccos c)``,

TAT's "tailored ReLU" C-map (Zhang et al. 2022, Sec. 4.2; the factor ``√(2/(1 + α²))`` of
their activation is the ``σ_w`` here, equivalent for a positively homogeneous φ).  TAT
chooses ``α`` so that the network's C-map at ``c = 0`` equals a target ``η`` (``η = 0.9``
by default): :func:`tat_leaky_relu_slope`.

References:
    J. Martens, A. Ballard, G. Desjardins, G. Swirszcz, V. Dalibard, J. Sohl-Dickstein,
    S. S. Schoenholz. "Rapid training of deep neural networks without skip connections or
    normalization layers using Deep Kernel Shaping." arXiv:2110.01765 (2021), Sec. 3
    (Q/C-maps of layers and their composition for the network).

    G. Zhang, A. Botev, J. Martens. "Deep learning without shortcuts: shaping the kernel
    with tailored rectifiers." ICLR 2022, Sec. 4 (TReLU: the normalised leaky ReLU, its
    C-map, and the slope solving C_net(0) = η).

    Y. Cho, L. K. Saul. "Kernel methods for deep learning." NeurIPS 2009, Sec. 2.1 (the
    arc-cosine kernel ``k_1 = ‖x‖‖y‖ J_1(θ) / π``, ``J_1(θ) = sin θ + (π − θ) cos θ``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from gradstudy.theory._closed_forms import leaky_relu_length_map
from gradstudy.theory._mean_field import _correlation_map, _length_map
from gradstudy.theory._quadrature import _promoted_float_dtype, _public, _safe_sqrt

__all__ = [
    "composed_correlation_map",
    "leaky_relu_correlation_map",
    "tat_leaky_relu_c_map",
    "tat_leaky_relu_c_map_trajectory",
    "tat_leaky_relu_network_c_map",
    "tat_leaky_relu_sigma_w2",
    "tat_leaky_relu_slope",
]

TAT_ETA = 0.9  # Zhang et al. 2022: the default target of C_net(0)
_BISECTION_STEPS = 60  # halves [0, 1] to below float64 resolution


def _cho_saul_j1(c):
    """``(√(1 − c²) − c arccos c, √(1 − c²) + (π − arccos c) c)``, clipped to ``|c| ≤ 1``:
    ``2π E[relu(u) relu(−v)]`` and ``2π E[relu(u) relu(v)]`` at unit variances."""
    c = jnp.clip(jnp.asarray(c), -1.0, 1.0)
    sin = _safe_sqrt(1 - c * c)
    angle = jnp.arctan2(sin, c)  # arccos c with a finite derivative at |c| = 1
    return sin - c * angle, sin + (jnp.pi - angle) * c


@jax.jit
def leaky_relu_correlation_map(c, q, sigma_w2, sigma_b2, negative_slope):
    """Closed-form correlation map of leaky ReLU with negative slope ``α``.

    Writing φ(x) = relu(x) − α relu(−x), the covariance of two pre-activations of
    variance ``q`` and correlation ``c`` is
    ``E[φ(u_a) φ(u_b)] = q [(1 + α²) k(c) − 2α k(−c)]`` with ``k(c) = J_1(arccos c) / 2π``
    the degree-1 arc-cosine kernel at unit variance (``k(−c)`` is ``E[relu(u) relu(−v)]``),
    ``= q [(1 + α²) c / 2 + (1 − α)² (√(1 − c²) − c arccos c) / 2π]``.  Returns the output
    correlation ``c' = (σ_w² E[φ(u_a) φ(u_b)] + σ_b²) / q'``, ``q'`` the leaky-ReLU length
    map.  ``α = 0`` is :func:`gradstudy.theory.relu_correlation_map`.

    Args:
        c: input correlation(s) in [−1, 1] (clipped).
        q: pre-activation variance.
        sigma_w2: weight variance σ_w².
        sigma_b2: bias variance σ_b².
        negative_slope: α, the slope below 0.

    Returns:
        The output correlation, broadcast over the arguments.

    References:
        Cho & Saul (2009), Sec. 2.1 (``J_1``); Zhang et al. (2022), Sec. 4.2 (the
        leaky-ReLU C-map).
    """
    alpha = jnp.asarray(negative_slope)
    cross, _ = _cho_saul_j1(c)
    c = jnp.clip(jnp.asarray(c), -1.0, 1.0)
    kernel = q * ((1 + alpha**2) * c / 2 + (1 - alpha) ** 2 * cross / (2 * jnp.pi))
    q_next = leaky_relu_length_map(q, sigma_w2, sigma_b2, alpha)
    return (sigma_w2 * kernel + sigma_b2) / q_next


def tat_leaky_relu_sigma_w2(negative_slope):
    """``σ_w² = 2 / (1 + α²)``: the normalisation under which leaky ReLU's Q-map is the
    identity (``E[φ(√q z)²] = q (1 + α²) / 2``), TAT's ``√(2/(1 + α²))`` factor moved into
    the weights (Zhang et al. 2022, Sec. 4.2)."""
    return 2.0 / (1.0 + jnp.asarray(negative_slope) ** 2)


@jax.jit
def tat_leaky_relu_c_map(c, negative_slope):
    """One layer's C-map of the normalised leaky ReLU (σ_w² = 2/(1 + α²), σ_b² = 0):
    ``c + (1 − α)² / (π (1 + α²)) · (√(1 − c²) − c arccos c)`` (Zhang et al. 2022,
    Sec. 4.2), independent of ``q``."""
    alpha = jnp.asarray(negative_slope)
    cross, _ = _cho_saul_j1(c)
    return jnp.clip(jnp.asarray(c), -1.0, 1.0) + (1 - alpha) ** 2 / (
        jnp.pi * (1 + alpha**2)) * cross


@functools.partial(jax.jit, static_argnames=("n_layers",))
def tat_leaky_relu_network_c_map(c, negative_slope, n_layers: int):
    """The C-map of ``n_layers`` normalised leaky-ReLU layers: ``C_α^{∘n_layers}(c)``."""
    return lax.fori_loop(0, n_layers, lambda _, x: tat_leaky_relu_c_map(x, negative_slope),
                         jnp.asarray(c, jnp.result_type(c, negative_slope, float)))


@functools.partial(jax.jit, static_argnames=("n_layers",))
def tat_leaky_relu_c_map_trajectory(c, negative_slope, n_layers: int):
    """``[c, C_α(c), …, C_α^{∘n_layers}(c)]`` of the normalised leaky ReLU (closed form,
    α traced: one compiled program for every slope, ReLU's α = 0 included).

    Returns:
        Array of shape ``(n_layers + 1, *broadcast_shape(c, negative_slope))``.
    """
    shape = jnp.broadcast_shapes(jnp.shape(c), jnp.shape(negative_slope))
    c0 = jnp.broadcast_to(jnp.asarray(c, jnp.result_type(c, negative_slope, float)), shape)

    def step(x, _):
        x = tat_leaky_relu_c_map(x, negative_slope)
        return x, x

    return jnp.concatenate([c0[None], lax.scan(step, c0, None, length=n_layers)[1]])


@functools.partial(jax.jit, static_argnames=("n_layers",))
def tat_leaky_relu_slope(n_layers: int, eta=TAT_ETA):
    """TAT's negative slope: the ``α`` in [0, 1] with ``C_α^{∘n_layers}(0) = η``.

    The composed map at 0 decreases from ReLU's value (``α = 0``) to 0 (``α = 1``, the
    identity): each layer's C-map is increasing in ``c`` and in its coefficient
    ``(1 − α)²/(1 + α²)``, which decreases on [0, 1]; so bisection finds the unique root.
    NaN where ``η`` is not in ``(0, C_0^{∘n_layers}(0))`` (no slope reaches it; e.g. a
    shallow network whose ReLU C-map at 0 is still below η).  Use float64 for a slope
    accurate to rounding (``jax.enable_x64``).

    Args:
        n_layers: the number of nonlinear layers the network's C-map composes.
        eta: the target ``C_net(0)``; TAT's default 0.9.

    Returns:
        The slope α (a scalar; vmappable over ``eta``).

    References:
        Zhang et al. (2022), Sec. 4.2 (TReLU: α from ``C_f^{∘L}(0) = η``).
    """
    eta = jnp.asarray(eta, jnp.result_type(eta, float))

    def excess(alpha):  # > 0 where the slope is too small (the net's C(0) above η)
        return tat_leaky_relu_network_c_map(jnp.zeros_like(eta), alpha, n_layers) - eta

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = excess(mid) > 0
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = lax.fori_loop(0, _BISECTION_STEPS, halve, (jnp.zeros_like(eta),
                                                         jnp.ones_like(eta)))
    reachable = (excess(jnp.zeros_like(eta)) > 0) & (eta > 0)
    return jnp.where(reachable, 0.5 * (lo + hi), jnp.nan)


def _composed_correlation_map(phi, kinks, c, q, sigma_w2, sigma_b2, n_layers):
    shape = jnp.broadcast_shapes(jnp.shape(c), jnp.shape(q))
    dtype = _promoted_float_dtype(c, q, sigma_w2, sigma_b2)
    c0 = jnp.broadcast_to(jnp.asarray(c, dtype), shape)
    q0 = jnp.broadcast_to(jnp.asarray(q, dtype), shape)

    def step(carry, _):
        c, q = carry
        nxt = (_correlation_map(phi, kinks, q, c, sigma_w2, sigma_b2),
               _length_map(phi, kinks, q, sigma_w2, sigma_b2))
        return nxt, nxt

    _, (cs, qs) = lax.scan(step, (c0, q0), None, length=n_layers)
    return jnp.concatenate([c0[None], cs]), jnp.concatenate([q0[None], qs])


@_public(static=("n_layers",))
def composed_correlation_map(phi, kinks, c, q, sigma_w2, sigma_b2, n_layers: int):
    """Correlations and variances through ``n_layers`` layers: the network's C-map.

    Iterates ``c ← C(c; q)``, ``q ← Q(q)`` (:func:`gradstudy.theory.correlation_map`,
    :func:`gradstudy.theory.length_map`, by quadrature: any activation) from the
    pre-activation correlation ``c`` and variance ``q`` of the first layer.  The C-map
    depends on ``q`` unless φ is positively homogeneous, so both are carried.  One
    compiled scan per activation and ``n_layers``.

    Args:
        phi: activation name or elementwise JAX function.
        c: pre-activation correlation of two inputs at the first layer (array-like).
        q: their (equal) pre-activation variance there.
        sigma_w2: σ_w² of the layers.
        sigma_b2: σ_b² of the layers.
        n_layers: number of layer maps applied.

    Returns:
        ``(cs, qs)``, each of shape ``(n_layers + 1, *broadcast_shape(c, q))``: entry ``l``
        after ``l`` maps (entry 0 is the input).

    References:
        Martens et al. (2021), Sec. 3 (the network's C-map is the composition of its
        layers' C-maps); Poole et al. (2016) (the per-layer maps).
    """
    return _composed_correlation_map(phi, kinks, c, q, sigma_w2, sigma_b2, n_layers)
