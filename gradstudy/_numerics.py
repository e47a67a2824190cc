"""Numerics shared by every measurement: the one overflow- and underflow-safe norm, and the
one way to silence numpy's RuntimeWarnings where a NaN result is the intended answer
(medians of all-NaN slices are NaN, flagged or drawn as such).

References:
    Blue (1978), A portable Fortran program to find the Euclidean norm of a vector,
    ACM TOMS 4(1).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import jax
import jax.numpy as jnp


def max_abs_scale(x, axis=None):
    """max|x| over ``axis`` (1 where that is 0 or not finite), for underflow-safe norms."""
    m = jnp.max(jnp.abs(x), axis=axis)
    return jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))


def _axes(ndim: int, axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def safe_norm(x, axis=None) -> jax.Array:
    """Euclidean (Frobenius) norm over ``axis`` (default: all axes) without under- or
    overflow of the squares: max|x| · ‖x / max|x|‖, the scale being 1 where max|x| is 0 or
    not finite (a NaN entry gives NaN, an infinite one +inf).

    Args:
        x: array.
        axis: an axis or a tuple of axes to reduce; None for all of them (one scalar scale).

    Returns:
        ``x``'s shape without the reduced axes; ``|x|`` where no axis is reduced, zeros for
        an empty ``x``.
    """
    x = jnp.asarray(x)
    axes = _axes(x.ndim, axis)
    if x.size == 0:
        kept = tuple(n for i, n in enumerate(x.shape) if i not in axes)
        return jnp.zeros(kept, jnp.abs(x).dtype)
    if not axes:  # a scalar, or nothing to reduce: the norm of one entry is |x|
        return jnp.abs(x)
    if axis is None:
        # one scalar scale.  The same value as the tuple form below, but XLA may round the
        # two programs differently (seen in training programs, which compile with other
        # emitters): kept as it was, so that no result moves by a bit
        m = max_abs_scale(x)
        return m * jnp.sqrt(jnp.sum(jnp.square(x / m)))
    m = max_abs_scale(x, axis=axes)
    return m * jnp.sqrt(jnp.sum(jnp.square(x / jnp.expand_dims(m, axes)), axis=axes))


def safe_global_norm(tree) -> jax.Array:
    """:func:`safe_norm` of all leaves of ``tree`` together (one scale, the largest |entry|),
    without concatenating them."""
    leaves = jax.tree.leaves(tree)
    m = max_abs_scale(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))
    return m * jnp.sqrt(sum(jnp.sum(jnp.square(leaf / m)) for leaf in leaves))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Within the ``with`` block, ignore ``RuntimeWarning`` (and only that)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
