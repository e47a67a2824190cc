"""Model configuration: a frozen dataclass validated at construction.

A wrong value raises ``ValueError`` with one line naming the field and the allowed values,
so that the CLI can print it and exit without a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradstudy.activations import activation_names, get_activation
from gradstudy.errors import ConfigError
from gradstudy.fingerprint import activation_fingerprint, initializer_fingerprint
from gradstudy.initializers import UNIT_SAMPLERS, get_initializer, initializer_names

NORMS = ("none", "layernorm", "batchnorm")
DTYPES = ("float32", "float64")
# The fields that only scale sampled parameters: points that differ only here share one
# compiled program and are vmapped over (see gradstudy.sweep).
GAIN_FIELDS = ("sigma_w", "sigma_b")


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


def _check_name_or_callable(name: str, value: Any, resolve) -> None:
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


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected network ``h_l = W_l φ(h_{l-1}) + b_l`` of configurable depth.

    Layer 1 maps the input (``in_dim``) to ``width``; layers 2..depth are identical blocks
    stacked with ``nn.scan`` (leading layer axis); a readout maps φ(h_depth) to ``out_dim``.

    Attributes:
        width: hidden units per layer.
        depth: number of hidden layers (weight matrices before the readout).
        in_dim: input dimension; ``None`` means ``width``.
        out_dim: readout dimension.
        activation: a name from ``gradstudy.activations`` or a callable ``jnp -> jnp``.
        init: a name from ``gradstudy.initializers`` or a unit-gain callable
            ``(key, shape, dtype) -> array``.
        sigma_w: weight gain; with ``init="gaussian"`` W ~ N(0, σ_w²/fan_in).
        sigma_b: bias standard deviation, b ~ N(0, σ_b²).
        norm: "none", "layernorm" or "batchnorm" (batch statistics), applied to W φ(h) + b.
        residual_alpha: ``None`` for a plain stack, else layers 2..depth compute
            h + α·f(h) with branch scale α.
        dtype: "float32" or "float64" (float64 needs ``jax_enable_x64``).
    """

    width: int = 256
    depth: int = 16
    in_dim: int | None = None
    out_dim: int = 10
    activation: Any = "tanh"
    init: Any = "gaussian"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    norm: str = "none"
    residual_alpha: float | None = None
    dtype: str = "float32"

    def __post_init__(self):
        # NumPy scalars are accepted and stored as Python numbers (hashable, JSON-able)
        for name in ("width", "depth", "out_dim") + (("in_dim",) if self.in_dim is not None
                                                      else ()):
            object.__setattr__(self, name, check_int(name, getattr(self, name)))
        _check_name_or_callable("activation", self.activation, get_activation)
        _check_name_or_callable("init", self.init, get_initializer)
        for name in ("sigma_w", "sigma_b") + (("residual_alpha",)
                                              if self.residual_alpha is not None else ()):
            object.__setattr__(self, name, check_real(name, getattr(self, name)))
        check_choice("norm", self.norm, NORMS)
        object.__setattr__(self, "dtype", check_dtype(self.dtype))

    @property
    def input_dim(self) -> int:
        return self.width if self.in_dim is None else self.in_dim

    def replace(self, **changes) -> "MLPSpec":
        return dataclasses.replace(self, **changes)

    def static_key(self) -> "MLPSpec":
        """The spec a compiled program is built from: gains removed, and a scaled family
        (gaussian, Glorot, He, LeCun, standard uniform) replaced by its unit-variance
        sampler, so that specs differing only in those share one program; the per-layer
        scales are :meth:`kernel_scales`."""
        family = get_initializer(self.init)
        init = UNIT_SAMPLERS[family.unit] if family.unit else self.init
        return dataclasses.replace(self, init=init, sigma_w=1.0, sigma_b=1.0)

    def kernel_scales(self) -> tuple[float, float, float]:
        """Kernel multipliers (input, hidden, readout) for parameters of ``static_key()``."""
        family = get_initializer(self.init)
        if family.unit is None:
            return (float(self.sigma_w),) * 3
        fans = [(self.input_dim, self.width), (self.width, self.width),
                (self.width, self.out_dim)]
        return tuple(float(self.sigma_w * family.std(fi, fo)) for fi, fo in fans)

    def sigma_w2(self, fan_in: int | None = None, fan_out: int | None = None) -> float:
        """Effective mean-field σ_w² = fan_in · Var W of a hidden (width x width) layer."""
        fan_in = self.width if fan_in is None else fan_in
        fan_out = self.width if fan_out is None else fan_out
        return self.sigma_w**2 * get_initializer(self.init).variance_factor(fan_in, fan_out)

    def describe(self) -> dict:
        """JSON-able description, for result attributes and cache keys.

        ``activation`` and ``init`` are readable labels (a registered name, or a callable's
        ``name#hash``); ``activation_fingerprint`` and ``init_fingerprint`` hash the
        functions they resolve to now (see :mod:`gradstudy.fingerprint`), so re-registering
        a name or changing a default or closure value changes the description.  A
        fingerprint is None where the computation cannot be compared; such a description
        must not key a cache.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["activation_fingerprint"] = activation_fingerprint(self.activation)
        d["init_fingerprint"] = initializer_fingerprint(self.init)
        d["activation"] = _label(self.activation, d["activation_fingerprint"])
        d["init"] = _label(self.init, d["init_fingerprint"])
        return d


def _label(value: Any, fingerprint: str | None) -> str:
    """A registered name as is; a callable as ``name#`` and the start of its fingerprint."""
    if isinstance(value, str):
        return value
    name = getattr(value, "__name__", None) or type(value).__name__
    return f"{name}#{fingerprint[:10] if fingerprint else 'unfingerprintable'}"


def allowed_values() -> dict[str, list[str]]:
    return {"activation": activation_names(), "init": initializer_names(),
            "norm": list(NORMS), "dtype": list(DTYPES)}
