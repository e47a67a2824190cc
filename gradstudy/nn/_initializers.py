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
    Xiao et al. (2018), Dynamical isometry and a mean field theory of CNNs: how to train
    10,000-layer vanilla convolutional neural networks (delta-orthogonal initialization).
    Poole et al. (2016), Exponential expressivity in deep neural networks through transient
    chaos (mean-field Gaussian W ~ N(0, σ_w²/fan_in)).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    """Random (semi-)orthogonal matrix, gain 1 (Saxe et al. 2014), Haar-distributed.

    ``jax.nn.initializers.orthogonal`` to rounding (the same Gaussian draw), computed by
    :func:`householder_orthogonal`: a batched LAPACK QR inside a vmapped program can deadlock
    on XLA CPU (jax 0.10.2; seen with 256 x 256 MLP layers, 8 networks vmapped).  A kernel
    of more than two dimensions is orthogonalized as the ``(∏ shape[:-1], shape[-1])``
    matrix, as jax does.
    """
    rows = int(np.prod(shape[:-1]))
    return householder_orthogonal(key, (rows, int(shape[-1])), dtype).reshape(shape)


def householder_orthogonal(key, shape, dtype=jnp.float32):
    """Random (semi-)orthogonal ``(rows, cols)`` matrix, gain 1, without a QR custom call.

    The same matrix as :func:`orthogonal` (``jax.nn.initializers.orthogonal``: Q of the QR
    decomposition of a Gaussian matrix drawn from ``key``, signs making R's diagonal
    positive, so Q is Haar-distributed), to rounding, but computed by Householder
    reflections in plain ``jnp`` (two ``fori_loop``s of rank-1 updates).  Reason: on XLA
    CPU (jax 0.10.2) a batched LAPACK QR of square 64 x 64 matrices inside a vmapped sweep
    program of conv nets never finished (a deadlock: the process idled at 10 % CPU); the
    same program with this construction runs in seconds.
    """
    rows, cols = (int(n) for n in shape)
    m, n = (cols, rows) if rows < cols else (rows, cols)  # m >= n: orthonormal columns
    a = jax.random.normal(key, (m, n), dtype)
    index = jnp.arange(m)

    def reflect(j, carry):
        # H_j = I − 2 v vᵀ zeroes column j of R below the diagonal
        r, vs = carry
        x = jnp.where(index >= j, r[:, j], 0)
        scale = jnp.max(jnp.abs(x))
        x = x / jnp.where(scale > 0, scale, 1)  # no under/overflow in the norms
        sign = jnp.where(x[j] >= 0, 1, -1).astype(dtype)
        v = x.at[j].add(sign * jnp.linalg.norm(x))  # x − R_jj e_j, R_jj = −sign·‖x‖
        v = v / jnp.linalg.norm(v)
        return r - 2 * jnp.outer(v, v @ r), vs.at[j].set(v)

    r, vs = jax.lax.fori_loop(0, n, reflect, (a, jnp.zeros((n, m), dtype)))

    def form(i, q):  # Q = H_0 H_1 … H_(n−1) applied to the first n columns of I
        v = vs[n - 1 - i]
        return q - 2 * jnp.outer(v, v @ q)

    q = jax.lax.fori_loop(0, n, form, jnp.eye(m, n, dtype=dtype))
    q = q * jnp.where(jnp.diagonal(r) >= 0, 1, -1).astype(dtype)  # R_jj > 0
    return q.T if rows < cols else q


def delta_orthogonal(key, shape, dtype=jnp.float32):
    """Delta-orthogonal conv kernel, gain 1 (Xiao et al. 2018, Algorithm 2).

    A kernel ``(k…, C_in, C_out)`` is zero at every tap except the centre one, which is a
    random (semi-)orthogonal ``C_in x C_out`` matrix (orthonormal rows if C_in <= C_out,
    else orthonormal columns; :func:`householder_orthogonal`).  The centre is tap
    ``(k - 1) // 2`` on every spatial axis: the tap that 'SAME' padding aligns with the
    output position, so with C_in = C_out the convolution applies one orthogonal map at
    every position (a norm-preserving isometry of the whole signal).  A dense kernel
    ``(in, out)`` (no spatial axes) is a plain (semi-)orthogonal matrix.
    """
    if len(shape) < 2:
        raise ValueError(f"a kernel needs at least 2 dimensions (in, out), got shape {shape}")
    *spatial, c_in, c_out = (int(n) for n in shape)
    centre = tuple((k - 1) // 2 for k in spatial)
    q = householder_orthogonal(key, (c_in, c_out), dtype)
    return jnp.zeros(shape, dtype).at[centre].set(q)


_INITS: dict[str, InitFamily] = {
    **_SCALED,
    # A semi-orthogonal (fan_in x fan_out) matrix has fan_in * Var W = fan_in / max(fan_in, fan_out)
    # for its entries; square matrices give 1.  A conv kernel (k…, C_in, C_out) is
    # orthogonalized as the (C_in·∏k, C_out) matrix: its factor is that of those fans.
    "orthogonal": InitFamily(orthogonal, lambda fi, fo: min(fi, fo) / fo),
    # Delta-orthogonal: the centre tap of a (k…, C_in, C_out) kernel holds all of its
    # Σ W² = min(C_in, C_out); averaged over the kernel's C_in·C_out·∏k entries,
    # fan_in · E[W²] = min(C_in, C_out) / C_out (1 for C_in = C_out: a critical linear
    # layer; ReLU needs σ_w = √2).  At the receptive-field fans (fan_in = C_in·∏k,
    # fan_out = C_out·∏k) that is min(fan_in, fan_out) / fan_out, the orthogonal
    # family's formula.  It is the factor mean-field theory needs (a pre-activation's
    # variance is Σ_inputs E[W²]·q), but ``InitFamily.std`` is then the kernel's RMS entry,
    # not the spread of the non-zero (centre-tap) entries, which are √∏k times larger.
    "delta_orthogonal": InitFamily(delta_orthogonal, lambda fi, fo: min(fi, fo) / fo),
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
