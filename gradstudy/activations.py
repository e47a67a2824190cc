"""Elementwise activations by name, plus any user function ``jnp -> jnp``.

A study names its activation with a string so that configs stay hashable and readable in
saved results; a researcher adds one with :func:`register_activation` (one line) or passes a
callable directly.
"""

from __future__ import annotations

import hashlib
import marshal
from typing import Callable

import jax
import jax.numpy as jnp

from gradstudy.errors import ConfigError

Activation = Callable[[jax.Array], jax.Array]

LEAKY_RELU_SLOPE = 0.01


def linear(x: jax.Array) -> jax.Array:
    return x


def leaky_relu(x: jax.Array) -> jax.Array:
    return jnp.where(x >= 0, x, LEAKY_RELU_SLOPE * x)


_ACTIVATIONS: dict[str, Activation] = {
    "linear": linear,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": leaky_relu,
}


def register_activation(name: str, fn: Activation) -> None:
    """Make ``fn`` available to every config under ``name``."""
    if not callable(fn):
        raise TypeError(f"activation {name!r} must be callable")
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
