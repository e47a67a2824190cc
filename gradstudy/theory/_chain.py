"""The seed's picture made exact: back-propagation through a chain of equal factors.

Each "layer" multiplies its input by ``factor``; by the chain rule the gradient of the
output with respect to the input of a depth-D chain is factor**D.  ``chain_gradients``
measures it with ``jax.grad`` (reverse mode, exactly as back-propagation multiplies one
Jacobian per layer), vmapped over factors and depths in one compiled program, so the only
difference from the closed form is floating-point arithmetic: underflow to 0 and overflow
to inf in finite precision.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _chain_output(x0, factor, depth, max_depth):
    # layers beyond ``depth`` are identities, so every depth shares one compiled loop
    def layer(l, x):
        return jnp.where(l < depth, factor * x, x)

    return jax.lax.fori_loop(0, max_depth, layer, x0)


@functools.partial(jax.jit, static_argnums=(2,))
def _program(factors, depths, max_depth):
    grad = jax.grad(_chain_output)  # d x_D / d x_0 by reverse mode
    per_depth = jax.vmap(lambda f, d: grad(jnp.ones((), f.dtype), f, d, max_depth),
                         in_axes=(None, 0))
    return jax.vmap(per_depth, in_axes=(0, None))(factors, depths)


def chain_gradients(factors, depths, dtype="float32") -> np.ndarray:
    """Measured ∂x_D/∂x_0 for every (factor, depth): array (len(factors), len(depths))."""
    with jax.enable_x64(dtype == "float64"):
        factors = jnp.asarray(factors, jnp.dtype(dtype))
        depths = jnp.asarray(depths, jnp.int32)
        return np.asarray(_program(factors, depths, int(depths.max())))


def chain_closed_form(factors, depths, dtype="float32") -> np.ndarray:
    """factor**D in extended precision, with each factor first rounded to ``dtype``."""
    f = np.asarray(factors, dtype).astype(np.longdouble)
    with np.errstate(over="ignore", under="ignore"):  # inf/0 beyond long double: the answer
        return f[:, None] ** np.asarray(depths, np.longdouble)[None, :]


def first_nonfinite_or_zero(values: np.ndarray, depths: np.ndarray):
    """First depth where a row becomes 0 (underflow) or inf/NaN (overflow); NaN if never."""
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        bad = np.flatnonzero((row == 0) | ~np.isfinite(row))
        if bad.size:
            out[i] = depths[bad[0]]
    return out


def predicted_breakdown_depth(factor: float, dtype: str = "float32") -> tuple[float, float]:
    """Range of depths where factor**D leaves the finite non-zero range of ``dtype``.

    For factor < 1 the gradient becomes 0 at the first depth where factor**D drops below
    the smallest normal number when subnormals are flushed to zero (XLA on CPU and GPU),
    and later with IEEE gradual underflow: for factor ≤ 1/2 once factor**D ≤ half the
    smallest subnormal (a tie rounds to even, 0); for 1/2 < factor < 1 never, since with
    round-to-nearest the product stalls at a small subnormal s with round(s·factor) = s
    (upper bound inf).
    For factor > 1 it becomes inf at the first D with factor**D above the largest finite
    number.  (NaN for factor == 1.)
    """
    info = np.finfo(dtype)
    factor = float(np.asarray(factor, dtype))  # the factor the chain multiplies by
    # extended precision, so that boundaries such as 2**1024 vs float64's max are resolved
    wide = np.longdouble
    log_f = np.log(wide(factor))

    def first_beyond(bound) -> float:  # smallest D with factor**D strictly past ``bound``
        return float(np.floor(np.log(wide(bound)) / log_f) + 1)

    if factor < 1:
        flush = first_beyond(info.tiny)
        if factor > 0.5:
            return flush, float("inf")
        half_subnormal = wide(info.smallest_subnormal) / 2
        return flush, float(np.ceil(np.log(half_subnormal) / log_f))  # first D: f**D ≤ it
    if factor > 1:
        d = first_beyond(info.max)
        return d, d
    return float("nan"), float("nan")
