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
    """A unit-gain sampler and its variance factor ``fan_in * Var W`` (fan_in, fan_out) -> float."""

    sample: Initializer
    variance_factor: Callable[[int, int], float]


def _fans(shape) -> tuple[int, int]:
    return int(shape[-2]), int(shape[-1])


def gaussian(key, shape, dtype=jnp.float32):
    """Mean-field Gaussian W ~ N(0, 1/fan_in); times σ_w gives N(0, σ_w²/fan_in)."""
    fan_in, _ = _fans(shape)
    return jax.random.normal(key, shape, dtype) / math.sqrt(fan_in)


def standard_uniform(key, shape, dtype=jnp.float32):
    """Glorot & Bengio's "standard" U[-1/√n, 1/√n] with n = fan_in (Var = 1/(3n))."""
    fan_in, _ = _fans(shape)
    lim = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -lim, lim)


def glorot_uniform(key, shape, dtype=jnp.float32):
    """Glorot & Bengio's "normalized" (Xavier) U[±√6/√(n_in+n_out)]."""
    fan_in, fan_out = _fans(shape)
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -lim, lim)


def glorot_normal(key, shape, dtype=jnp.float32):
    """Xavier normal N(0, 2/(n_in+n_out))."""
    fan_in, fan_out = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def he_normal(key, shape, dtype=jnp.float32):
    """He/Kaiming normal N(0, 2/fan_in)."""
    fan_in, _ = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_in)


def lecun_normal(key, shape, dtype=jnp.float32):
    """LeCun normal N(0, 1/fan_in)."""
    return gaussian(key, shape, dtype)


def orthogonal(key, shape, dtype=jnp.float32):
    """Random (semi-)orthogonal matrix, gain 1 (Saxe et al. 2014)."""
    return jax.nn.initializers.orthogonal(scale=1.0)(key, shape, dtype)


_INITS: dict[str, InitFamily] = {
    "gaussian": InitFamily(gaussian, lambda fi, fo: 1.0),
    "standard_uniform": InitFamily(standard_uniform, lambda fi, fo: 1.0 / 3.0),
    "glorot_uniform": InitFamily(glorot_uniform, lambda fi, fo: 2.0 * fi / (fi + fo)),
    "glorot_normal": InitFamily(glorot_normal, lambda fi, fo: 2.0 * fi / (fi + fo)),
    "he_normal": InitFamily(he_normal, lambda fi, fo: 2.0),
    "lecun_normal": InitFamily(lecun_normal, lambda fi, fo: 1.0),
    # A semi-orthogonal (fan_in x fan_out) matrix has fan_in * Var W = fan_in / max(fan_in, fan_out)
    # for its entries; square matrices give 1.
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
        variance_factor: ``(fan_in, fan_out) -> fan_in * Var W``; measured by sampling a
            512 x 512 matrix when omitted.
    """
    if not callable(sample):
        raise TypeError(f"initializer {name!r} must be callable")
    _INITS[name] = InitFamily(sample, variance_factor or _measured_variance_factor(sample))


def _measured_variance_factor(sample: Initializer) -> Callable[[int, int], float]:
    def factor(fan_in: int, fan_out: int) -> float:
        w = sample(jax.random.PRNGKey(0), (fan_in, fan_out), jnp.float32)
        return float(fan_in * jnp.var(w))

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
