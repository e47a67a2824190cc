"""Weight initializers as Flax-style functions ``(key, shape, dtype) -> array``.

Every initializer is *unit-gain*: the config's ``sigma_w`` multiplies the sampled matrix.
Keeping the gain out of the sampler lets a sweep ``vmap`` over σ_w inside one compiled
program, and ``weight_variance_factor`` (n_in · Var W at unit gain) is what the mean-field
theory needs: the effective σ_w² of a layer is ``sigma_w**2 * weight_variance_factor``.

References:
    Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward
    neural networks ("standard" and "normalized" initializations).
    He et al. (2015), Delving deep into rectifiers.
    LeCun et al. (1998), Efficient BackProp.
    Saxe et al. (2014), Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks (orthogonal initialization).
    Poole et al. (2016), Exponential expressivity in deep neural networks through transient
    chaos (mean-field Gaussian W ~ N(0, σ_w²/fan_in)).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gradstudy.errors import ConfigError

Initializer = Callable[..., jax.Array]


class InitFamily(NamedTuple):
    """A unit-gain sampler and its variance factor ``fan_in * Var W`` (fan_in, fan_out) -> float.

    ``unit`` names the unit-variance distribution ("normal" or "uniform") when the family
    is that distribution times a per-layer constant std(fan_in, fan_out): such families
    share one compiled sweep program, the constant becoming a per-point scale.
    """

    sample: Initializer
    variance_factor: Callable[[int, int], float]
    unit: str | None = None

    def std(self, fan_in: int, fan_out: int) -> float:
        """Entry standard deviation at unit gain for a (fan_in x fan_out) kernel."""
        return math.sqrt(self.variance_factor(fan_in, fan_out) / fan_in)


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel ``(..., in, out)``: a conv kernel ``(k…, C_in, C_out)``
    counts its receptive field, fan_in = C_in·∏k and fan_out = C_out·∏k, as flax's
    ``variance_scaling`` (in_axis=-2, out_axis=-1) does; a dense kernel is ``(in, out)``."""
    if len(shape) < 2:
        raise ValueError(f"a kernel needs at least 2 dimensions (in, out), got shape {shape}")
    receptive = math.prod(int(k) for k in shape[:-2])
    return int(shape[-2]) * receptive, int(shape[-1]) * receptive


def unit_normal(key, shape, dtype=jnp.float32):
    """Entries N(0, 1)."""
    return jax.random.normal(key, shape, dtype)


def unit_uniform(key, shape, dtype=jnp.float32):
    """Entries U[-√3, √3] (variance 1)."""
    return jax.random.uniform(key, shape, dtype, -math.sqrt(3.0), math.sqrt(3.0))


UNIT_SAMPLERS = {"normal": unit_normal, "uniform": unit_uniform}


def _scaled_family(unit: str, variance_factor: Callable[[int, int], float],
                   doc: str) -> InitFamily:
    def sample(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fans(shape)
        std = math.sqrt(variance_factor(fan_in, fan_out) / fan_in)
        return UNIT_SAMPLERS[unit](key, shape, dtype) * jnp.asarray(std, dtype)

    sample.__doc__ = doc
    return InitFamily(sample, variance_factor, unit)


_SCALED = {
    "gaussian": _scaled_family(
        "normal", lambda fi, fo: 1.0,
        "Mean-field Gaussian W ~ N(0, 1/fan_in); times σ_w gives N(0, σ_w²/fan_in)."),
    "standard_uniform": _scaled_family(
        "uniform", lambda fi, fo: 1.0 / 3.0,
        "Glorot & Bengio's \"standard\" U[-1/√n, 1/√n], n = fan_in (Var = 1/(3n))."),
    "glorot_uniform": _scaled_family(
        "uniform", lambda fi, fo: 2.0 * fi / (fi + fo),
        "Glorot & Bengio's \"normalized\" (Xavier) U[±√6/√(n_in+n_out)]."),
    "glorot_normal": _scaled_family(
        "normal", lambda fi, fo: 2.0 * fi / (fi + fo), "Xavier normal N(0, 2/(n_in+n_out))."),
    "he_normal": _scaled_family("normal", lambda fi, fo: 2.0, "He/Kaiming normal N(0, 2/fan_in)."),
    "lecun_normal": _scaled_family("normal", lambda fi, fo: 1.0, "LeCun normal N(0, 1/fan_in)."),
}
gaussian = _SCALED["gaussian"].sample
standard_uniform = _SCALED["standard_uniform"].sample
glorot_uniform = _SCALED["glorot_uniform"].sample
glorot_normal = _SCALED["glorot_normal"].sample
he_normal = _SCALED["he_normal"].sample
lecun_normal = _SCALED["lecun_normal"].sample


def orthogonal(key, shape, dtype=jnp.float32):
    """Random (semi-)orthogonal matrix, gain 1 (Saxe et al. 2014)."""
    return jax.nn.initializers.orthogonal(scale=1.0)(key, shape, dtype)


_INITS: dict[str, InitFamily] = {
    **_SCALED,
    # A semi-orthogonal (fan_in x fan_out) matrix has fan_in * Var W = fan_in / max(fan_in, fan_out)
    # for its entries; square matrices give 1.  A conv kernel (k…, C_in, C_out) is
    # orthogonalized as the (C_in·∏k, C_out) matrix: its factor is that of those fans.
    "orthogonal": InitFamily(orthogonal, lambda fi, fo: min(fi, fo) / fo),
}
# Common aliases, so that a config can say what a paper says.
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
            "kaiming_normal": "he_normal"}


def register_initializer(name: str, sample: Initializer,
                         variance_factor: Callable[[int, int], float] | None = None) -> None:
    """Add a unit-gain initializer ``sample(key, shape, dtype)``.

    Args:
        name: name used in configs.
        sample: Flax-style initializer.
        variance_factor: ``(fan_in, fan_out) -> fan_in * Var W``; measured when omitted,
            as fan_in · E[W²] over ≥ 2**18 sampled entries at those fans (zero-mean
            initializers assumed).
    """
    if not callable(sample):
        raise TypeError(f"initializer {name!r} must be callable")
    _ALIASES.pop(name, None)  # a user's registration wins over a built-in alias
    _INITS[name] = InitFamily(sample, variance_factor or _measured_variance_factor(sample))


def register_scaled_initializer(name: str, unit: str,
                                variance_factor: Callable[[int, int], float]) -> None:
    """Add a family "unit-variance ``unit`` distribution × std(fan_in, fan_out)".

    Such families share compiled sweep programs with every other family of the same
    ``unit`` ("normal" or "uniform"), e.g. ``variance_factor=lambda fi, fo: 1.5``.
    """
    if unit not in UNIT_SAMPLERS:
        raise ConfigError(f"unit: unknown value {unit!r}; allowed: {', '.join(UNIT_SAMPLERS)}")
    _ALIASES.pop(name, None)
    _INITS[name] = _scaled_family(unit, variance_factor, f"{unit} × std from {name}")


def _measured_variance_factor(sample: Initializer) -> Callable[[int, int], float]:
    """fan_in · Var W estimated from ≥ 2**18 entries (independent draws at these fans)."""
    def factor(fan_in: int, fan_out: int) -> float:
        draws = -(-(2**18) // (fan_in * fan_out))
        keys = jax.random.split(jax.random.PRNGKey(0), draws)
        w = jax.vmap(lambda k: sample(k, (fan_in, fan_out), jnp.float32))(keys)
        return float(fan_in * jnp.mean(w**2))

    return factor


def initializer_names() -> list[str]:
    return sorted(set(_INITS) | set(_ALIASES))


def get_initializer(init: str | Initializer) -> InitFamily:
    if callable(init):
        return InitFamily(init, _measured_variance_factor(init))
    name = _ALIASES.get(init, init)
    try:
        return _INITS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"init: unknown value {init!r}; allowed: {', '.join(initializer_names())} or a callable"
        ) from None
