"""One-line validation of user values: every check names the field and the allowed values.

A wrong value raises :class:`gradstudy.errors.ConfigError` with one line, so that the CLI
can print it and exit without a traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from gradstudy.errors import ConfigError

DTYPES = ("float32", "float64")

# Upper bounds: far beyond anything a study runs (and beyond what fits in memory for the
# sizes), so that a typo such as width=10000000000 is one line here rather than an XLA
# error later.
MAX_UNITS = 10**6  # width, in_dim, out_dim, depth
MAX_GAIN = 1e6  # sigma_w, sigma_b, residual_alpha


def check_int(name: str, value: Any, lo: int = 1, hi: int = MAX_UNITS) -> int:
    """``value`` as a Python int in [lo, hi], else a one-line ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not lo <= value <= hi:
        raise ConfigError(f"{name}: must be an integer in [{lo}, {hi}], got {short_repr(value)}")
    return int(value)


def check_real(name: str, value: Any, lo: float = 0.0, hi: float = MAX_GAIN) -> float:
    """``value`` as a finite Python float in [lo, hi], else a one-line ConfigError."""
    try:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError
        as_float = float(value)  # OverflowError for ints beyond float range
    except (TypeError, ValueError, OverflowError):
        as_float = None
    if as_float is None or not math.isfinite(as_float) or not lo <= as_float <= hi:
        raise ConfigError(f"{name}: must be a finite number in [{lo:g}, {hi:g}], "
                          f"got {short_repr(value)}")
    return as_float


def check_choice(name: str, value: Any, allowed) -> str:
    """``value`` must be one of the strings ``allowed`` (arrays and unhashables rejected)."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name}: unknown value {short_repr(value)}; "
                          f"allowed: {', '.join(allowed)}")
    return value


def check_dtype(value: Any) -> str:
    """A dtype given by name or as a type (np.float64, jnp.float32, np.dtype("float64")):
    its name, which must be one of ``DTYPES`` (one-line ConfigError naming "dtype")."""
    if isinstance(value, (type, np.dtype)) and not isinstance(value, str):
        try:
            value = np.dtype(value).name
        except TypeError:
            pass
    return check_choice("dtype", value, DTYPES)


def check_sequence(name: str, value: Any, min_len: int = 1, max_len: int = 10**5) -> tuple:
    """A list, tuple, range or 1-d array as a tuple of ``min_len..max_len`` items; strings,
    mappings, sets and scalars are rejected with one line naming ``name``."""
    is_array = hasattr(value, "__array__") and getattr(value, "ndim", None) == 1
    if not (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) or is_array):
        raise ConfigError(f"{name}: must be a list or tuple, got {short_repr(value)}")
    items = tuple(value)
    if not min_len <= len(items) <= max_len:
        raise ConfigError(f"{name}: needs {min_len} to {max_len} items, got {len(items)}")
    return items


def check_name_or_callable(name: str, value: Any, resolve) -> None:
    if not (isinstance(value, str) or callable(value)):
        raise ConfigError(f"{name}: must be a registered name or a callable, "
                          f"got {short_repr(value)}")
    resolve(value)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to one short line, for error messages."""
    try:
        text = repr(value)
    except Exception:  # a user object whose repr fails must not hide the real error
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def require_dtype(spec) -> None:
    """Refuse to compute a float64 spec in float32.

    With 64-bit JAX off, ``jnp`` silently truncates float64 to float32, so a spec that asks
    for float64 would get float32 numbers (and float32's underflow) without a word.

    Raises:
        ConfigError: one line saying how to enable float64.
    """
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError("dtype: 'float64' needs 64-bit JAX, which is off: call "
                          "jax.config.update('jax_enable_x64', True) first, or wrap the call "
                          "in `with jax.enable_x64(True):` (sweeps do this themselves)")
