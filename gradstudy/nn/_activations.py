"""Elementwise activations by name, plus any user function ``jnp -> jnp``.

A study names its activation with a string so that configs stay hashable and readable in
saved results; a researcher adds one with :func:`register_activation` (one line) or passes a
callable directly.

Mean-field theory (:mod:`gradstudy.theory`) integrates φ, φ' against Gaussians; its
quadrature splits the integrals at the *kinks* of φ: the points where φ, φ' or φ'' jumps
(0 for ReLU, ±1 for hard tanh, 0 for softsign, whose φ'' jumps). Built-in activations
declare theirs; ``register_activation(name, fn, kinks=...)`` declares a user function's;
otherwise :func:`find_kinks` locates them numerically (cached per function object).
"""

from __future__ import annotations

import dataclasses
import hashlib
import marshal
import math
import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from gradstudy.errors import ConfigError

Activation = Callable[[jax.Array], jax.Array]

LEAKY_RELU_SLOPE = 0.01


def linear(x: jax.Array) -> jax.Array:
    return x


@dataclasses.dataclass(frozen=True)
class LeakyReLU:
    """``x`` for ``x >= 0``, ``negative_slope · x`` below; equal slopes compare (and hash)
    equal, so two instances with one slope share compiled programs and closed forms."""

    negative_slope: float

    @property
    def __name__(self) -> str:  # noqa: D105 (read by callable_id, plots, error messages)
        return "leaky_relu" if self.negative_slope == LEAKY_RELU_SLOPE \
            else f"leaky_relu_{self.negative_slope:g}"

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.where(x >= 0, x, self.negative_slope * x)


def leaky_relu_with_slope(negative_slope: float) -> LeakyReLU:
    """Leaky ReLU with the given slope for ``x < 0`` (a finite number, 0 gives ReLU)."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) \
            or not math.isfinite(negative_slope):
        raise ConfigError(f"negative_slope: must be a finite number, got {negative_slope!r}")
    return LeakyReLU(float(negative_slope))


leaky_relu = leaky_relu_with_slope(LEAKY_RELU_SLOPE)
leaky_relu_02 = leaky_relu_with_slope(0.2)


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU ``x Φ(x)`` (erf form, not the tanh approximation)."""
    return jax.nn.gelu(x, approximate=False)


def elu(x: jax.Array) -> jax.Array:
    """ELU with α = 1: ``x`` for ``x > 0``, ``exp(x) - 1`` below (φ'' jumps at 0)."""
    return jax.nn.elu(x, alpha=1.0)


def softsign(x: jax.Array) -> jax.Array:
    """``x / (1 + |x|)`` (φ'' jumps at 0)."""
    return x / (1.0 + jnp.abs(x))


def hard_tanh(x: jax.Array) -> jax.Array:
    """``clip(x, -1, 1)``."""
    return jnp.clip(x, -1.0, 1.0)


def erf(x: jax.Array) -> jax.Array:
    return jax.scipy.special.erf(x)


_ACTIVATIONS: dict[str, Activation] = {
    "linear": linear,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": leaky_relu,
    "leaky_relu_0.2": leaky_relu_02,
    "gelu": gelu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "elu": elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softsign": softsign,
    "hard_tanh": hard_tanh,
    "erf": erf,
    "relu6": jax.nn.relu6,
}

# Declared kinks (points where φ, φ' or φ'' jumps), keyed by function object.
_DECLARED_KINKS: dict = {
    linear: (), jax.nn.sigmoid: (), jnp.tanh: (), jax.nn.relu: (0.0,), leaky_relu: (0.0,),
    leaky_relu_02: (0.0,), gelu: (), jax.nn.silu: (), elu: (0.0,), jax.nn.selu: (0.0,),
    jax.nn.softplus: (), softsign: (0.0,), hard_tanh: (-1.0, 1.0), erf: (),
    jax.nn.relu6: (0.0, 6.0),
}
_FOUND_KINKS: dict = {}


def _check_kinks(name: str, kinks) -> tuple[float, ...]:
    try:
        values = [float(k) for k in kinks]
    except TypeError:
        values = None
    if values is None or isinstance(kinks, (str, bytes)) \
            or not all(math.isfinite(k) for k in values):
        raise ConfigError(f"kinks: must be a sequence of finite numbers (the points of "
                          f"{name!r} where φ, φ' or φ'' jumps), got {kinks!r}")
    return tuple(sorted(set(values)))


def register_activation(name: str, fn: Activation, kinks=None) -> None:
    """Make ``fn`` available to every config under ``name``.

    Args:
        name: the name configs use.
        fn: elementwise JAX function ``Array -> Array``.
        kinks: the points where ``fn``, its first or its second derivative jumps (e.g.
            ``(0.0,)`` for ReLU), used to split the mean-field integrals there. ``None``
            lets :func:`find_kinks` locate them numerically (on ``[-50, 50]``; declare
            kinks outside that window). ``()`` declares ``fn`` smooth.
    """
    if not callable(fn):
        raise TypeError(f"activation {name!r} must be callable")
    if kinks is not None:
        _DECLARED_KINKS[fn] = _check_kinks(name, kinks)
    _ACTIVATIONS[name] = fn


def activation_names() -> list[str]:
    return sorted(_ACTIVATIONS)


def get_activation(activation: str | Activation) -> Activation:
    """Resolve a name (or pass a callable through)."""
    if callable(activation):
        return activation
    try:
        return _ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ConfigError(
            f"activation: unknown value {activation!r}; allowed: {', '.join(activation_names())} "
            "or a callable"
        ) from None


def callable_id(fn) -> str:
    """``name#hash`` of a callable's code and constants: two different lambdas (or an edited
    function) never share a results-cache key."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__name__", type(fn).__name__)
    if code is None:
        return f"{name}#{repr(fn)}"
    blob = marshal.dumps((code.co_code, code.co_consts, code.co_names))
    return f"{name}#{hashlib.sha1(blob).hexdigest()[:10]}"


def activation_name(activation: str | Activation) -> str:
    if isinstance(activation, str):
        return activation
    return callable_id(activation)


def activation_kinks(activation: str | Activation) -> tuple[float, ...]:
    """Kinks of an activation (a registered name or a callable), sorted.

    Declared kinks (built-ins, ``register_activation(..., kinks=...)``) when there are any,
    else :func:`find_kinks` (computed once per function object).
    """
    fn = get_activation(activation)
    try:
        declared = _DECLARED_KINKS.get(fn)
    except TypeError:  # unhashable callable
        return find_kinks(fn)
    return declared if declared is not None else find_kinks(fn)


_SCAN_WINDOW = 50.0
_SCAN_STEP = 1e-3
# grid offset (fraction of a step) that keeps "round" kinks such as 0, ±1, 6 off the grid,
# where JAX's one-sided/averaged derivatives (d max(x, 0)/dx = 1/2 at 0) would split a jump
_SCAN_OFFSET = 0.3819660112501051
_JUMP_TOL = 1e-7


def _derivative_stack(fn: Activation):
    def d(g):
        return lambda x: jax.jvp(g, (x,), (jnp.ones_like(x),))[1]

    d1 = d(fn)
    d2 = d(d1)
    d3 = d(d2)
    return jax.jit(lambda x: jnp.stack([fn(x), d1(x), d2(x), d3(x)]))


def _jump_residuals(derivs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(3, n-1) trapezoid residuals |F(b) - F(a) - (b-a)(F'(a) + F'(b))/2| / scale of
    F = φ, φ', φ'' on each grid interval: O(h³) where F is smooth, ≈ |jump| across a jump."""
    h = np.diff(x)
    f, df = derivs[:3], derivs[1:]
    res = np.abs(np.diff(f, axis=1) - 0.5 * h * (df[:, 1:] + df[:, :-1]))
    scale = 1.0 + np.abs(f[:, 1:]) + np.abs(f[:, :-1])
    return np.where(np.isfinite(res), res / scale, np.inf)


def find_kinks(fn: Activation, window: float = _SCAN_WINDOW) -> tuple[float, ...]:
    """Locate the jumps of ``fn``, ``fn'`` and ``fn''`` on ``[-window, window]``.

    Scans a grid of step 1e-3 in float64 with autodiff derivatives up to third order:
    across a jump of F (= φ, φ' or φ'') the trapezoid residual
    ``F(b) - F(a) - h (F'(a) + F'(b)) / 2`` is ≈ the jump, while it is O(h³) where F is
    smooth. An interval is a kink when its residual exceeds 1e-7 (relative to |F|) and 100
    times both neighbours' (a steep but smooth function has no isolated spike); each is
    then refined by zooming in (to ~1e-12) and snapped to 6 decimals when within 1e-9 of
    them. Cached per function object.

    Returns:
        The kinks, sorted (empty for a smooth function).
    """
    try:
        return _FOUND_KINKS[fn]
    except (KeyError, TypeError):
        pass
    with jax.enable_x64(True):
        stack = _derivative_stack(fn)
        # every evaluation has shape (rows, 1001), so that the derivatives compile once
        rows = int(round(2 * window / _SCAN_STEP / 1001))
        step = 2 * window / (rows * 1001 - 1)
        x = -window + (np.arange(rows * 1001) + _SCAN_OFFSET) * step

        def evaluate(points):
            padded = np.resize(points, (rows, 1001))
            out = np.asarray(stack(jnp.asarray(padded)), np.float64)
            return out.reshape(4, -1)[:, :points.size]

        res = _jump_residuals(evaluate(x), x)
        padded = np.pad(res, ((0, 0), (1, 1)))
        neighbours = np.maximum(padded[:, :-2], padded[:, 2:])
        spikes = (res > _JUMP_TOL) & (res > 100.0 * neighbours)
        kinks = []
        for order, i in zip(*np.nonzero(spikes)):
            a, b = x[i], x[i + 1]
            for _ in range(4):  # zoom: each round shrinks the interval 1000x (to ~1e-15)
                sub = np.linspace(a, b, 1001)
                r = _jump_residuals(evaluate(sub), sub)
                j = int(np.argmax(r[order]))
                a, b = sub[j], sub[j + 1]
            k = 0.5 * (a + b)
            snapped = round(k, 6)
            kinks.append((snapped if abs(k - snapped) < 1e-9 else k) + 0.0)  # no -0.0
    out = []
    for k in sorted(kinks):
        if not out or k - out[-1] > 1e-8:
            out.append(float(k))
    out = tuple(out)
    try:
        _FOUND_KINKS[fn] = out
    except TypeError:
        pass
    return out
