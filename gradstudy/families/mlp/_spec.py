"""Model configuration: a frozen dataclass validated at construction.

A wrong value raises ``ValueError`` with one line naming the field and the allowed values,
so that the CLI can print it and exit without a traceback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gradstudy._validate import (
    DTYPES,
    check_choice,
    check_dtype,
    check_int,
    check_name_or_callable,
    check_real,
)
from gradstudy.nn._activations import activation_names, get_activation
from gradstudy.nn._fingerprint import (
    activation_fingerprint,
    fingerprint_label,
    initializer_fingerprint,
)
from gradstudy.nn._initializers import UNIT_SAMPLERS, get_initializer, initializer_names

NORMS = ("none", "layernorm", "batchnorm")
# The fields that only scale sampled parameters: points that differ only here share one
# compiled program and are vmapped over (see gradstudy.engine).
GAIN_FIELDS = ("sigma_w", "sigma_b")


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
        activation: a name from ``gradstudy.nn`` or a callable ``jnp -> jnp``.
        init: a name from ``gradstudy.nn`` or a unit-gain callable
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
        check_name_or_callable("activation", self.activation, get_activation)
        check_name_or_callable("init", self.init, get_initializer)
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
        functions they resolve to now (see :mod:`gradstudy.nn`), so re-registering
        a name or changing a default or closure value changes the description.  A
        fingerprint is None where the computation cannot be compared; such a description
        must not key a cache.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["activation_fingerprint"] = activation_fingerprint(self.activation)
        d["init_fingerprint"] = initializer_fingerprint(self.init)
        d["activation"] = fingerprint_label(self.activation, d["activation_fingerprint"])
        d["init"] = fingerprint_label(self.init, d["init_fingerprint"])
        return d


def allowed_values() -> dict[str, list[str]]:
    return {"activation": activation_names(), "init": initializer_names(),
            "norm": list(NORMS), "dtype": list(DTYPES)}
