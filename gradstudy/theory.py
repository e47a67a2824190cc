"""Mean-field theory of signal propagation in deep fully connected networks.

The network is ``h^l = W^l phi(h^{l-1}) + b^l`` with ``W_ij ~ N(0, sigma_w2 / N)`` and
``b_i ~ N(0, sigma_b2)``. In the infinite-width limit the pre-activations of a layer are
Gaussian with variance ``q^l`` and the correlation between two inputs is ``c^l``; both
follow deterministic maps whose fixed points and slopes predict whether gradients vanish
(ordered phase, ``chi1 < 1``) or explode (chaotic phase, ``chi1 > 1``) with depth.

Conventions:
    * ``sigma_w2`` and ``sigma_b2`` are *variances* (``σ_w²``, ``σ_b²``).
    * ``phi`` is any elementwise JAX function ``Array -> Array``. Its derivatives are
      taken with forward-mode autodiff (``jax.jvp`` with a tangent of ones), which is
      the elementwise derivative because ``phi`` acts elementwise.
    * Gaussian integrals ``∫Dz f(z)`` (``z ~ N(0, 1)``) use probabilists'
      Gauss–Hermite quadrature of ``degree`` nodes. It is exact for polynomials of
      degree ``< 2 * degree`` and converges fast for smooth ``phi`` (tanh, erf, ...)
      at moderate ``q``. The integrand's features have width ~``1/√q`` in ``z``, so
      the error grows with ``q``: for tanh at ``degree=64`` the relative error of
      ``chi1`` is ~5e-11 at ``q = 0.5``, 2e-7 at ``q = 1``, 8e-4 at ``q = 3`` and 1e-2
      at ``q = 5`` (length map: 2e-12, 7e-9, 3e-5, 4e-4); ``degree=300`` gives 4e-10
      at ``q = 3`` (numpy's rule overflows above ~350 nodes). For kinked ``phi``
      (ReLU) the 1-D integrals of ``relu²`` and ``relu'²`` are still exact for even
      ``degree`` (the nodes are symmetric and none sits on the kink), but the 2-D
      correlation integrals are only accurate to a few 1e-3; use the closed forms
      (``relu_*``) there.
    * Every function is pure JAX: it can be ``jit``-ed, ``vmap``-ed and differentiated
      with respect to ``q``, ``c``, ``sigma_w2`` and ``sigma_b2``. Loops have fixed trip
      counts (``lax.scan`` / ``lax.fori_loop``). Arrays broadcast; the dtype follows the
      inputs (float64 only when ``jax_enable_x64`` is on).
    * ``phi``/``f``, ``degree``, ``n_layers``, ``n_iter``/``n_newton`` are static (jit)
      arguments: pass a function object that is reused (e.g. ``jnp.tanh``) rather than a
      fresh ``lambda`` per call, or each call recompiles.

References:
    B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli. "Exponential
    expressivity in deep neural networks through transient chaos." NeurIPS 2016.

    S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein. "Deep information
    propagation." ICLR 2017.

    Y. Cho, L. K. Saul. "Kernel methods for deep learning." NeurIPS 2009.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
Activation = Callable[[Array], Array]

__all__ = [
    "MeanFieldPoint",
    "backprop_factor_trajectory",
    "chi1",
    "chi_c",
    "correlation_map",
    "critical_sigma_w2",
    "depth_scale_c",
    "depth_scale_q",
    "fixed_point_c",
    "fixed_point_q",
    "gauss_hermite",
    "gaussian_expectation",
    "leaky_relu_chi1",
    "leaky_relu_length_map",
    "length_map",
    "linear_chi1",
    "linear_length_map",
    "mean_field",
    "q_trajectory",
    "relu_chi1",
    "relu_correlation_map",
    "relu_length_map",
]

_STATIC = ("f", "phi", "degree", "n_layers", "n_iter", "n_newton")


def _jit(fun):
    """``jax.jit`` with the integer/callable arguments of ``fun`` marked static."""
    names = inspect.signature(fun).parameters
    return jax.jit(fun, static_argnames=[n for n in _STATIC if n in names])


# --------------------------------------------------------------------------- helpers
@functools.cache
def _hermegauss(degree: int) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
        raise ValueError(f"numpy's hermegauss overflows at degree={degree} (use <= 350)")
    return nodes, weights / np.sqrt(2.0 * np.pi)


def _float_dtype(*args) -> np.dtype:
    """Floating dtype of ``args`` after promotion (float32 unless x64 is on)."""
    return jnp.result_type(*args, float)


def _safe_sqrt(x: Array) -> Array:
    """``sqrt(max(x, 0))`` whose gradient is 0 (not inf/NaN) where ``x <= 0``."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _derivative(f: Activation) -> Activation:
    """Elementwise derivative of an elementwise function (forward mode)."""

    def df(x):
        return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    return df


def _log_depth(rate: Array) -> Array:
    """``-1 / log(rate)``, with ``inf`` where ``log(rate) >= 0`` (no decay)."""
    log = jnp.log(rate)
    decays = log < 0
    return jnp.where(decays, -1.0 / jnp.where(decays, log, -1.0), jnp.inf)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 4, 5, 6, 7))
def _fixed_point(f, df, x0, params, n_iter, n_newton, lo, hi):
    """Stable fixed point of ``x <- f(x, params)``; ``df = ∂f/∂x`` (elementwise).

    ``n_iter`` plain iterations, then ``n_newton`` steps of bracketed Newton
    (``rtsafe``) on ``r(x) = f(x) - x``. Assumes ``r >= 0`` below and ``r <= 0``
    above the wanted fixed point inside ``[lo, hi]`` (``hi`` may be ``inf``). Each step
    shrinks the bracket ``[a, b]`` with the sign of ``r``, takes the Newton step if it
    lands inside, and otherwise bisects (or, while ``b = inf``, takes the plain step).
    Newton removes the slow (algebraic) convergence of plain iteration near
    criticality, where ``f'(x*) -> 1``; the bracket stops it from jumping to another
    fixed point (e.g. from near ``c* = 0`` to ``c = -1`` for tanh).

    Derivatives (w.r.t. ``params``; none w.r.t. ``x0``) come from the implicit function
    theorem, ``dx* = ∂f/∂θ dθ / (1 - ∂f/∂x)``, not from unrolling the loops. Where
    ``∂f/∂x >= 1`` (not strictly stable, e.g. exactly critical) the derivative is 0.
    """

    # One loop for both phases (a second loop would double the XLA compile time).
    def step(i, state):
        x, a, b = state
        fx = f(x, params)
        r = fx - x
        a = jnp.where(r >= 0, jnp.maximum(a, x), a)
        b = jnp.where(r <= 0, jnp.minimum(b, x), b)
        slope = df(x, params) - 1.0
        ok = (i >= n_iter) & (slope < 0)
        x_newton = x - r / jnp.where(ok, slope, -1.0)
        ok = ok & (x_newton >= a) & (x_newton <= b)  # False for NaN
        fallback = jnp.where((i >= n_iter) & jnp.isfinite(b), 0.5 * (a + b), fx)
        return jnp.where(ok, x_newton, fallback), a, b

    bounds = (jnp.full_like(x0, lo), jnp.full_like(x0, hi))
    return lax.fori_loop(0, n_iter + n_newton, step, (x0, *bounds))[0]


@_fixed_point.defjvp
def _fixed_point_jvp(f, df, n_iter, n_newton, lo, hi, primals, tangents):
    x0, params = primals
    x = _fixed_point(f, df, x0, params, n_iter, n_newton, lo, hi)
    _, f_dot = jax.jvp(lambda p: f(x, p), (params,), (tangents[1],))
    denom = 1.0 - df(x, params)
    stable = denom > 0
    return x, jnp.where(stable, f_dot / jnp.where(stable, denom, 1.0), 0.0)


# ------------------------------------------------------------------------ quadrature
def gauss_hermite(degree: int = 64, dtype=None) -> tuple[Array, Array]:
    """Probabilists' Gauss–Hermite rule for ``E_{z ~ N(0,1)}[f(z)] ≈ Σ_i w_i f(z_i)``.

    Args:
        degree: number of nodes; the rule is exact for polynomials of degree
            ``<= 2 * degree - 1``.
        dtype: dtype of the returned arrays (default: JAX's default float dtype).

    Returns:
        ``(nodes, weights)``, each of shape ``(degree,)``; the weights sum to 1.
    """
    if int(degree) < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    nodes, weights = _hermegauss(int(degree))
    return jnp.asarray(nodes, dtype), jnp.asarray(weights, dtype)


def _expectation(f: Activation, q, degree: int) -> Array:
    q = jnp.asarray(q)
    dtype = _float_dtype(q)
    z, w = gauss_hermite(degree, dtype)
    x = _safe_sqrt(q.astype(dtype))[..., None] * z
    return jnp.sum(w * f(x), axis=-1)


@_jit
def gaussian_expectation(f: Activation, q, degree: int = 64) -> Array:
    """``E_{z ~ N(0,1)}[f(sqrt(q) z)]`` by Gauss–Hermite quadrature.

    Args:
        f: elementwise function (a static argument under ``jit``).
        q: variance(s), scalar or array (``q <= 0`` is treated as 0; the derivative
            w.r.t. ``q`` at exactly ``q = 0`` is returned as 0, not ``E[f''(0)]/2``).
        degree: quadrature degree.

    Returns:
        Array with the shape of ``q``.
    """
    return _expectation(f, q, degree)


def _bivariate_expectation(f: Activation, g: Activation, q, c, degree: int) -> Array:
    """``E[f(u_a) g(u_b)]``, ``u_a = √q z1``, ``u_b = √q (c z1 + √(1-c²) z2)``."""
    q, c = jnp.broadcast_arrays(jnp.asarray(q), jnp.asarray(c))
    dtype = _float_dtype(q, c)
    z, w = gauss_hermite(degree, dtype)
    z1, z2, w12 = z[:, None], z[None, :], w[:, None] * w[None, :]
    s = _safe_sqrt(q.astype(dtype))[..., None, None]
    c = c.astype(dtype)[..., None, None]
    u_a = s * z1
    u_b = s * (c * z1 + _safe_sqrt(1.0 - c * c) * z2)
    return jnp.sum(w12 * f(u_a) * g(u_b), axis=(-2, -1))


# ----------------------------------------------------------------------- length map
@_jit
def length_map(phi: Activation, q, sigma_w2, sigma_b2, degree: int = 64) -> Array:
    """Variance map ``q^{l+1} = σ_w² E[φ(√q^l z)²] + σ_b²`` (Poole et al. 2016)."""
    return sigma_w2 * _expectation(lambda h: jnp.square(phi(h)), q, degree) + sigma_b2


@_jit
def q_trajectory(phi: Activation, q0, sigma_w2, sigma_b2, n_layers: int, degree: int = 64) -> Array:
    """Pre-activation variances ``[q0, L(q0), L(L(q0)), ...]`` over ``n_layers`` layers.

    Returns:
        Array of shape ``(n_layers + 1, *broadcast_shape(q0, sigma_w2, sigma_b2))``.
    """
    shape = jnp.broadcast_shapes(jnp.shape(q0), jnp.shape(sigma_w2), jnp.shape(sigma_b2))
    q0 = jnp.broadcast_to(jnp.asarray(q0, _float_dtype(q0, sigma_w2, sigma_b2)), shape)

    def step(q, _):
        q_next = length_map(phi, q, sigma_w2, sigma_b2, degree)
        return q_next, q_next

    _, qs = lax.scan(step, q0, None, length=n_layers)
    return jnp.concatenate([q0[None], qs])


@_jit
def fixed_point_q(
    phi: Activation,
    sigma_w2,
    sigma_b2,
    q_init=1.0,
    n_iter: int = 500,
    degree: int = 64,
    n_newton: int = 60,
) -> Array:
    """Fixed point ``q*`` of the length map.

    Iterates the length map ``n_iter`` times from ``q_init`` (what a deep network does
    layer by layer), then polishes with ``n_newton`` bracketed Newton steps on
    ``L(q) - q`` (set ``n_newton=0`` for pure iteration). Plain iteration converges
    geometrically with rate ``L'(q*)`` but only like ``1/l`` at criticality (e.g. tanh,
    ``σ_b² = 0``, ``σ_w² = 1``, where ``q^500 ≈ 1e-3``); Newton fixes this (linearly,
    rate 1/2, at that double root). For tanh with ``σ_b² = 0`` and ``σ_w² <= 1`` the
    result is ~0 (``q* = 0``). ``q_init = 0`` stays at the (unstable) fixed point 0
    when ``σ_b² = φ(0) = 0``. If the map diverges (e.g. ReLU with ``σ_w² > 2``) so
    does ``q*``.

    Gradients w.r.t. ``sigma_w2``/``sigma_b2`` use the implicit function theorem,
    ``dq* = (∂L/∂θ) dθ / (1 - L'(q*))`` (set to 0 where ``L'(q*) >= 1``).

    Returns:
        ``q*`` with the broadcast shape of ``sigma_w2``, ``sigma_b2`` and ``q_init``.
    """
    shape = jnp.broadcast_shapes(jnp.shape(q_init), jnp.shape(sigma_w2), jnp.shape(sigma_b2))
    q0 = jnp.broadcast_to(jnp.asarray(q_init, _float_dtype(q_init, sigma_w2, sigma_b2)), shape)

    def f(q, params):
        return length_map(phi, q, *params, degree)

    def df(q, params):
        return jax.jvp(lambda q: f(q, params), (q,), (jnp.ones_like(q),))[1]

    params = (sigma_w2, sigma_b2)
    return _fixed_point(f, df, q0, params, n_iter, n_newton, 0.0, jnp.inf)


# ------------------------------------------------------------------- gradient factor
@_jit
def chi1(phi: Activation, q, sigma_w2, degree: int = 64) -> Array:
    """``χ₁ = σ_w² E[φ'(√q z)²]`` (Poole et al. 2016; Schoenholz et al. 2017).

    The per-layer factor of the back-propagated squared gradient norm at pre-activation
    variance ``q`` (pass ``q*`` for the asymptotic rate, or a trajectory of ``q^l``).
    Gradients vanish with depth when ``χ₁(q*) < 1`` and explode when ``χ₁(q*) > 1``.
    """
    dphi = _derivative(phi)
    return sigma_w2 * _expectation(lambda h: jnp.square(dphi(h)), q, degree)


@_jit
def backprop_factor_trajectory(
    phi: Activation, q0, sigma_w2, sigma_b2, n_layers: int, degree: int = 64
) -> Array:
    """``χ₁`` along the variance trajectory: entry ``l`` is ``σ_w² E[φ'(√q^l z)²]``.

    This is the predicted ratio ``‖δ^l‖² / ‖δ^{l+1}‖²`` where ``δ^l = ∂loss/∂h^l`` and
    ``h^l`` has variance ``q^l = q_trajectory(...)[l]``. Length ``n_layers + 1``.
    """
    qs = q_trajectory(phi, q0, sigma_w2, sigma_b2, n_layers, degree)
    return chi1(phi, qs, sigma_w2, degree)


# ------------------------------------------------------------------ correlation map
@_jit
def chi_c(phi: Activation, q, c, sigma_w2, degree: int = 64) -> Array:
    """``χ_c = σ_w² ∫Du₁Du₂ φ'(u_a) φ'(u_b)`` (Schoenholz et al. 2017).

    ``u_a = √q z₁``, ``u_b = √q (c z₁ + √(1-c²) z₂)``. At ``q = q*`` it is the slope of
    the correlation map at ``c``; ``χ_c(c=1) = χ₁``. Uses a ``degree²``-node rule.
    """
    dphi = _derivative(phi)
    return sigma_w2 * _bivariate_expectation(dphi, dphi, q, c, degree)


@_jit
def correlation_map(phi: Activation, q, c, sigma_w2, sigma_b2, degree: int = 64) -> Array:
    """Correlation map ``c' = (σ_w² E[φ(u_a) φ(u_b)] + σ_b²) / q'`` (Poole et al. 2016).

    For two inputs of equal pre-activation variance ``q`` and correlation ``c``; the
    outputs have variance ``q' = length_map(q)``, which normalises the new covariance.
    At the fixed point ``q = q*`` we have ``q' = q*`` and this is the usual C-map with
    ``c = 1`` an exact fixed point. Undefined (NaN) when ``q' = 0``. Autodiff w.r.t.
    ``c`` is not reliable at ``|c| = 1`` exactly (``√(1-c²)`` is not differentiable
    there); use :func:`chi_c` (``dc'/dc = chi_c · q / q'``, Price's theorem) instead.
    """
    cov = _bivariate_expectation(phi, phi, q, c, degree)
    return (sigma_w2 * cov + sigma_b2) / length_map(phi, q, sigma_w2, sigma_b2, degree)


@_jit
def fixed_point_c(
    phi: Activation,
    q,
    sigma_w2,
    sigma_b2,
    c_init=0.5,
    n_iter: int = 500,
    degree: int = 64,
    n_newton: int = 60,
) -> Array:
    """Stable fixed point ``c*`` of the correlation map at variance ``q`` (pass ``q*``).

    ``n_iter`` plain iterations from ``c_init`` then ``n_newton`` bracketed Newton
    steps (slope from Price's theorem: ``dc'/dc = σ_w² q E[φ'(u_a)φ'(u_b)] / q'``). In
    the ordered phase ``c* = 1``; in the chaotic phase a ``c* < 1`` (``c* = 0`` for
    odd ``φ`` with ``σ_b² = 0``) attracts every ``c_init < 1``. Plain iteration is
    slow near criticality (rate ``χ_c(c*) -> 1``); the bracketed Newton steps
    converge anyway. Gradients (w.r.t. ``q``, ``sigma_w2``, ``sigma_b2``) use the
    implicit function theorem.
    """
    shape = jnp.broadcast_shapes(
        jnp.shape(q), jnp.shape(c_init), jnp.shape(sigma_w2), jnp.shape(sigma_b2)
    )
    c0 = jnp.broadcast_to(jnp.asarray(c_init, _float_dtype(q, c_init, sigma_w2, sigma_b2)), shape)

    def f(c, params):
        return correlation_map(phi, params[0], c, *params[1:], degree)

    def df(c, params):
        q, sigma_w2, sigma_b2 = params
        return (
            chi_c(phi, q, c, sigma_w2, degree) * q / length_map(phi, q, sigma_w2, sigma_b2, degree)
        )

    params = (q, sigma_w2, sigma_b2)
    return _fixed_point(f, df, c0, params, n_iter, n_newton, -1.0, 1.0)


# ---------------------------------------------------------------------- depth scales
@_jit
def depth_scale_q(phi: Activation, q_star, sigma_w2, degree: int = 64) -> Array:
    """Depth scale of the length map (Schoenholz et al. 2017, eq. 7).

    ``ξ_q = -1 / log[χ₁ + σ_w² E[φ''(√q* z) φ(√q* z)]]``, the depth over which ``q^l``
    approaches ``q*``; the bracket is ``L'(q*)``. ``inf`` where the rate is ``>= 1``.
    """
    dphi = _derivative(phi)
    d2phi = _derivative(dphi)
    curvature = _expectation(lambda h: d2phi(h) * phi(h), q_star, degree)
    return _log_depth(chi1(phi, q_star, sigma_w2, degree) + sigma_w2 * curvature)


@_jit
def depth_scale_c(phi: Activation, q_star, c_star, sigma_w2, degree: int = 64) -> Array:
    """``ξ_c = -1 / log χ_c(q*, c*)`` (Schoenholz et al. 2017, eq. 9).

    Depth over which correlations approach ``c*``; in the ordered phase ``c* = 1``
    and ``ξ_c = -1 / log χ₁``. ``χ_c(c*) < 1`` in both phases and ``-> 1`` at the
    order/chaos transition, where ``ξ_c`` diverges; ``inf`` is returned where
    ``χ_c(c*) >= 1``.
    Schoenholz et al. find networks trainable up to depth ≈ 6 ξ_c.
    """
    return _log_depth(chi_c(phi, q_star, c_star, sigma_w2, degree))


# ----------------------------------------------------------------- phase transition
def _chi1_at_fixed_point(phi, sigma_w2, sigma_b2, n_iter, degree):
    q_star = fixed_point_q(phi, sigma_w2, sigma_b2, n_iter=n_iter, degree=degree)
    return chi1(phi, q_star, sigma_w2, degree)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 4, 5))
def _critical(phi, sigma_b2, lo, hi, n_iter, degree):
    shape = jnp.broadcast_shapes(jnp.shape(sigma_b2), jnp.shape(lo), jnp.shape(hi))
    dtype = _float_dtype(sigma_b2, lo, hi)
    lo = jnp.broadcast_to(jnp.asarray(lo, dtype), shape)
    hi = jnp.broadcast_to(jnp.asarray(hi, dtype), shape)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        chaotic = _chi1_at_fixed_point(phi, mid, sigma_b2, 500, degree) > 1.0
        return jnp.where(chaotic, lo, mid), jnp.where(chaotic, mid, hi)

    # no order-to-chaos transition inside [lo, hi] (e.g. sigmoid, whose χ₁ stays < 1):
    # NaN rather than an endpoint that would read as a critical point
    bracketed = (_chi1_at_fixed_point(phi, lo, sigma_b2, 500, degree) <= 1.0) & (
        _chi1_at_fixed_point(phi, hi, sigma_b2, 500, degree) > 1.0)
    lo, hi = lax.fori_loop(0, n_iter, bisect, (lo, hi))
    return jnp.where(bracketed, 0.5 * (lo + hi), jnp.nan)


@_critical.defjvp
def _critical_jvp(phi, n_iter, degree, primals, tangents):
    # Implicit function theorem on g(σ_w², σ_b²) = χ₁(q*(σ_w², σ_b²), σ_w²) - 1 = 0.
    sigma_b2, lo, hi = primals
    d_sigma_b2 = tangents[0]
    crit = _critical(phi, sigma_b2, lo, hi, n_iter, degree)

    def g(w, b):
        return _chi1_at_fixed_point(phi, w, b, 500, degree)

    sigma_b2 = jnp.broadcast_to(jnp.asarray(sigma_b2, crit.dtype), crit.shape)
    d_sigma_b2 = jnp.broadcast_to(jnp.asarray(d_sigma_b2, crit.dtype), crit.shape)
    _, g_w = jax.jvp(g, (crit, sigma_b2), (jnp.ones_like(crit), jnp.zeros_like(crit)))
    _, g_b = jax.jvp(g, (crit, sigma_b2), (jnp.zeros_like(crit), d_sigma_b2))
    return crit, -g_b / g_w


@_jit
def critical_sigma_w2(
    phi: Activation, sigma_b2, lo=0.5, hi=4.0, n_iter: int = 60, degree: int = 64
) -> Array:
    """Order/chaos boundary: the ``σ_w²`` with ``χ₁(q*(σ_w², σ_b²)) = 1``.

    Bisection with ``n_iter`` steps on ``[lo, hi]``; NaN when the interval does not
    bracket the transition (ordered at ``lo``, chaotic at ``hi``). ``q*`` comes from
    :func:`fixed_point_q` with its defaults. The derivative w.r.t. ``sigma_b2`` uses the
    implicit function theorem. For tanh, ``σ_b² = 0`` gives 1 (there ``χ₁ = σ_w²`` below
    the transition because ``q* = 0``).
    """
    return _critical(phi, sigma_b2, lo, hi, n_iter, degree)


class MeanFieldPoint(NamedTuple):
    """Mean-field summary of an initialisation ``(σ_w², σ_b²)``."""

    q_star: Array
    """Fixed point of the length map."""
    chi1: Array
    """``χ₁(q*)``: per-layer factor of back-propagated squared gradient norms."""
    c_star: Array
    """Stable fixed point of the correlation map (1 in the ordered phase)."""
    xi_q: Array
    """Depth scale of the variance map."""
    xi_c: Array
    """Depth scale of the correlation map (trainable depth ≈ 6 ξ_c)."""


@_jit
def mean_field(phi: Activation, sigma_w2, sigma_b2, degree: int = 64) -> MeanFieldPoint:
    """Fixed points, ``χ₁`` and depth scales at ``(σ_w², σ_b²)``.

    ``c* = 1`` where ``χ₁(q*) <= 1`` (ordered or critical: ``c = 1`` is then stable);
    otherwise ``c*`` comes from :func:`fixed_point_c` started at ``c = 0.5``.
    """
    q_star = fixed_point_q(phi, sigma_w2, sigma_b2, degree=degree)
    x1 = chi1(phi, q_star, sigma_w2, degree)
    # The correlation map is 0/0 at q* = 0 (σ_b² = φ(0) = 0, ordered phase; also for
    # q* so small that products underflow): keep that (discarded) branch finite so that
    # gradients through jnp.where stay finite too.
    tiny = jnp.sqrt(jnp.finfo(q_star.dtype).tiny)
    q_safe = jnp.where(q_star > tiny, q_star, 1.0)
    c_chaotic = fixed_point_c(phi, q_safe, sigma_w2, sigma_b2, degree=degree)
    c_star = jnp.where(x1 <= 1.0, jnp.ones_like(c_chaotic), c_chaotic)
    return MeanFieldPoint(
        q_star=q_star,
        chi1=x1,
        c_star=c_star,
        xi_q=depth_scale_q(phi, q_star, sigma_w2, degree),
        xi_c=depth_scale_c(phi, q_star, c_star, sigma_w2, degree),
    )


# ---------------------------------------------------------------------- closed forms
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
