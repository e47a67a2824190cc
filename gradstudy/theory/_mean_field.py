"""Mean-field theory of signal propagation in deep fully connected networks.

The network is ``h^l = W^l phi(h^{l-1}) + b^l`` with ``W_ij ~ N(0, sigma_w2 / N)`` and
``b_i ~ N(0, sigma_b2)``. In the infinite-width limit the pre-activations of a layer are
Gaussian with variance ``q^l`` and the correlation between two inputs is ``c^l``; both
follow deterministic maps whose fixed points and slopes predict whether gradients vanish
(ordered phase, ``chi1 < 1``) or explode (chaotic phase, ``chi1 > 1``) with depth.

Conventions:
    * ``sigma_w2`` and ``sigma_b2`` are *variances* (``σ_w²``, ``σ_b²``).
    * ``phi`` is a registered activation name (``"tanh"``, ``"softsign"``, ...; see
      :mod:`gradstudy.activations`) or any elementwise JAX function ``Array -> Array``.
      Its derivatives are taken with forward-mode autodiff (``jax.jvp`` with a tangent of
      ones), the elementwise derivative because ``phi`` acts elementwise.
    * Gaussian integrals ``E[f(m + s z)]`` (``z ~ N(0, 1)``) use composite Gauss–Kronrod
      quadrature (15-point Kronrod rule with its embedded 7-point Gauss rule, QUADPACK's
      ``qk15``) over ``z ∈ [-10, 10]`` (the tail beyond has mass 1.5e-23). The panels are
      split at the union of (i) a fixed z-grid, (ii) an x-grid ``x ∈ [-8, 8]`` mapped to
      ``z = (x - m)/s`` (so that large variances, where a tanh-like transition is narrow in
      ``z``, stay resolved) and (iii) the *kinks* of ``phi`` (points where φ, φ' or φ''
      jumps; declared or found, :func:`gradstudy.activations.activation_kinks`) mapped the
      same way. On every panel the integrand is then smooth and the rule converges
      exponentially, also for ReLU, hard tanh, softsign, ELU/SELU, relu6; Gauss–Hermite
      (the previous rule) converged only algebraically there (softsign χ₁ at
      (σ_w², σ_b²) = (3, 0.05): 0.9455 against 0.9822). Breakpoints are traced values, so
      everything still jit-s, vmap-s and differentiates (moving kink breakpoints carry
      the Leibniz boundary terms of, e.g., ``d/dq`` of hard tanh's χ₁).
    * Error estimate: the sum over panels of |Kronrod − Gauss|, i.e. the error of the
      7-point rule, which bounds that of the returned 15-point value by a wide margin for
      resolved integrands (:func:`gaussian_expectation` with ``return_error=True``,
      :func:`bivariate_gaussian_expectation`, :func:`mean_field_error`).
    * 2-D integrals (correlation map, ``χ_c``) are iterated 1-D integrals: the inner
      expectation over ``z₂`` has mean ``√q c z₁`` and standard deviation ``√q √(1-c²)``
      with its own kink breakpoints; the outer rule also breaks at the kinks of the inner
      integrand seen through ``z₁ = x_k/(√q c)`` (it is φ(√q c z₁) when ``c → ±1``).
    * Every function is pure JAX: it can be ``jit``-ed, ``vmap``-ed and differentiated
      with respect to ``q``, ``c``, ``sigma_w2`` and ``sigma_b2``; fixed points and the
      critical point are differentiated with the implicit function theorem. Arrays
      broadcast.
    * dtype: ``dtype=None`` (default) follows the inputs: float64 when ``jax_enable_x64``
      is on (Python floats promote to float64), float32 otherwise. ``dtype="float64"``
      always computes and returns float64: when x64 is off, the call runs under
      ``jax.enable_x64(True)`` (inside someone else's ``jit``/``vmap`` trace that cannot
      work: a one-line :class:`~gradstudy.errors.ConfigError` says how to enable x64).
      ``dtype="float32"`` computes in float32.
    * ``phi``/``f``, ``n_layers``, ``n_iter``/``n_newton`` are static (jit) arguments: pass
      a name or a function object that is reused (e.g. ``jnp.tanh``) rather than a fresh
      ``lambda`` per call, or each call recompiles (and re-scans the lambda for kinks).

References:
    B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli. "Exponential
    expressivity in deep neural networks through transient chaos." NeurIPS 2016.

    S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein. "Deep information
    propagation." ICLR 2017.

    Y. Cho, L. K. Saul. "Kernel methods for deep learning." NeurIPS 2009.

    R. Piessens, E. de Doncker-Kapenga, C. W. Überhuber, D. K. Kahaner. "QUADPACK: a
    subroutine package for automatic integration." Springer 1983 (the 7/15-point
    Gauss–Kronrod pair and its use as an error estimate).

    C. M. Stein. "Estimation of the mean of a multivariate normal distribution."
    Annals of Statistics 9 (1981) (``E[z g(z)] = E[g'(z)]``).
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

from gradstudy.errors import ConfigError
from gradstudy.nn._activations import activation_kinks, get_activation

Array = jax.Array
Activation = Callable[[Array], Array]

__all__ = [
    "MeanFieldError",
    "MeanFieldPoint",
    "backprop_factor_trajectory",
    "bivariate_gaussian_expectation",
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
    "mean_field_error",
    "q_trajectory",
    "relu_chi1",
    "relu_correlation_map",
    "relu_length_map",
]

# ------------------------------------------------------------------------ quadrature rule
Z_MAX = 10.0
"""Integration range ``z ∈ [-Z_MAX, Z_MAX]``; the Gaussian mass outside is 1.5e-23."""
# 1-D integrals: fixed panels of width 2 in z ∪ panels of width 1 in x = m + s z (27 panels
# before kinks; worst measured relative error 1e-15 for 12 activations at 1e-3 <= q <= 100).
_Z_EDGES = np.linspace(-Z_MAX, Z_MAX, 11)
_X_EDGES = np.linspace(-8.0, 8.0, 17)
# 2-D integrals (each dimension): widths 4 in z and 2 in x (13 panels; 1-D worst measured
# 2.4e-12 at q = 100, 1e-15 at q <= 5), which keeps the ~(13·15)² nodes per point affordable.
_Z_EDGES_2D = np.linspace(-Z_MAX, Z_MAX, 6)
_X_EDGES_2D = np.linspace(-8.0, 8.0, 9)
# QUADPACK qk15: Kronrod abscissae (descending, last is 0), Kronrod and Gauss weights.
_XGK = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                 0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                 0.207784955007898467600689403773245, 0.0])
_WGK = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                 0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                 0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                 0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_WG = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
_NODES = np.concatenate([-_XGK[:7], [0.0], _XGK[6::-1]])  # ascending on [-1, 1]
_W_KRONROD = np.concatenate([_WGK[:7], [_WGK[7]], _WGK[6::-1]])
_W_GAUSS = np.zeros(15)
_W_GAUSS[[1, 3, 5, 7, 9, 11, 13]] = np.concatenate([_WG[:3], [_WG[3]], _WG[2::-1]])
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))  # a Python float: weakly typed
_W_BOTH = np.stack([_W_KRONROD, _W_GAUSS], axis=-1)

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _promoted_float_dtype(*args) -> np.dtype:
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


# --------------------------------------------------------------------- public wrappers
def _resolve_dtype(dtype):
    if dtype is None:
        return None
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"dtype: unknown value {dtype!r}; allowed: None, 'float32', "
                          "'float64'")
    return resolved


def _public(*, static: tuple[str, ...] = (), activation: bool = True):
    """Public entry point around ``impl(phi, kinks, *args)``.

    Resolves an activation name to its function and its kinks (static jit arguments),
    jit-compiles ``impl`` and applies the ``dtype=`` convention of the module docstring.
    """

    def decorate(impl):
        params = list(inspect.signature(impl).parameters.values())
        names = [p.name for p in params]
        jitted = jax.jit(impl, static_argnames=tuple(n for n in ("phi", "f", "g", "kinks")
                                                      if n in names) + static)
        float_names = [p.name for p in params[2:] if p.name not in static + ("g",)]

        @functools.wraps(impl)
        def wrapper(phi, *args, dtype=None, kinks=None, **kwargs):
            fn = get_activation(phi)
            kinks = activation_kinks(fn) if kinks is None else _as_kinks(kinks)
            bound = inspect.signature(impl).bind(fn, kinks, *args, **kwargs)
            bound.apply_defaults()
            target = _resolve_dtype(dtype)
            if target is None:
                return jitted(*bound.args, **bound.kwargs)
            leaves = [bound.arguments[n] for n in float_names]
            if target == np.float64 and not jax.config.jax_enable_x64:
                if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(leaves)):
                    raise ConfigError(
                        "dtype: float64 inside a jit/vmap trace needs x64 enabled; call "
                        "jax.config.update('jax_enable_x64', True) or trace under "
                        "`with jax.enable_x64(True):`")
                with jax.enable_x64(True):
                    return _call_cast(jitted, bound, float_names, target)
            return _call_cast(jitted, bound, float_names, target)

        sig = inspect.signature(impl)
        shown = [p for p in sig.parameters.values() if p.name != "kinks"]
        shown += [inspect.Parameter("dtype", inspect.Parameter.KEYWORD_ONLY, default=None)]
        if "kinks" in names and activation:
            shown += [inspect.Parameter("kinks", inspect.Parameter.KEYWORD_ONLY, default=None)]
        wrapper.__signature__ = sig.replace(parameters=shown)
        wrapper.__wrapped__ = None
        del wrapper.__wrapped__
        return wrapper

    return decorate


def _as_kinks(kinks) -> tuple[float, ...]:
    try:
        values = tuple(sorted({float(k) for k in kinks}))
    except (TypeError, ValueError):
        raise ConfigError(f"kinks: must be a sequence of finite numbers, got {kinks!r}") from None
    if not all(np.isfinite(values)):
        raise ConfigError(f"kinks: must be a sequence of finite numbers, got {kinks!r}")
    return values


def _call_cast(jitted, bound, float_names, target):
    for name in float_names:
        bound.arguments[name] = jax.tree.map(lambda x: jnp.asarray(x, target),
                                             bound.arguments[name])
    return jitted(*bound.args, **bound.kwargs)


# ------------------------------------------------------------------------ quadrature
def _to_z(points, mean: Array, scale: Array) -> Array:
    """x-space breakpoints ``points`` (static) mapped to ``z = (x - mean)/scale``, clipped
    to ``[-Z_MAX, Z_MAX]``; where ``scale == 0`` they collapse onto ``Z_MAX``."""
    x = jnp.asarray(points, mean.dtype)
    nonzero = scale != 0
    inv = 1.0 / jnp.where(nonzero, scale, 1.0)
    z = (x - mean[..., None]) * inv[..., None]
    return jnp.clip(jnp.where(nonzero[..., None], z, Z_MAX), -Z_MAX, Z_MAX)


def _edges(shape, dtype, *mapped: Array, z_edges=_Z_EDGES) -> Array:
    """Sorted panel edges: the fixed z-grid ∪ the mapped breakpoints (..., P + 1)."""
    fixed = jnp.broadcast_to(jnp.asarray(z_edges, dtype), (*shape, z_edges.size))
    return jnp.sort(jnp.concatenate([fixed, *mapped], axis=-1), axis=-1)


def _panel_nodes(a: Array, b: Array):
    """15 Kronrod nodes per panel [a, b] and their Gaussian-density weights (..., 15)."""
    half = 0.5 * (b - a)[..., None]
    z = 0.5 * (a + b)[..., None] + half * jnp.asarray(_NODES, a.dtype)
    return z, half * jnp.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _kronrod_gauss(weights: Array, values: Array):
    """Per-panel Kronrod value and |Kronrod − Gauss| (sums over the last axis)."""
    # one (15, 2) matmul for both rules: XLA:CPU compiles it faster than two reductions
    both = (weights * values) @ jnp.asarray(_W_BOTH, weights.dtype)
    return both[..., 0], jnp.abs(both[..., 0] - both[..., 1])


def _expect(f: Activation, kinks, mean: Array, scale: Array, grid=(_Z_EDGES, _X_EDGES)):
    """``(E[f(mean + scale z)], error estimate)`` for arrays ``mean``, ``scale`` (broadcast).

    ``f`` may return a tuple of arrays (several integrands on the same nodes); then both
    outputs are tuples. ``grid``: the (z, x) panel grids.
    """
    mean, scale = jnp.broadcast_arrays(mean, scale)
    return _expect_z(lambda z: f(mean[..., None, None] + scale[..., None, None] * z), kinks,
                     mean, scale, grid)


def _expect_z(fz, kinks, mean: Array, scale: Array, grid=(_Z_EDGES, _X_EDGES)):
    """:func:`_expect` with the integrand given as a function of the nodes ``z``."""
    points = np.concatenate([grid[1], np.asarray(kinks, float)])
    edges = _edges(mean.shape, mean.dtype, _to_z(points, mean, scale), z_edges=grid[0])
    z, w = _panel_nodes(edges[..., :-1], edges[..., 1:])
    values = fz(z)
    single = not isinstance(values, tuple)
    out = []
    for v in (values,) if single else values:
        panel, err = _kronrod_gauss(w, v)
        out.append((jnp.sum(panel, axis=-1), jnp.sum(err, axis=-1)))
    return out[0] if single else tuple(out)


def _gaussian_expectation(f, kinks, q, mean=0.0):
    q = jnp.asarray(q)
    dtype = _promoted_float_dtype(q, mean)
    q, mean = jnp.broadcast_arrays(q.astype(dtype), jnp.asarray(mean, dtype))
    return _expect(f, kinks, mean, _safe_sqrt(q))


def _bivariate(f, g, kinks, q, c):
    """``(E[F(u_a) G(u_b)], error)`` with ``u_a = √q z₁``, ``u_b = √q (c z₁ + √(1-c²) z₂)``.

    ``f``/``g`` return tuples of equal length k; the result is a k-tuple of (value, error).
    Iterated: a scan over the outer panels (bounded memory), the inner rule vectorised.
    """
    q, c = jnp.broadcast_arrays(jnp.asarray(q), jnp.asarray(c))
    dtype = _promoted_float_dtype(q, c)
    q, c = q.astype(dtype), c.astype(dtype)
    s = _safe_sqrt(q)
    sc = s * c
    sigma = s * _safe_sqrt(1.0 - c * c)
    zeros = jnp.zeros_like(s)
    points = np.concatenate([_X_EDGES_2D, np.asarray(kinks, float)])
    edges = _edges(q.shape, dtype, _to_z(points, zeros, s),
                   _to_z(np.asarray(kinks, float), zeros, sc), z_edges=_Z_EDGES_2D)
    panels = (jnp.moveaxis(edges[..., :-1], -1, 0), jnp.moveaxis(edges[..., 1:], -1, 0))

    def panel(carry, ab):
        z1, w1 = _panel_nodes(*ab)  # (..., 15)
        outer = f(s[..., None] * z1)
        inner = _expect(g, kinks, sc[..., None] * z1, sigma[..., None],
                        (_Z_EDGES_2D, _X_EDGES_2D))
        new = []
        for (val, err), fo, (gi, gi_err) in zip(carry, outer, inner):
            k, e = _kronrod_gauss(w1, fo * gi)
            e = e + jnp.abs(w1 * fo) * gi_err @ jnp.asarray(_W_KRONROD, dtype)
            new.append((val + k, err + e))
        return tuple(new), None

    n = len(f(jnp.zeros((), dtype)))
    init = tuple((jnp.zeros(q.shape, dtype), jnp.zeros(q.shape, dtype)) for _ in range(n))
    return lax.scan(panel, init, panels)[0]


def _value_and_slope(phi: Activation) -> Callable[[Array], tuple[Array, Array]]:
    return lambda x: jax.jvp(phi, (x,), (jnp.ones_like(x),))


@_public(static=("return_error",))
def gaussian_expectation(f, kinks, q, mean=0.0, return_error: bool = False):
    """``E_{z ~ N(0,1)}[f(mean + sqrt(q) z)]`` by kink-aware composite Gauss–Kronrod.

    Args:
        f: elementwise function or activation name (static under ``jit``).
        q: variance(s), scalar or array (``q <= 0`` is treated as 0; the derivative
            w.r.t. ``q`` at exactly ``q = 0`` is returned as 0, not ``E[f''(0)]/2``).
        mean: mean(s), broadcast with ``q``.
        return_error: also return the error estimate.
        dtype: see the module docstring.
        kinks: points where ``f``, ``f'`` or ``f''`` jumps (default: those of ``f`` from
            :func:`gradstudy.activations.activation_kinks`, declared or found).

    Returns:
        Array of the broadcast shape of ``q`` and ``mean``; with ``return_error`` a pair
        ``(value, error)`` where ``error`` is Σ over panels |15-point Kronrod − 7-point
        Gauss|, an (in practice very pessimistic) estimate of the absolute error.
    """
    value, error = _gaussian_expectation(f, kinks, q, mean)
    return (value, error) if return_error else value


@_public(static=("return_error",))
def bivariate_gaussian_expectation(f, kinks, g, q, c, return_error: bool = False):
    """``E[f(u_a) g(u_b)]`` for ``(u_a, u_b)`` Gaussian with variances ``q``, correlation
    ``c``; ``g`` must have the same kinks as ``f`` (pass ``kinks=`` for their union).

    Returns:
        Array of the broadcast shape of ``q``, ``c``; with ``return_error`` also the error
        estimate (outer |Kronrod − Gauss| plus the inner estimates weighted by |f|).
    """
    g = get_activation(g)
    value, error = _bivariate(lambda x: (f(x),), lambda x: (g(x),), kinks, q, c)[0]
    return (value, error) if return_error else value


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
    the correlation map at ``c``; ``χ_c(c=1) = χ₁``. An iterated 1-D rule (module
    docstring).
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
    return _chi1(phi, kinks, q_star, sigma_w2)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 5))
def _critical(phi, kinks, sigma_b2, lo, hi, n_iter):
    shape = jnp.broadcast_shapes(jnp.shape(sigma_b2), jnp.shape(lo), jnp.shape(hi))
    dtype = _promoted_float_dtype(sigma_b2, lo, hi)
    lo = jnp.broadcast_to(jnp.asarray(lo, dtype), shape)
    hi = jnp.broadcast_to(jnp.asarray(hi, dtype), shape)

    # Step 0 evaluates lo, step 1 hi (is there a transition inside?), then bisection: one
    # loop, so that the fixed-point solver is compiled once.
    def step(i, state):
        lo, hi, ordered_lo, chaotic_hi = state
        mid = jnp.where(i == 0, lo, jnp.where(i == 1, hi, 0.5 * (lo + hi)))
        chaotic = _chi1_at_fixed_point(phi, kinks, mid, sigma_b2) > 1.0
        bisecting = i >= 2
        return (jnp.where(bisecting & ~chaotic, mid, lo), jnp.where(bisecting & chaotic, mid, hi),
                jnp.where(i == 0, ~chaotic, ordered_lo), jnp.where(i == 1, chaotic, chaotic_hi))

    # no order-to-chaos transition inside [lo, hi] (e.g. sigmoid, whose χ₁ stays < 1):
    # NaN rather than an endpoint that would read as a critical point
    false = jnp.zeros(shape, bool)
    lo, hi, ordered_lo, chaotic_hi = lax.fori_loop(0, n_iter + 2, step, (lo, hi, false, false))
    bracketed = ordered_lo & chaotic_hi
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
def _critical_jvp(phi, kinks, n_iter, primals, tangents):
    # Implicit function theorem on g(σ_w², σ_b²) = χ₁(q*(σ_w², σ_b²), σ_w²) - 1 = 0.
    sigma_b2, lo, hi = primals
    crit = _critical(phi, kinks, sigma_b2, lo, hi, n_iter)
    g_w, g_b = _critical_slopes(phi, kinks, crit, sigma_b2, tangents[0])
    return crit, -g_b / g_w


@_public(static=("n_iter",))
def critical_sigma_w2(phi, kinks, sigma_b2, lo=0.5, hi=4.0, n_iter: int = 60):
    """Order/chaos boundary: the ``σ_w²`` with ``χ₁(q*(σ_w², σ_b²)) = 1``.

    Bisection with ``n_iter`` steps on ``[lo, hi]``; NaN when the interval does not
    bracket the transition (ordered at ``lo``, chaotic at ``hi``). ``q*`` comes from
    :func:`fixed_point_q` with its defaults. The derivative w.r.t. ``sigma_b2`` uses the
    implicit function theorem. For tanh, ``σ_b² = 0`` gives 1 (there ``χ₁ = σ_w²`` below
    the transition because ``q* = 0``).
    """
    return _critical(phi, kinks, sigma_b2, lo, hi, n_iter)


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

    crit = _critical(phi, kinks, sigma_b2, 0.5, 4.0, 60)
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


# ------------------------------------------------------------------ Gauss–Hermite rule
@functools.cache
def _hermegauss(degree: int) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
        raise ValueError(f"numpy's hermegauss overflows at degree={degree} (use <= 350)")
    return nodes, weights / np.sqrt(2.0 * np.pi)


def gauss_hermite(degree: int = 64, dtype=None) -> tuple[Array, Array]:
    """Probabilists' Gauss–Hermite rule for ``E_{z ~ N(0,1)}[f(z)] ≈ Σ_i w_i f(z_i)``.

    Kept as a utility (for smooth integrands it is exact for polynomials of degree
    ``<= 2 * degree - 1``); the mean-field functions use the kink-aware rule above.

    Args:
        degree: number of nodes.
        dtype: dtype of the returned arrays (default: JAX's default float dtype).

    Returns:
        ``(nodes, weights)``, each of shape ``(degree,)``; the weights sum to 1.
    """
    if int(degree) < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    nodes, weights = _hermegauss(int(degree))
    return jnp.asarray(nodes, dtype), jnp.asarray(weights, dtype)


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
