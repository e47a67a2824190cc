"""Gaussian expectations for the mean-field theory, and the entry-point convention of every
public mean-field function (activation names, ``kinks=``, ``dtype=``, static arguments).

Conventions:
    * ``f`` (``phi``) is a registered activation name (``"tanh"``, ``"softsign"``, ...; see
      :mod:`gradstudy.nn`) or any elementwise JAX function ``Array -> Array``; a
      name is resolved to its function and its kinks, static jit arguments (``_public``).
    * Gaussian integrals ``E[f(m + s z)]`` (``z ~ N(0, 1)``) use composite Gauss–Kronrod
      quadrature (15-point Kronrod rule with its embedded 7-point Gauss rule, QUADPACK's
      ``qk15``) over ``z ∈ [-10, 10]`` (the tail beyond has mass 1.5e-23). The panels are
      split at the union of (i) a fixed z-grid, (ii) an x-grid ``x ∈ [-8, 8]`` mapped to
      ``z = (x - m)/s`` (so that large variances, where a tanh-like transition is narrow in
      ``z``, stay resolved) and (iii) the *kinks* of ``phi`` (points where φ, φ' or φ''
      jumps; declared or found, :func:`gradstudy.nn.activation_kinks`) mapped the
      same way. On every panel the integrand is then smooth and the rule converges
      exponentially, also for ReLU, hard tanh, softsign, ELU/SELU, relu6; Gauss–Hermite
      (the previous rule) converged only algebraically there (softsign χ₁ at
      (σ_w², σ_b²) = (3, 0.05): 0.9455 against 0.9822). Breakpoints are traced values, so
      everything still jit-s, vmap-s and differentiates (moving kink breakpoints carry
      the Leibniz boundary terms of, e.g., ``d/dq`` of hard tanh's χ₁).
    * Error estimate: the sum over panels of |Kronrod − Gauss|, i.e. the error of the
      7-point rule, which bounds that of the returned 15-point value by a wide margin for
      resolved integrands (:func:`gaussian_expectation` with ``return_error=True``,
      :func:`bivariate_gaussian_expectation`,
      :func:`gradstudy.theory.mean_field_error`).
    * 2-D integrals (correlation map, ``χ_c``) are iterated 1-D integrals: the inner
      expectation over ``z₂`` has mean ``√q c z₁`` and standard deviation ``√q √(1-c²)``
      with its own kink breakpoints; the outer rule also breaks at the kinks of the inner
      integrand seen through ``z₁ = x_k/(√q c)`` (it is φ(√q c z₁) when ``c → ±1``).
    * dtype: ``dtype=None`` (default) follows the inputs: float64 when ``jax_enable_x64``
      is on (Python floats promote to float64), float32 otherwise. ``dtype="float64"``
      always computes and returns float64: when x64 is off, the call runs under
      ``jax.enable_x64(True)`` (inside someone else's ``jit``/``vmap`` trace that cannot
      work: a one-line :class:`~gradstudy.errors.ConfigError` says how to enable x64).
      ``dtype="float32"`` computes in float32.
    * ``phi``/``f``, ``n_layers``, ``n_iter``/``n_newton`` are static (jit) arguments: pass
      a name or a function object that is reused (e.g. ``jnp.tanh``) rather than a fresh
      ``lambda`` per call, or each call recompiles (and re-scans the lambda for kinks).

The probabilists' Gauss–Hermite rule (:func:`gauss_hermite`) is kept as a utility.

References:
    R. Piessens, E. de Doncker-Kapenga, C. W. Überhuber, D. K. Kahaner. "QUADPACK: a
    subroutine package for automatic integration." Springer 1983 (the 7/15-point
    Gauss–Kronrod pair and its use as an error estimate).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradstudy.errors import ConfigError
from gradstudy.nn._activations import activation_kinks, get_activation

Array = jax.Array
Activation = Callable[[Array], Array]

__all__ = [
    "bivariate_gaussian_expectation",
    "gauss_hermite",
    "gaussian_expectation",
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
            :func:`gradstudy.nn.activation_kinks`, declared or found).

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
