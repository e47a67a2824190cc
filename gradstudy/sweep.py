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
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.config import (
    MLPSpec,
    check_int,
    check_real,
    check_sequence,
    short_repr,
)
from gradstudy.errors import ConfigError
from gradstudy.fingerprint import activation_fingerprint, initializer_fingerprint
from gradstudy.memory import plan_chunk
from gradstudy.models import LOSSES, apply_gains, init_params
from gradstudy.probes import MEASURED, gradient_norms, layer_jacobian_singular_values
from gradstudy.status import ABSENT

# Bumped whenever what a sweep measures changes, so that cached results are not reused.
ENGINE_VERSION = 4  # 3: status codes; 4: a forward pass underflowed to 0 is not no_path
MAX_POINTS = 10**5  # points, labels, gain_chunk
MAX_SEEDS = 10**5
MAX_BATCH = 10**6


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
        gain_chunk: at most this many gain points evaluated together (each with all
            seeds); fewer when the memory budget asks for it (:mod:`gradstudy.memory`).
        loss: "mse" (½‖y − t‖²) or "linear" (⟨y, t⟩: an output cotangent t independent of
            the network, the mean-field assumption; see ``models.linear_loss``).
    """

    points: tuple[MLPSpec, ...]
    depths: tuple[int, ...]
    seeds: int = 16
    batch: int = 128
    input_std: float = 1.0
    base_seed: int = 0
    labels: tuple[str, ...] | None = None
    gain_chunk: int = 8
    loss: str = "mse"

    def __post_init__(self):
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ConfigError(f"loss: unknown value {short_repr(self.loss)}; "
                              f"allowed: {', '.join(LOSSES)}")
        points = check_sequence("points", self.points, max_len=MAX_POINTS)
        for i, p in enumerate(points):
            if not isinstance(p, MLPSpec):
                raise ConfigError(f"points: item {i} must be an MLPSpec, got {short_repr(p)}")
        object.__setattr__(self, "points", points)
        depths = [check_int("depths", d) for d in check_sequence("depths", self.depths)]
        object.__setattr__(self, "depths", tuple(sorted(set(depths))))
        object.__setattr__(self, "seeds", check_int("seeds", self.seeds, 1, MAX_SEEDS))
        object.__setattr__(self, "batch", check_int("batch", self.batch, 1, MAX_BATCH))
        object.__setattr__(self, "gain_chunk", check_int("gain_chunk", self.gain_chunk, 1,
                                                         MAX_POINTS))
        # jax.random.PRNGKey keeps 32 bits: 2**32 would silently repeat seed 0
        object.__setattr__(self, "base_seed", check_int("base_seed", self.base_seed, 0,
                                                        2**32 - 1))
        object.__setattr__(self, "input_std", check_real("input_std", self.input_std))
        if self.labels is None:
            labels = tuple(f"p{i}" for i in range(len(points)))
        else:
            labels = check_sequence("labels", self.labels, max_len=MAX_POINTS)
        if len(labels) != len(points):
            raise ConfigError(f"labels: need one label per point ({len(points)}), "
                              f"got {len(labels)}")
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise ConfigError("labels: each must be a non-empty string, "
                                  f"got {short_repr(label)}")
        labels = tuple(str(label) for label in labels)  # NumPy strings stored as str
        if len(set(labels)) != len(labels):
            repeated = next(x for x in labels if labels.count(x) > 1)
            raise ConfigError(f"labels: must be distinct, {repeated!r} is repeated")
        object.__setattr__(self, "labels", labels)

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
                   keep_backprop: bool = False, loss: str = "mse") -> dict:
    """One network: sample weights and data from ``key``, then ``gradient_norms``."""
    params, x, targets = sample_network(spec, key, batch, input_std, kernel_scales, sigma_b)
    return gradient_norms(spec, params, x, targets, depths, keep_backprop=keep_backprop,
                          loss=loss)


def jacobian_mean_singular_values(spec: MLPSpec, seeds: int, batch: int,
                                  base_seed: int = 0) -> np.ndarray:
    """Mean singular value of the layer Jacobians of each of ``seeds`` networks.

    Glorot & Bengio's (2010) statistic: per network (weights and inputs drawn as in a
    sweep, by :func:`sample_network` from ``seed_keys(base_seed, seeds)``), the mean over
    examples, layers 2..depth and singular values of ∂h_l/∂h_(l−1)
    (:func:`gradstudy.probes.layer_jacobian_singular_values`).  One jitted program, vmapped
    over the seeds.

    Args:
        spec: the network (its own gains and σ_b); depth >= 2, no batchnorm.
        seeds: number of networks.
        batch: examples per network, x ~ N(0, 1).
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).

    Returns:
        (seeds,) float64 mean singular values.
    """
    @functools.partial(jax.vmap, in_axes=0)
    def per_seed(key):
        params, x, _ = sample_network(spec, key, batch)
        return layer_jacobian_singular_values(spec, params, x).mean()

    return np.asarray(jax.jit(per_seed)(seed_keys(base_seed, seeds)), float)


@functools.lru_cache(maxsize=64)
def compiled_program(spec: MLPSpec, depths: tuple[int, ...], batch: int, input_std: float,
                     chunk: int, keep_backprop: bool = False, loss: str = "mse",
                     fingerprint=None):
    """``(keys (S,), kernel_scales (G, 3), sigma_b (G,)) -> dict of (G, S, ...)``, jitted.

    ``fingerprint`` (of the spec's activation and init, :mod:`gradstudy.fingerprint`) is
    only part of the cache key: a name registered again, or a callable whose defaults or
    closure changed, gets a new program.  Call ``compiled_program.__wrapped__`` (no
    caching) where the functions cannot be fingerprinted.

    ``spec`` is a ``static_key()``; each point's gains enter as its ``kernel_scales()``.
    The G·S networks (gain point × seed) run ``chunk`` at a time: ``lax.map`` over chunks,
    ``vmap`` within one, so memory is bounded by the chunk (see :mod:`gradstudy.memory`).
    """
    def one_network(args):
        key, kernel_scales, sigma_b = args
        return init_and_probe(spec, depths, batch, input_std, key, kernel_scales, sigma_b,
                              keep_backprop, loss)

    @jax.jit
    def program(keys, kernel_scales, sigma_b):
        n_gains, n_seeds = sigma_b.shape[0], keys.shape[0]
        n = n_gains * n_seeds
        # network g·S + s is gain point g with seed s (common random numbers across points)
        networks = (jnp.tile(keys, (n_gains,) + (1,) * (keys.ndim - 1)),
                    jnp.repeat(kernel_scales, n_seeds, axis=0), jnp.repeat(sigma_b, n_seeds))
        # pad to whole chunks (repeating network 0; dropped below): a remainder chunk would
        # compile the whole program a second time (see memory.plan_chunk)
        size = min(chunk, n)
        pad = -n % size
        networks = jax.tree.map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), networks)
        out = jax.lax.map(one_network, networks, batch_size=size)
        return jax.tree.map(lambda a: a[:n].reshape((n_gains, n_seeds) + a.shape[1:]), out)

    return program


def run_sweep_arrays(sweep: Sweep, progress: bool = True, keep_backprop: bool = False,
                     desc: str = "sweep") -> dict:
    """Run every program of ``sweep``; arrays with leading (point, seed) axes.

    Each program's chunk size comes from :func:`gradstudy.memory.plan_chunk`; a sweep one of
    whose networks cannot fit the memory budget is refused (ConfigError) before any program
    is compiled.
    """
    from tqdm.auto import tqdm

    keys = seed_keys(sweep.base_seed, sweep.seeds)
    results: dict[str, np.ndarray] = {}
    groups = sweep.groups()
    if keep_backprop and len({s.width for s in groups}) > 1:
        raise ConfigError("points: keep_backprop needs a single width across points")
    chunks = {spec: plan_chunk(spec, sweep.depths, sweep.batch, len(idx) * sweep.seeds,
                               keep_backprop, most=sweep.gain_chunk * sweep.seeds)
              for spec, idx in groups.items()}
    # one result dtype for all groups, so float64 points never pass through float32
    out_dtype = np.result_type(*[np.dtype(s.dtype) for s in groups])
    bar = tqdm(total=len(sweep.points), desc=desc, unit="point", disable=not progress,
               leave=False)
    for k, (spec, idx) in enumerate(groups.items()):
        bar.set_description(f"{desc}: program {k + 1}/{len(groups)} ({_program_label(spec)}, "
                            f"{len(idx)} points × {sweep.seeds} seeds, "
                            f"{chunks[spec]} networks at a time)")
        dtype = np.dtype(spec.dtype)
        scales = np.asarray([sweep.points[i].kernel_scales() for i in idx], dtype)
        sigma_b = np.asarray([sweep.points[i].sigma_b for i in idx], dtype)
        fingerprint = (activation_fingerprint(spec.activation),
                       initializer_fingerprint(spec.init))
        build = compiled_program if None not in fingerprint else compiled_program.__wrapped__
        program = build(spec, sweep.depths, sweep.batch, float(sweep.input_std),
                        chunks[spec], keep_backprop, sweep.loss, fingerprint)
        with jax.enable_x64(spec.dtype == "float64"):
            out = jax.device_get(program(keys, scales, sigma_b))
        for name, value in out.items():
            if name not in results:
                is_status = name.endswith("_status")
                results[name] = np.full((len(sweep.points),) + value.shape[1:],
                                        ABSENT if is_status else np.nan,
                                        value.dtype if is_status else out_dtype)
            results[name][np.asarray(idx)] = value
        bar.update(len(idx))
    bar.close()
    return results


def to_dataset(sweep: Sweep, arrays: dict, description: dict | None = None):
    """The arrays of ``run_sweep_arrays`` as a Dataset: dims (point, seed) + the probe's
    declared dims (:data:`gradstudy.probes.MEASURED`), per-point coordinates, and the sweep
    ``description`` (default ``sweep.describe()``) as attributes."""
    from gradstudy.results import DESCRIPTION_ATTR, describe_json, labeled_dataset

    pts = sweep.points
    described = [p.describe() for p in pts]
    coords = {
        "point": list(sweep.labels),
        "seed": np.arange(sweep.seeds),
        "depth": np.asarray(sweep.depths),
        "layer": np.arange(1, sweep.max_depth + 1),
        "activation": ("point", [d["activation"] for d in described]),
        "init": ("point", [d["init"] for d in described]),
        "sigma_w": ("point", [float(p.sigma_w) for p in pts]),
        "sigma_b": ("point", [float(p.sigma_b) for p in pts]),
        "sigma_w2": ("point", [float(p.sigma_w2()) for p in pts]),
        "width": ("point", [p.width for p in pts]),
        "norm": ("point", [p.norm for p in pts]),
        "residual_alpha": ("point", [np.nan if p.residual_alpha is None else p.residual_alpha
                                     for p in pts]),
    }
    attrs = {
        DESCRIPTION_ATTR: describe_json(sweep.describe() if description is None
                                        else description),
        "batch": sweep.batch,
        "input_std": float(sweep.input_std),
        "notes": "depth-d networks are the first d layers of one max-depth stack per seed; "
                 "NaN marks layers a depth-d network does not have, or a non-finite result",
    }
    dims = {name: ("point", "seed") + d for name, (d, _) in MEASURED.items()}
    descriptions = {name: text for name, (_, text) in MEASURED.items()}
    descriptions["loss"] = f"{sweep.loss} loss at initialization"
    return labeled_dataset(arrays, dims, coords, attrs, descriptions)


def unfingerprintable(sweep: Sweep) -> str | None:
    """Why ``sweep``'s results cannot be cached (a function without a fingerprint), or None."""
    from gradstudy.activations import get_activation
    from gradstudy.fingerprint import why_initializer_not_fingerprintable, why_not_fingerprintable

    for label, point in zip(sweep.labels, sweep.points):
        described = point.describe()
        if described["activation_fingerprint"] is None:
            why = why_not_fingerprintable(get_activation(point.activation))
            return f"point {label!r}: activation {described['activation']} ({why})"
        if described["init_fingerprint"] is None:
            why = why_initializer_not_fingerprintable(point.init)
            return f"point {label!r}: init {described['init']} ({why})"
    return None


def run_cached(sweep: Sweep, cache_dir=None, name: str = "sweep", progress: bool = True,
               keep_backprop: bool = False, progress_label: str = "sweep"):
    """Run ``sweep`` or load its verified result (:func:`gradstudy.results.cached`): the
    file name carries a hash of the full description (functions by fingerprint), the file
    the description and a checksum.  ``progress_label`` names the work in the progress bar
    (e.g. the study)."""
    from gradstudy.results import cached

    description = dict(sweep.describe(), keep_backprop=keep_backprop)

    def compute():
        arrays = run_sweep_arrays(sweep, progress=progress, keep_backprop=keep_backprop,
                                  desc=progress_label)
        return to_dataset(sweep, arrays, description)

    return cached(name, description, compute, cache_dir, unfingerprintable(sweep))


def release_programs() -> None:
    """Free every compiled program and return the freed memory to the operating system.

    ``reproduce`` calls this between studies: each study's programs are not used again, and
    without it the process's resident memory grows by every study's compiled code (smoke
    scale: 1.43 GB peak instead of the largest single study's 0.84 GB).
    """
    import ctypes
    import ctypes.util
    import gc

    compiled_program.cache_clear()
    jax.clear_caches()
    gc.collect()
    try:  # glibc keeps freed heap pages mapped; malloc_trim hands them back (no-op elsewhere)
        getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", lambda _: 0)(0)
    except OSError:
        pass


def _program_label(spec: MLPSpec) -> str:
    from gradstudy.activations import activation_name

    return (f"{activation_name(spec.activation).split('#')[0]}, width {spec.width}, "
            f"depth {spec.depth}, {spec.dtype}")

