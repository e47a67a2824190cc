"""Sweeps: a grid of model specs × depths × seeds, one compiled program per distinct shape.

Points that differ only in their gains (σ_w, σ_b), or only in the scale of a Gaussian or
uniform init family (Gaussian, Xavier, He, LeCun, standard uniform), share a program: those
enter as per-point kernel scales on a ``lax.map`` axis (chunked, so memory stays bounded),
seeds are a ``vmap`` axis, and all depths come out of one pass
(:func:`gradstudy.probes.gradient_norms`).  Seeds use common random numbers: seed s draws
the same unit-gain weights and data for every point.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.config import ConfigError, MLPSpec
from gradstudy.models import apply_gains, init_params
from gradstudy.probes import gradient_norms

# Bumped whenever what a sweep measures changes, so that cached results are not reused.
ENGINE_VERSION = 2


@dataclass(frozen=True)
class Sweep:
    """What to measure.

    Attributes:
        points: model specs (their ``depth`` is ignored: each is built ``max(depths)`` deep).
        depths: network depths measured for every point.
        seeds: number of independent initializations (a vmapped axis).
        batch: examples per seed, x ~ N(0, input_std²), targets ~ N(0, 1).
        input_std: standard deviation of the inputs.
        base_seed: PRNG seed the per-seed keys are folded from.
        labels: a name per point (default "p0", "p1", ...).
        gain_chunk: gain points evaluated together (each with all seeds).
    """

    points: tuple[MLPSpec, ...]
    depths: tuple[int, ...]
    seeds: int = 16
    batch: int = 128
    input_std: float = 1.0
    base_seed: int = 0
    labels: tuple[str, ...] | None = None
    gain_chunk: int = 8

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(self.points))
        if not self.points:
            raise ConfigError("points: a sweep needs at least one model spec")
        depths = tuple(self.depths)
        if not depths or not all(_is_int(d) and d >= 1 for d in depths):
            raise ConfigError(f"depths: must be positive integers, got {depths}")
        object.__setattr__(self, "depths", tuple(sorted({int(d) for d in depths})))
        for name in ("seeds", "batch", "gain_chunk", "base_seed"):
            value = getattr(self, name)
            if not _is_int(value) or value < (0 if name == "base_seed" else 1):
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.input_std, numbers.Real) or not (self.input_std >= 0):
            raise ConfigError(f"input_std: must be a number >= 0, got {self.input_std!r}")
        if self.labels is None:
            object.__setattr__(self, "labels", tuple(f"p{i}" for i in range(len(self.points))))
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(self.labels) != len(self.points) or len(set(self.labels)) != len(self.labels):
            raise ConfigError("labels: need one distinct label per point")

    @property
    def max_depth(self) -> int:
        return self.depths[-1]

    def describe(self) -> dict:
        """JSON-able description; what does not change results (gain_chunk, the points'
        own depth) is left out so it cannot cause cache misses."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("points", "gain_chunk")}
        d["points"] = [p.replace(depth=self.max_depth).describe() for p in self.points]
        d["engine_version"] = ENGINE_VERSION
        return d

    def groups(self) -> dict[MLPSpec, list[int]]:
        """Point indices by compiled program (spec without gains, built max_depth deep)."""
        out: dict[MLPSpec, list[int]] = {}
        for i, p in enumerate(self.points):
            out.setdefault(p.replace(depth=self.max_depth).static_key(), []).append(i)
        return out


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def seed_keys(base_seed: int, seeds: int) -> jax.Array:
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(base_seed), s))(
        jnp.arange(seeds))


def sample_network(spec: MLPSpec, key: jax.Array, batch: int, input_std: float = 1.0,
                   kernel_scales=None, sigma_b=None):
    """Weights, inputs x ~ N(0, input_std²) and targets ~ N(0, 1) drawn from one ``key``.

    Weights are drawn from ``spec.static_key()`` and scaled by ``kernel_scales`` (default
    ``spec.kernel_scales()``) and σ_b (default the spec's); a sweep passes them, traced.
    """
    k_init, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    kernel_scales = spec.kernel_scales() if kernel_scales is None else kernel_scales
    sigma_b = spec.sigma_b if sigma_b is None else sigma_b
    params = apply_gains(init_params(spec.static_key(), k_init), kernel_scales, sigma_b)
    x = input_std * jax.random.normal(k_x, (batch, spec.input_dim), dtype)
    targets = jax.random.normal(k_t, (batch, spec.out_dim), dtype)
    return params, x, targets


def init_and_probe(spec: MLPSpec, depths: tuple[int, ...], batch: int, input_std: float,
                   key: jax.Array, kernel_scales=None, sigma_b=None,
                   keep_backprop: bool = False) -> dict:
    """One network: sample weights and data from ``key``, then ``gradient_norms``."""
    params, x, targets = sample_network(spec, key, batch, input_std, kernel_scales, sigma_b)
    return gradient_norms(spec, params, x, targets, depths, keep_backprop=keep_backprop)


@functools.lru_cache(maxsize=64)
def compiled_program(spec: MLPSpec, depths: tuple[int, ...], batch: int, input_std: float,
                     gain_chunk: int, keep_backprop: bool = False):
    """``(keys (S,), kernel_scales (G, 3), sigma_b (G,)) -> dict of (G, S, ...)``, jitted.

    ``spec`` is a ``static_key()``; each point's gains enter as its ``kernel_scales()``.
    """
    def per_gain(gains, keys):
        kernel_scales, sigma_b = gains
        return jax.vmap(lambda k: init_and_probe(spec, depths, batch, input_std, k,
                                                 kernel_scales, sigma_b, keep_backprop))(keys)

    @jax.jit
    def program(keys, kernel_scales, sigma_b):
        return jax.lax.map(lambda g: per_gain(g, keys), (kernel_scales, sigma_b),
                           batch_size=min(gain_chunk, sigma_b.shape[0]))

    return program


def run_sweep_arrays(sweep: Sweep, progress: bool = True, keep_backprop: bool = False) -> dict:
    """Run every program of ``sweep``; arrays with leading (point, seed) axes."""
    from tqdm.auto import tqdm

    keys = seed_keys(sweep.base_seed, sweep.seeds)
    results: dict[str, np.ndarray] = {}
    groups = sweep.groups()
    if keep_backprop and len({s.width for s in groups}) > 1:
        raise ConfigError("points: keep_backprop needs a single width across points")
    # one result dtype for all groups, so float64 points never pass through float32
    out_dtype = np.result_type(*[np.dtype(s.dtype) for s in groups])
    bar = tqdm(total=len(sweep.points), desc="sweep", unit="point", disable=not progress,
               leave=False)
    for spec, idx in groups.items():
        dtype = np.dtype(spec.dtype)
        scales = np.asarray([sweep.points[i].kernel_scales() for i in idx], dtype)
        sigma_b = np.asarray([sweep.points[i].sigma_b for i in idx], dtype)
        program = compiled_program(spec, sweep.depths, sweep.batch, float(sweep.input_std),
                                   sweep.gain_chunk, keep_backprop)
        with jax.enable_x64(spec.dtype == "float64"):
            out = jax.device_get(program(keys, scales, sigma_b))
        for name, value in out.items():
            if name not in results:
                results[name] = np.full((len(sweep.points),) + value.shape[1:], np.nan,
                                        out_dtype)
            results[name][np.asarray(idx)] = value
        bar.update(len(idx))
    bar.close()
    return results


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
