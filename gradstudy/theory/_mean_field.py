"""Mean-field theory of signal propagation in deep fully connected networks.

The network is ``h^l = W^l phi(h^{l-1}) + b^l`` with ``W_ij ~ N(0, sigma_w2 / N)`` and
``b_i ~ N(0, sigma_b2)``. In the infinite-width limit the pre-activations of a layer are
Gaussian with variance ``q^l`` and the correlation between two inputs is ``c^l``; both
follow deterministic maps whose fixed points and slopes predict whether gradients vanish
(ordered phase, ``chi1 < 1``) or explode (chaotic phase, ``chi1 > 1``) with depth.
Their closed forms for the identity, ReLU and leaky ReLU are in
:mod:`gradstudy.theory._closed_forms`.

Conventions:
    * ``sigma_w2`` and ``sigma_b2`` are *variances* (``σ_w²``, ``σ_b²``).
    * ``phi`` is a registered activation name (``"tanh"``, ``"softsign"``, ...; see
      :mod:`gradstudy.nn`) or any elementwise JAX function ``Array -> Array``.
      Its derivatives are taken with forward-mode autodiff (``jax.jvp`` with a tangent of
      ones), the elementwise derivative because ``phi`` acts elementwise.
    * Gaussian integrals (1-D, and the iterated 2-D ones of the correlation map and
      ``χ_c``) use the kink-aware composite Gauss–Kronrod rule of
      :mod:`gradstudy.theory._quadrature`, whose per-integral error estimates
      :func:`mean_field_error` propagates. The ``kinks=`` and ``dtype=`` keywords and the
      static (jit) arguments of every public function here follow that module's
      conventions.
    * Every function is pure JAX: it can be ``jit``-ed, ``vmap``-ed and differentiated
      with respect to ``q``, ``c``, ``sigma_w2`` and ``sigma_b2``; fixed points and the
      critical point are differentiated with the implicit function theorem. Arrays
      broadcast.

References:
    B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli. "Exponential
    expressivity in deep neural networks through transient chaos." NeurIPS 2016.

    S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein. "Deep information
    propagation." ICLR 2017.

    C. M. Stein. "Estimation of the mean of a multivariate normal distribution."
    Annals of Statistics 9 (1981) (``E[z g(z)] = E[g'(z)]``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradstudy.theory._quadrature import (
    Activation,
    Array,
    _bivariate,
    _expect_z,
    _promoted_float_dtype,
    _public,
    _safe_sqrt,
)

__all__ = [
    "MeanFieldError",
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
    "length_map",
    "mean_field",
    "mean_field_error",
    "q_trajectory",
]


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


def _value_and_slope(phi: Activation) -> Callable[[Array], tuple[Array, Array]]:
    return lambda x: jax.jvp(phi, (x,), (jnp.ones_like(x),))


# ---------------------------------------------------------------------- fixed points
@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 3, 4, 5, 6, 7))
def _fixed_point(f_and_df, x0, params, n_iter, n_newton, lo, hi, unit):
    """Stable fixed point of ``x <- f(x, params)``; ``f_and_df`` returns ``f`` and
    ``df = ∂f/∂x`` (elementwise; one call so that both share their quadrature nodes).

    ``n_iter`` plain iterations, then up to ``n_newton`` steps of bracketed Newton
    (``rtsafe``) on ``r(x) = f(x) - x``, stopping early once every element has converged
    (``|r| <= 64 eps max(|x|, unit)``, a step or a bracket ``<= 4 eps max(|x|, unit)``;
    ``unit`` is the scale below which ``x`` counts as 0: 1 for a correlation). Assumes
    ``r >= 0`` below and ``r <= 0`` above the wanted fixed point inside ``[lo, hi]``
    (``hi`` may be ``inf``). Each step shrinks the bracket ``[a, b]`` with the sign of
    ``r``, takes the Newton step if ``r' < 0`` and it lands inside, and otherwise bisects
    (or, while ``b = inf``, takes the plain step). Newton removes the slow (algebraic)
    convergence of plain iteration near criticality, where ``f'(x*) -> 1``; the bracket
    stops it from jumping to another fixed point (e.g. from near ``c* = 0`` to ``c = -1``
    for tanh), and ``r' < 0`` from converging to an unstable one. ``inf`` where no upper
    bracket was found and ``f`` still increased ``x`` at the end (a diverging map).

    Derivatives (w.r.t. ``params``; none w.r.t. ``x0``) come from the implicit function
    theorem, ``dx* = ∂f/∂θ dθ / (1 - ∂f/∂x)``, not from unrolling the loops. Where
    ``∂f/∂x >= 1`` (not strictly stable, e.g. exactly critical) the derivative is 0.
    """
    eps = jnp.finfo(x0.dtype).eps

    def step(state):
        i, x, a, b, r_last, done = state
        fx, dfx = f_and_df(x, params)
        r = fx - x
        a = jnp.where(r >= 0, jnp.maximum(a, x), a)
        b = jnp.where(r <= 0, jnp.minimum(b, x), b)
        slope = dfx - 1.0
        newton_phase = i >= n_iter
        ok = newton_phase & (slope < 0)
        x_newton = x - r / jnp.where(ok, slope, -1.0)
        ok = ok & (x_newton >= a) & (x_newton <= b)  # False for NaN
        fallback = jnp.where(newton_phase & jnp.isfinite(b), 0.5 * (a + b), fx)
        size = jnp.maximum(jnp.abs(x), unit)
        small_r = jnp.abs(r) <= 64 * eps * size
        # converged by |r|: take the Newton correction if valid, never a bisection
        x_new = jnp.where(ok, x_newton, jnp.where(small_r, x, fallback))
        converged = newton_phase & (small_r | (jnp.abs(x_new - x) <= 4 * eps * size)
                                    | (b - a <= 4 * eps * size))
        x_new = jnp.where(done, x, x_new)
        r = jnp.where(done, r_last, r)
        return i + 1, x_new, a, b, r, done | converged | (r == 0)

    def keep_going(state):
        return (state[0] < n_iter + n_newton) & ~jnp.all(state[-1])

    bounds = (jnp.full_like(x0, lo), jnp.full_like(x0, hi))
    init = (0, x0, *bounds, jnp.zeros_like(x0), jnp.zeros(x0.shape, bool))
    _, x, _, b, r, done = lax.while_loop(keep_going, step, init)
    return jnp.where(~done & jnp.isinf(b) & (r > 0), jnp.inf, x)


@_fixed_point.defjvp
def _fixed_point_jvp(f_and_df, n_iter, n_newton, lo, hi, unit, primals, tangents):
    x0, params = primals
    x = _fixed_point(f_and_df, x0, params, n_iter, n_newton, lo, hi, unit)
    (_, df), (f_dot, _) = jax.jvp(lambda p: f_and_df(x, p), (params,), (tangents[1],))
    denom = 1.0 - df
    stable = denom > 0
    return x, jnp.where(stable, f_dot / jnp.where(stable, denom, 1.0), 0.0)


# ----------------------------------------------------------------------- length map
_STEIN_FLOOR = 1e-8


def _moments(phi, kinks, q):
    """``E[φ²]``, ``E[φ'²]`` and ``S = E[φ(√q z) φ'(√q z) z] / √q`` at ``√q`` on one set of
    nodes, each as ``(value, error estimate)``.

    ``S`` is ``dE[φ²]/dq`` by Stein's identity: no φ'', so the delta functions of φ'' at
    jumps of φ' are included. The constant ``(φφ')(0)`` is subtracted (``E[z] = 0``) so that
    small ``q`` does not cancel; below ``√q = 1e-8`` the ``q -> 0`` limit is used,
    ``[(φφ')'(0⁺) + (φφ')'(0⁻)] / 2`` (``= φ'(0)² + φ(0)φ''(0)`` where smooth, 1/2 for ReLU).
    """
    q = jnp.asarray(q)
    dtype = _promoted_float_dtype(q)
    # capped so that q* = inf (a diverging map) gives the q -> inf limit, not inf·0 = NaN
    s = jnp.minimum(_safe_sqrt(q.astype(dtype)), jnp.sqrt(jnp.sqrt(jnp.finfo(dtype).max)))
    tiny = s < _STEIN_FLOOR
    s_div = jnp.where(tiny, 1.0, s)[..., None, None]
    value_and_slope = _value_and_slope(phi)

    def product(x):
        v, dv = value_and_slope(x)
        return v * dv

    g0 = product(jnp.zeros((), dtype))
    one_sided = jnp.asarray([1.0, -1.0], dtype) * jnp.finfo(dtype).tiny
    limit = jnp.mean(jax.jvp(product, (one_sided,), (jnp.ones_like(one_sided),))[1])

    def integrand(z):
        v, dv = value_and_slope(s[..., None, None] * z)
        return v * v, dv * dv, (v * dv - g0) * z / s_div

    second, slope, (stein, stein_err) = _expect_z(integrand, kinks, jnp.zeros_like(s), s)
    return second, slope, (jnp.where(tiny, limit, stein), jnp.where(tiny, 0.0, stein_err))


def _length_map(phi, kinks, q, sigma_w2, sigma_b2):
    return sigma_w2 * _moments(phi, kinks, q)[0][0] + sigma_b2


@_public()
def length_map(phi, kinks, q, sigma_w2, sigma_b2):
    """Variance map ``q^{l+1} = σ_w² E[φ(√q^l z)²] + σ_b²`` (Poole et al. 2016)."""
    return _length_map(phi, kinks, q, sigma_w2, sigma_b2)


def _q_trajectory(phi, kinks, q0, sigma_w2, sigma_b2, n_layers):
    shape = jnp.broadcast_shapes(jnp.shape(q0), jnp.shape(sigma_w2), jnp.shape(sigma_b2))
    q0 = jnp.broadcast_to(jnp.asarray(q0, _promoted_float_dtype(q0, sigma_w2, sigma_b2)), shape)

    def step(q, _):
        q_next = _length_map(phi, kinks, q, sigma_w2, sigma_b2)
        return q_next, q_next

    _, qs = lax.scan(step, q0, None, length=n_layers)
    return jnp.concatenate([q0[None], qs])


@_public(static=("n_layers",))
def q_trajectory(phi, kinks, q0, sigma_w2, sigma_b2, n_layers: int):
    """Pre-activation variances ``[q0, L(q0), L(L(q0)), ...]`` over ``n_layers`` layers.

    Returns:
        Array of shape ``(n_layers + 1, *broadcast_shape(q0, sigma_w2, sigma_b2))``.
    """
    return _q_trajectory(phi, kinks, q0, sigma_w2, sigma_b2, n_layers)


def _length_slope(phi, kinks, q, sigma_w2):
    """``L'(q) = σ_w² E[φ(√q z) φ'(√q z) z] / √q`` (see :func:`_moments`)."""
    return sigma_w2 * _moments(phi, kinks, q)[2][0]


def _fixed_point_q(phi, kinks, sigma_w2, sigma_b2, q_init, n_iter, n_newton):
    shape = jnp.broadcast_shapes(jnp.shape(q_init), jnp.shape(sigma_w2), jnp.shape(sigma_b2))
    dtype = _promoted_float_dtype(q_init, sigma_w2, sigma_b2)
    q0 = jnp.broadcast_to(jnp.asarray(q_init, dtype), shape)

    def f_and_df(q, params):  # L'(q) by Stein's identity: no autodiff through the panels
        sigma_w2, sigma_b2 = params
        (second, _), _, (stein, _) = _moments(phi, kinks, q)
        return sigma_w2 * second + sigma_b2, sigma_w2 * stein

    return _fixed_point(f_and_df, q0, (sigma_w2, sigma_b2), n_iter, n_newton, 0.0, jnp.inf,
                        0.0)


@_public(static=("n_iter", "n_newton"))
def fixed_point_q(phi, kinks, sigma_w2, sigma_b2, q_init=1.0, n_iter: int = 4,
                  n_newton: int = 100):
    """Fixed point ``q*`` of the length map.

    Iterates the length map ``n_iter`` times from ``q_init`` (what a deep network does
    layer by layer), then polishes with up to ``n_newton`` bracketed Newton steps on
    ``L(q) - q``, stopping when converged (set ``n_newton=0`` for pure iteration). Plain
    iteration converges geometrically with rate ``L'(q*)`` but only like ``1/l`` at
    criticality (e.g. tanh, ``σ_b² = 0``, ``σ_w² = 1``); Newton fixes this (linearly,
    rate 1/2, at that double root). For tanh with ``σ_b² = 0`` and ``σ_w² <= 1`` the
    result is ~0 (``q* = 0``). ``q_init = 0`` stays at the (unstable) fixed point 0
    when ``σ_b² = φ(0) = 0``. ``inf`` where the map diverges (e.g. ReLU, ``σ_w² > 2``).

    Gradients w.r.t. ``sigma_w2``/``sigma_b2`` use the implicit function theorem,
    ``dq* = (∂L/∂θ) dθ / (1 - L'(q*))`` (set to 0 where ``L'(q*) >= 1``).

    Returns:
        ``q*`` with the broadcast shape of ``sigma_w2``, ``sigma_b2`` and ``q_init``.
    """
    return _fixed_point_q(phi, kinks, sigma_w2, sigma_b2, q_init, n_iter, n_newton)


# ------------------------------------------------------------------- gradient factor
def _chi1_with_error(phi, kinks, q, sigma_w2):
    value, error = _moments(phi, kinks, q)[1]
    return sigma_w2 * value, jnp.abs(sigma_w2) * error


def _chi1(phi, kinks, q, sigma_w2):
    return _chi1_with_error(phi, kinks, q, sigma_w2)[0]


@_public()
def chi1(phi, kinks, q, sigma_w2):
    """``χ₁ = σ_w² E[φ'(√q z)²]`` (Poole et al. 2016; Schoenholz et al. 2017).

    The per-layer factor of the back-propagated squared gradient norm at pre-activation
    variance ``q`` (pass ``q*`` for the asymptotic rate, or a trajectory of ``q^l``).
    Gradients vanish with depth when ``χ₁(q*) < 1`` and explode when ``χ₁(q*) > 1``.
    """
    return _chi1(phi, kinks, q, sigma_w2)


@_public(static=("n_layers",))
def backprop_factor_trajectory(phi, kinks, q0, sigma_w2, sigma_b2, n_layers: int):
    """``χ₁`` along the variance trajectory: entry ``l`` is ``σ_w² E[φ'(√q^l z)²]``.

    This is the predicted ratio ``‖δ^l‖² / ‖δ^{l+1}‖²`` where ``δ^l = ∂loss/∂h^l`` and
    ``h^l`` has variance ``q^l = q_trajectory(...)[l]``. Length ``n_layers + 1``.
    """
    qs = _q_trajectory(phi, kinks, q0, sigma_w2, sigma_b2, n_layers)
    return _chi1(phi, kinks, qs, sigma_w2)


# ------------------------------------------------------------------ correlation map
def _cov_and_slope_moment(phi, kinks, q, c):
    """``E[φ(u_a)φ(u_b)]`` and ``E[φ'(u_a)φ'(u_b)]`` on shared nodes (values, errors)."""
    both = _value_and_slope(phi)
    return _bivariate(both, both, kinks, q, c)


def _chi_c(phi, kinks, q, c, sigma_w2):
    dphi = _derivative(phi)
    value, _ = _bivariate(lambda x: (dphi(x),), lambda x: (dphi(x),), kinks, q, c)[0]
    return sigma_w2 * value


@_public()
def chi_c(phi, kinks, q, c, sigma_w2):
    """``χ_c = σ_w² ∫Du₁Du₂ φ'(u_a) φ'(u_b)`` (Schoenholz et al. 2017).

    ``u_a = √q z₁``, ``u_b = √q (c z₁ + √(1-c²) z₂)``. At ``q = q*`` it is the slope of
    the correlation map at ``c``; ``χ_c(c=1) = χ₁``. An iterated 1-D rule
    (:func:`bivariate_gaussian_expectation`).
    """
    return _chi_c(phi, kinks, q, c, sigma_w2)


def _correlation_map(phi, kinks, q, c, sigma_w2, sigma_b2):
    cov, _ = _bivariate(lambda x: (phi(x),), lambda x: (phi(x),), kinks, q, c)[0]
    return (sigma_w2 * cov + sigma_b2) / _length_map(phi, kinks, q, sigma_w2, sigma_b2)


@_public()
def correlation_map(phi, kinks, q, c, sigma_w2, sigma_b2):
    """Correlation map ``c' = (σ_w² E[φ(u_a) φ(u_b)] + σ_b²) / q'`` (Poole et al. 2016).

    For two inputs of equal pre-activation variance ``q`` and correlation ``c``; the
    outputs have variance ``q' = length_map(q)``, which normalises the new covariance.
    At the fixed point ``q = q*`` we have ``q' = q*`` and this is the usual C-map with
    ``c = 1`` an exact fixed point. Undefined (NaN) when ``q' = 0``. Autodiff w.r.t.
    ``c`` is not reliable at ``|c| = 1`` exactly (``√(1-c²)`` is not differentiable
    there); use :func:`chi_c` (``dc'/dc = chi_c · q / q'``, Price's theorem) instead.
    """
    return _correlation_map(phi, kinks, q, c, sigma_w2, sigma_b2)


def _fixed_point_c(phi, kinks, q, sigma_w2, sigma_b2, c_init, n_iter, n_newton):
    shape = jnp.broadcast_shapes(
        jnp.shape(q), jnp.shape(c_init), jnp.shape(sigma_w2), jnp.shape(sigma_b2)
    )
    c0 = jnp.broadcast_to(jnp.asarray(c_init, _promoted_float_dtype(q, c_init, sigma_w2, sigma_b2)),
                          shape)

    def f_and_df(c, params):
        q, sigma_w2, sigma_b2, q_next = params
        (cov, _), (slopes, _) = _cov_and_slope_moment(phi, kinks, q, c)
        # Price's theorem: dc'/dc = σ_w² q E[φ'(u_a)φ'(u_b)] / q'
        return (sigma_w2 * cov + sigma_b2) / q_next, sigma_w2 * slopes * q / q_next

    # q' = L(q) does not depend on c: computed once, its derivatives by plain autodiff
    params = (q, sigma_w2, sigma_b2, _length_map(phi, kinks, q, sigma_w2, sigma_b2))
    return _fixed_point(f_and_df, c0, params, n_iter, n_newton, -1.0, 1.0, 1.0)


@_public(static=("n_iter", "n_newton"))
def fixed_point_c(phi, kinks, q, sigma_w2, sigma_b2, c_init=0.5, n_iter: int = 2,
                  n_newton: int = 100):
    """Stable fixed point ``c*`` of the correlation map at variance ``q`` (pass ``q*``).

    ``n_iter`` plain iterations from ``c_init`` then up to ``n_newton`` bracketed Newton
    steps (slope from Price's theorem: ``dc'/dc = σ_w² q E[φ'(u_a)φ'(u_b)] / q'``),
    stopping when converged. In the ordered phase ``c* = 1``; in the chaotic phase a
    ``c* < 1`` (``c* = 0`` for odd ``φ`` with ``σ_b² = 0``) attracts every ``c_init < 1``.
    Plain iteration is slow near criticality (rate ``χ_c(c*) -> 1``); the bracketed Newton
    steps converge anyway. Gradients (w.r.t. ``q``, ``sigma_w2``, ``sigma_b2``) use the
    implicit function theorem.
    """
    return _fixed_point_c(phi, kinks, q, sigma_w2, sigma_b2, c_init, n_iter, n_newton)


# ---------------------------------------------------------------------- depth scales
@_public()
def depth_scale_q(phi, kinks, q_star, sigma_w2):
    """Depth scale of the length map (Schoenholz et al. 2017, eq. 7).

    ``ξ_q = -1 / log L'(q*)``, the depth over which ``q^l`` approaches ``q*``, with
    ``L'(q) = σ_w² E[φ(√q z) φ'(√q z) z] / √q`` (Stein's identity; equal to the paper's
    ``χ₁ + σ_w² E[φ''φ]`` for smooth φ, but also right where φ' jumps, whose φ'' has
    delta functions). ``inf`` where the rate is ``>= 1``.
    """
    return _log_depth(_length_slope(phi, kinks, q_star, sigma_w2))


@_public()
def depth_scale_c(phi, kinks, q_star, c_star, sigma_w2):
    """``ξ_c = -1 / log χ_c(q*, c*)`` (Schoenholz et al. 2017, eq. 9).

    Depth over which correlations approach ``c*``; in the ordered phase ``c* = 1``
    and ``ξ_c = -1 / log χ₁``. ``χ_c(c*) < 1`` in both phases and ``-> 1`` at the
    order/chaos transition, where ``ξ_c`` diverges; ``inf`` is returned where
    ``χ_c(c*) >= 1``.
    Schoenholz et al. find networks trainable up to depth ≈ 6 ξ_c.
    """
    return _log_depth(_chi_c(phi, kinks, q_star, c_star, sigma_w2))


# ----------------------------------------------------------------- phase transition
def _chi1_at_fixed_point(phi, kinks, sigma_w2, sigma_b2):
    q_star = _fixed_point_q(phi, kinks, sigma_w2, sigma_b2, 1.0, 4, 100)
    # q* → 0 (σ_b² = 0, ordered): χ₁ is the limit q → 0⁺, not φ' at the kink itself (with
    # denormals flushed to zero, a tiny q* would evaluate a leaky ReLU's slope at 0 and
    # jump between σ_w² and σ_w²(1 + α²)/2); for a smooth φ both give σ_w² φ'(0)².
    q_star = jnp.maximum(q_star, jnp.finfo(q_star.dtype).tiny)
    return _chi1(phi, kinks, q_star, sigma_w2)


# The default bracket [0.5, 4] is widened by this factor at each end, at most this many
# times, while it does not bracket the transition: [0.5·4⁻¹⁶, 4·4¹⁶] ≈ [1e-10, 2e10] covers
# every σ_w² at which float32 fixed points are still finite.
_EXPAND_FACTOR = 4.0
_MAX_EXPAND = 16


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 5, 6))
def _critical(phi, kinks, sigma_b2, lo, hi, n_iter, n_expand=_MAX_EXPAND):
    shape = jnp.broadcast_shapes(jnp.shape(sigma_b2), jnp.shape(lo), jnp.shape(hi))
    dtype = _promoted_float_dtype(sigma_b2, lo, hi)
    lo = jnp.broadcast_to(jnp.asarray(lo, dtype), shape)
    hi = jnp.broadcast_to(jnp.asarray(hi, dtype), shape)
    b2 = jnp.broadcast_to(jnp.asarray(sigma_b2, dtype), shape)

    def chi_ends(lo, hi):
        # both ends in one call, so that the fixed-point solver is compiled once
        chi = _chi1_at_fixed_point(phi, kinks, jnp.stack([lo, hi]), jnp.stack([b2, b2]))
        return chi[0], chi[1]

    # Widen the bracket geometrically while one end is on the wrong side: a chaotic lower
    # end moves down (the old one becomes the upper end), an ordered upper end moves up.
    # χ₁(q*(σ_w²)) grows with σ_w² for the documented activations, so this finds the
    # transition when there is one; NaN χ₁ (q* without a finite fixed point) stops it.
    def widen(state):
        i, lo, hi, chi_lo, chi_hi = state
        low_chaotic, high_ordered = chi_lo > 1.0, chi_hi <= 1.0
        new_lo = jnp.where(low_chaotic, lo / _EXPAND_FACTOR, jnp.where(high_ordered, hi, lo))
        new_hi = jnp.where(high_ordered, hi * _EXPAND_FACTOR, jnp.where(low_chaotic, lo, hi))
        return (i + 1, new_lo, new_hi, *chi_ends(new_lo, new_hi))

    def unbracketed(state):
        i, _, _, chi_lo, chi_hi = state
        return (i < n_expand) & jnp.any((chi_lo > 1.0) | (chi_hi <= 1.0))

    _, lo, hi, chi_lo, chi_hi = lax.while_loop(unbracketed, widen, (0, lo, hi, *chi_ends(lo, hi)))
    # no order-to-chaos transition inside [lo, hi] (e.g. a constant activation, whose χ₁
    # is 0): NaN rather than an endpoint that would read as a critical point
    bracketed = (chi_lo <= 1.0) & (chi_hi > 1.0)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        chaotic = _chi1_at_fixed_point(phi, kinks, mid, b2) > 1.0
        return jnp.where(chaotic, lo, mid), jnp.where(chaotic, mid, hi)

    lo, hi = lax.fori_loop(0, n_iter, bisect, (lo, hi))
    return jnp.where(bracketed, 0.5 * (lo + hi), jnp.nan)


def _critical_slopes(phi, kinks, crit, sigma_b2, d_sigma_b2):
    def g(w, b):
        return _chi1_at_fixed_point(phi, kinks, w, b)

    sigma_b2 = jnp.broadcast_to(jnp.asarray(sigma_b2, crit.dtype), crit.shape)
    d_sigma_b2 = jnp.broadcast_to(jnp.asarray(d_sigma_b2, crit.dtype), crit.shape)
    _, g_w = jax.jvp(g, (crit, sigma_b2), (jnp.ones_like(crit), jnp.zeros_like(crit)))
    _, g_b = jax.jvp(g, (crit, sigma_b2), (jnp.zeros_like(crit), d_sigma_b2))
    return g_w, g_b


@_critical.defjvp
def _critical_jvp(phi, kinks, n_iter, n_expand, primals, tangents):
    # Implicit function theorem on g(σ_w², σ_b²) = χ₁(q*(σ_w², σ_b²), σ_w²) - 1 = 0.
    sigma_b2, lo, hi = primals
    crit = _critical(phi, kinks, sigma_b2, lo, hi, n_iter, n_expand)
    g_w, g_b = _critical_slopes(phi, kinks, crit, sigma_b2, tangents[0])
    return crit, -g_b / g_w


@_public(static=("n_iter", "widen"))
def _critical_sigma_w2(phi, kinks, sigma_b2, lo=0.5, hi=4.0, n_iter: int = 60,
                       widen: bool = True):
    return _critical(phi, kinks, sigma_b2, lo, hi, n_iter, _MAX_EXPAND if widen else 0)


def critical_sigma_w2(phi, sigma_b2, lo=0.5, hi=4.0, n_iter: int = 60, *, widen: bool = True,
                      dtype=None, kinks=None):
    """Order/chaos boundary: the ``σ_w²`` with ``χ₁(q*(σ_w², σ_b²)) = 1``.

    The search starts from the bracket ``[lo, hi]``. With ``widen=True`` (the default) a
    bracket whose ends are on the wrong side of the transition is widened geometrically
    (×4 at each end, up to 16 times: about ``[1e-10, 2e10]`` from the default) until it
    holds one; ``χ₁(q*)`` grows with ``σ_w²`` for the documented activations, so the
    transition is found wherever it lies (``x/(1+|x|)²`` at ``σ_b² = 0.1``: 5.55). Then
    ``n_iter`` bisection steps. ``widen=False`` searches ``[lo, hi]`` only.

    The result is NaN where no transition was bracketed. Called with concrete values
    (outside ``jit``), a ``RuntimeWarning`` then says why in one line: ``χ₁`` stays below
    1 (always ordered) or above 1 (always chaotic) over the whole searched range, or
    ``q*`` has no finite fixed point there. ``q*`` comes from :func:`fixed_point_q` with
    its defaults. The derivative w.r.t. ``sigma_b2`` uses the implicit function theorem.
    For tanh, ``σ_b² = 0`` gives 1 (there ``χ₁ = σ_w²`` below the transition because
    ``q* = 0``).

    References:
        S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein. "Deep information
        propagation." ICLR 2017 (the order-to-chaos transition at ``χ₁ = 1``).
    """
    crit = _critical_sigma_w2(phi, sigma_b2, lo, hi, n_iter, widen=widen, dtype=dtype,
                              kinks=kinks)
    if not isinstance(crit, jax.core.Tracer) and bool(jnp.any(jnp.isnan(crit))):
        _warn_no_transition(phi, sigma_b2, lo, hi, widen, dtype, kinks)
    return crit


def _warn_no_transition(phi, sigma_b2, lo, hi, widen, dtype, kinks) -> None:
    import warnings

    scale = _EXPAND_FACTOR ** _MAX_EXPAND if widen else 1.0
    lo_end = float(jnp.min(jnp.asarray(lo))) / scale
    hi_end = float(jnp.max(jnp.asarray(hi))) * scale
    ends = jnp.asarray([lo_end, hi_end])
    q = fixed_point_q(phi, ends, jnp.max(jnp.asarray(sigma_b2)), dtype=dtype, kinks=kinks)
    chi = chi1(phi, q, ends, dtype=dtype, kinks=kinks)
    name = phi if isinstance(phi, str) else getattr(phi, "__name__", "phi")
    span = f"σ_w² in [{lo_end:.3g}, {hi_end:.3g}]"
    if not bool(jnp.all(jnp.isfinite(chi))):
        why = f"q* has no finite fixed point over part of {span}"
    elif bool(jnp.all(chi <= 1.0)):
        why = f"χ₁(q*) stays ≤ 1 (ordered) over {span} (χ₁ = {float(chi[1]):.3g} at the top)"
    elif bool(jnp.all(chi > 1.0)):
        why = f"χ₁(q*) stays > 1 (chaotic) over {span} (χ₁ = {float(chi[0]):.3g} at the bottom)"
    else:
        why = f"χ₁(q*) - 1 changes sign more than once over {span}; pass a narrower lo, hi"
    warnings.warn(f"critical_sigma_w2: no order-to-chaos transition for {name}: {why}",
                  RuntimeWarning, stacklevel=3)


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


@_public()
def mean_field(phi, kinks, sigma_w2, sigma_b2) -> MeanFieldPoint:
    """Fixed points, ``χ₁`` and depth scales at ``(σ_w², σ_b²)``.

    ``c* = 1`` where ``χ₁(q*) <= 1`` (ordered or critical: ``c = 1`` is then stable);
    otherwise ``c*`` comes from :func:`fixed_point_c` started at ``c = 0.5``.
    """
    q_star = _fixed_point_q(phi, kinks, sigma_w2, sigma_b2, 1.0, 4, 100)
    _, (slope_moment, _), (stein, _) = _moments(phi, kinks, q_star)
    x1 = sigma_w2 * slope_moment
    # The correlation map is 0/0 at q* = 0 (σ_b² = φ(0) = 0, ordered phase; also for
    # q* so small that products underflow): keep that (discarded) branch finite so that
    # gradients through jnp.where stay finite too. Ordered points start at c = 1, their
    # answer, so that they do not keep the (vectorised) Newton loop running.
    tiny = jnp.sqrt(jnp.finfo(q_star.dtype).tiny)
    q_safe = jnp.where(q_star > tiny, q_star, 1.0)
    ordered = x1 <= 1.0
    c_init = jnp.where(ordered, 1.0, 0.5)
    c_chaotic = _fixed_point_c(phi, kinks, q_safe, sigma_w2, sigma_b2, c_init, 2, 100)
    c_star = jnp.where(ordered, jnp.ones_like(c_chaotic), c_chaotic)
    return MeanFieldPoint(
        q_star=q_star,
        chi1=x1,
        c_star=c_star,
        xi_q=_log_depth(sigma_w2 * stein),
        xi_c=_log_depth(jnp.where(ordered, x1, _chi_c(phi, kinks, q_star, c_star, sigma_w2))),
    )


class MeanFieldError(NamedTuple):
    """Quadrature error estimates (absolute) of :func:`mean_field` results."""

    length_map: Array
    """Of ``L(q*)`` (σ_w² times the rule's estimate for ``E[φ²]``)."""
    q_star: Array
    """Of ``q*``: ``err(L) / (1 - L'(q*))`` (a fixed point moves by that much)."""
    chi1: Array
    """Of ``χ₁(q*)``: its own rule's estimate plus ``|∂χ₁/∂q| · err(q*)``."""
    critical_sigma_w2: Array
    """Of the critical ``σ_w²`` at this ``σ_b²`` (NaN where there is none on
    ``[0.5, 4]``): ``err(χ₁ at the critical point) / |dχ₁(q*(σ_w²), σ_w²)/dσ_w²|``."""


@_public()
def mean_field_error(phi, kinks, sigma_w2, sigma_b2) -> MeanFieldError:
    """Propagated quadrature error estimates of ``q*``, ``χ₁(q*)`` and the critical
    ``σ_w²`` (first-order propagation of the per-integral |Kronrod − Gauss| estimates)."""
    def propagated(sigma_w2, sigma_b2):
        def chi_at_fixed_point(w):
            q_star = _fixed_point_q(phi, kinks, w, sigma_b2, 1.0, 4, 100)
            return _chi1(phi, kinks, q_star, w), q_star

        (_, q_star), (dchi_dw, _) = jax.jvp(chi_at_fixed_point, (sigma_w2,),
                                            (jnp.ones_like(sigma_w2),))
        (_, second_err), (_, slope_err), (stein, _) = _moments(phi, kinks, q_star)
        length_error = jnp.abs(sigma_w2) * second_err
        q_error = length_error / jnp.abs(1.0 - sigma_w2 * stein)
        _, dchi_dq = jax.jvp(lambda q: _chi1(phi, kinks, q, sigma_w2), (q_star,),
                             (jnp.ones_like(q_star),))
        chi_error = jnp.abs(sigma_w2) * slope_err + jnp.abs(dchi_dq) * q_error
        return length_error, q_error, chi_error, dchi_dw

    crit = _critical(phi, kinks, sigma_b2, 0.5, 4.0, 60, _MAX_EXPAND)
    shape = jnp.broadcast_shapes(jnp.shape(sigma_w2), jnp.shape(crit))
    dtype = _promoted_float_dtype(sigma_w2, crit)
    crit_safe = jnp.where(jnp.isnan(crit), 1.0, crit)
    # the point and the critical point stacked: one compiled instance of the solver
    both = jnp.stack([jnp.broadcast_to(jnp.asarray(sigma_w2, dtype), shape),
                      jnp.broadcast_to(crit_safe, shape)])
    length_error, q_error, chi_error, dchi_dw = propagated(both, sigma_b2)
    crit_error = jnp.where(jnp.isnan(crit), jnp.nan, chi_error[1] / jnp.abs(dchi_dw[1]))
    length_error, q_error, chi_error = length_error[0], q_error[0], chi_error[0]
    return MeanFieldError(*(jnp.broadcast_to(e, shape)
                            for e in (length_error, q_error, chi_error, crit_error)))
