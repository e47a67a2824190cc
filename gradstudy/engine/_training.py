"""Training many networks at once with Optax: points × learning rates × seeds in one program.

``train(Training(...), data)`` trains every run of a grid — network specs of any family
with training hooks (:class:`gradstudy.family.TrainHooks`: MLPs, RNNs, 1-D CNNs; their
scalars, e.g. gains or the recurrent scale, enter traced, as in sweeps, where the shapes
agree), optimizers (one per point if wished: learning
rate and clipping threshold traced, the optimizer itself selected per run), learning rates
and seeds (init keys and minibatch order) — as one run axis of a jitted ``lax.scan`` over
steps: ``vmap`` over blocks of runs whose weights fit the CPU's cache, ``lax.map`` over the
blocks (:func:`run_block`; on a GPU one ``vmap``).  The steps run in chunks of
``eval_every``: after each chunk the test set is evaluated, the progress bar moves and the
whole state (parameters, optimizer and monitor state, records) is checkpointed atomically,
so a killed run resumes from its last chunk with bit-identical results.

Recorded per run: the minibatch loss and accuracy every step; the global gradient norm
**before** clipping and whether clipping fired; per-layer gradient norms and relative
updates ‖ΔW_l‖/‖W_l‖ every ``record_every`` steps (:func:`gradstudy.monitor.monitor`
wrapping the optimizer); test (and full training-set) loss and accuracy at every chunk
boundary; the first step whose loss is not finite (``diverged_at``, −1 if none).  A diverged
run's records after its divergence are NaN; the other runs of its batch are computed
independently and are not affected.

References:
    Glorot & Bengio (2010); He et al. (2015); Schoenholz et al. (2017): the studies that
    train with this engine cite their own.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradstudy._seeds import seed_keys
from gradstudy._validate import check_choice, check_int, check_real, check_sequence
from gradstudy._xla import compile_options
from gradstudy.data._datasets import Dataset
from gradstudy.engine._memory import BUDGET_ENV, budget_bytes, human
from gradstudy.engine._optim import OptimizerSpec, build, clip_fired, program_key, select, switch
from gradstudy.errors import ConfigError
from gradstudy.families._registry import family_of, registered_families
from gradstudy.nn._losses import LOSS_FUNCTIONS, TRAINING_LOSSES
from gradstudy.results import (
    DESCRIPTION_ATTR,
    cache_key,
    cached,
    describe_json,
    labeled_dataset,
    notice,
)
from gradstudy.tools._monitor import find_state, leaf_names, monitor

TRAIN_VERSION = 3  # bumped whenever what training records changes (2: update norms,
#                   3: per-point optimizers and their coordinates)


def family_for(spec, field: str = "points"):
    """The model family of ``spec``, which must be trainable (one-line ConfigError)."""
    family = family_of(spec, field)
    if family.train is None:
        allowed = ", ".join(f.spec_type.__name__ for f in registered_families()
                            if f.train is not None)
        raise ConfigError(f"{field}: {type(spec).__name__} networks cannot be trained "
                          f"(trainable: {allowed})")
    return family


def hooks_for(spec):
    """The :class:`gradstudy.family.TrainHooks` of ``spec``'s family."""
    return family_for(spec).train


@dataclass(frozen=True)
class Training:
    """A grid of training runs.

    Attributes:
        points: network specs of one trainable family (MLPSpec, RNNSpec, CNNSpec; their
            input and output sizes must match the data); points whose family
            ``program_key`` agrees share one program (their scalars are traced).
        optimizer: what they are trained with: one spec for every point, or a tuple with
            one per point.  Points whose networks share a program share it whatever their
            optimizers (:func:`gradstudy.optim.switch`; learning rate and clipping
            threshold traced), so a grid over optimizers or clipping methods is one
            compiled program.
        steps: optimizer steps per run.
        learning_rates: one run per rate, for every point.  Default: each point's own
            optimizer's rate (the ``learning_rate`` dim then has one entry, whose
            coordinate is that rate, or NaN where the points' rates differ; the
            ``optimizer_learning_rate`` coordinate has each point's).
        seeds: initialisations (and minibatch orders) per point and rate.
        batch_size: minibatch size (examples drawn uniformly with replacement per step);
            None for full-batch gradient descent (every example at every step).
        loss: "cross_entropy" (integer labels) or "mse" (½‖y − t‖², batch mean).
        record_every: per-layer gradient norms and ‖ΔW_l‖/‖W_l‖ every this many steps.
        eval_every: test-set evaluation and checkpoint every this many steps.
        base_seed: PRNG seed the runs' keys are folded from.
        labels: a name per point (default "p0", "p1", ...).
        seed_lr_scale: optional, one factor per seed multiplying every learning rate of
            that seed (e.g. 1/λ_max of each seed's initial Hessian, so that the rates are
            multiples of each network's own 2/λ_max).
    """

    points: tuple[Any, ...]
    optimizer: OptimizerSpec | tuple[OptimizerSpec, ...]
    steps: int = 1000
    learning_rates: tuple[float, ...] | None = None
    seeds: int = 8
    batch_size: int | None = 128
    loss: str = "cross_entropy"
    record_every: int = 10
    eval_every: int = 100
    base_seed: int = 0
    labels: tuple[str, ...] | None = None
    seed_lr_scale: tuple[float, ...] | None = None

    def __post_init__(self):
        points = check_sequence("points", self.points, max_len=10**4)
        kinds = [family_for(p, f"points: item {i}").name for i, p in enumerate(points)]
        if len(set(kinds)) > 1:
            raise ConfigError(f"points: all of one model family; got {', '.join(kinds)}"[:200])
        for i, p in enumerate(points):
            if p.dtype != "float32":
                raise ConfigError(f"points: item {i} has dtype {p.dtype}; training runs in "
                                  "float32 only")
        if len({hooks_for(p).layers(p) for p in points}) > 1:
            raise ConfigError("points: must share one depth (the records' layer axis)")
        object.__setattr__(self, "points", points)
        if isinstance(self.optimizer, (tuple, list)):
            optimizers = tuple(self.optimizer)
            for i, o in enumerate(optimizers):
                if not isinstance(o, OptimizerSpec):
                    raise ConfigError(f"optimizer: item {i} must be an OptimizerSpec, got "
                                      f"{type(o).__name__}")
            if len(optimizers) != len(points):
                raise ConfigError(f"optimizer: need one OptimizerSpec per point "
                                  f"({len(points)}), got {len(optimizers)}")
            object.__setattr__(self, "optimizer", optimizers)
        elif not isinstance(self.optimizer, OptimizerSpec):
            raise ConfigError(f"optimizer: must be an OptimizerSpec (or one per point), got "
                              f"{type(self.optimizer).__name__}")
        if self.learning_rates is not None:
            rates = check_sequence("learning_rates", self.learning_rates, max_len=10**4)
            object.__setattr__(self, "learning_rates",
                               tuple(check_real("learning_rates", r, 0.0, 1e6) for r in rates))
        else:
            own = {o.learning_rate for o in self.optimizers}
            if len(own) == 1:
                object.__setattr__(self, "learning_rates", (own.pop(),))
        object.__setattr__(self, "steps", check_int("steps", self.steps, 1, 10**8))
        object.__setattr__(self, "seeds", check_int("seeds", self.seeds, 1, 10**5))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size,
                                                             1, 10**6))
        check_choice("loss", self.loss, TRAINING_LOSSES)
        object.__setattr__(self, "record_every", check_int("record_every", self.record_every,
                                                           1, 10**8))
        object.__setattr__(self, "eval_every", check_int("eval_every", self.eval_every, 1,
                                                         10**8))
        object.__setattr__(self, "base_seed", check_int("base_seed", self.base_seed, 0,
                                                        2**32 - 1))
        labels = tuple(f"p{i}" for i in range(len(points))) if self.labels is None \
            else tuple(str(x) for x in check_sequence("labels", self.labels))
        if len(labels) != len(points) or len(set(labels)) != len(labels):
            raise ConfigError(f"labels: need {len(points)} distinct labels, got {labels!r}"
                              [:200])
        object.__setattr__(self, "labels", labels)
        if self.seed_lr_scale is not None:
            scale = tuple(check_real("seed_lr_scale", v, 0.0, 1e12)
                          for v in check_sequence("seed_lr_scale", self.seed_lr_scale))
            if len(scale) != self.seeds:
                raise ConfigError(f"seed_lr_scale: need one factor per seed ({self.seeds}), "
                                  f"got {len(scale)}")
            object.__setattr__(self, "seed_lr_scale", scale)

    @property
    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        """One optimizer per point."""
        if isinstance(self.optimizer, OptimizerSpec):
            return (self.optimizer,) * len(self.points)
        return self.optimizer

    @property
    def rate_axis(self) -> tuple[float, ...]:
        """The ``learning_rate`` coordinate: the rates, or (NaN,) for "each point's own"."""
        return (float("nan"),) if self.learning_rates is None else self.learning_rates

    def point_rates(self, point: int) -> tuple[float, ...]:
        """The learning rates point ``point`` is trained at, along the ``learning_rate``
        dim (before ``seed_lr_scale``)."""
        if self.learning_rates is None:
            return (self.optimizers[point].learning_rate,)
        return self.learning_rates

    @property
    def runs_per_point(self) -> int:
        return len(self.rate_axis) * self.seeds

    def describe(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("points", "optimizer")}  # eval_every too: it sets eval_step
        d["points"] = [p.describe() for p in self.points]
        d["optimizer"] = self.optimizer.describe() if isinstance(self.optimizer,
                                                                OptimizerSpec) \
            else [o.describe() for o in self.optimizer]
        d["train_version"] = TRAIN_VERSION
        return d


# ------------------------------------------------------------------------------ one run
def _loss_fn(spec, loss: str):
    forward = hooks_for(spec).apply(spec)

    def fn(params, x, y):
        out = forward(params, x)
        if loss == "cross_entropy":
            # labels (batch,) or, for sequence outputs, (batch, time): mean over both
            value = LOSS_FUNCTIONS[loss](out, y)
            accuracy = jnp.mean(jnp.argmax(out, -1) == y)
        else:
            value = LOSS_FUNCTIONS[loss](out, y)
            accuracy = jnp.asarray(jnp.nan, value.dtype)
        return value, accuracy

    return fn


class Program(NamedTuple):
    """What one compiled training program is built from; everything else (gains, learning
    rates, clipping thresholds, which optimizer, the data) enters it traced, so trainings
    with equal programs share the compiled code (:func:`programs`)."""

    spec: Any  # the family's program_key of the points
    branches: tuple[OptimizerSpec, ...]  # optim.program_key of each optimizer of the group
    steps: int
    batch_size: int | None
    loss: str
    record_every: int
    chunk: int


def _capacity(prog: Program) -> int:
    return -(-prog.steps // prog.record_every)


def _transform(prog: Program, hyper):
    hooks = hooks_for(prog.spec)
    inner = switch([build(b, hyper["learning_rate"], output_layer=hooks.is_output,
                          stacked=hooks.stacked, clip_threshold=hyper["clip_threshold"])
                    for b in prog.branches], hyper["branch"])
    return monitor(prog.record_every, _capacity(prog), stacked=hooks.stacked, inner=inner)


def _clip_fired(prog: Program, hyper, grads, params):
    hooks = hooks_for(prog.spec)
    return select(hyper["branch"], [clip_fired(b, grads, params, hooks.is_output,
                                               hooks.stacked, hyper["clip_threshold"])
                                    for b in prog.branches])


def _init_run(prog: Program, key, scalars, hyper):
    k_init, k_data = jax.random.split(key)
    params = hooks_for(prog.spec).init(prog.spec, k_init, scalars)
    opt_state = _transform(prog, hyper).init(params)
    return {"params": params, "opt_state": opt_state, "data_key": k_data,
            "diverged_at": jnp.asarray(-1, jnp.int32)}


def _chunk_program(prog: Program):
    """``(state, hyper, start, x, y) -> (state, records (chunk,))`` for one run; vmapped."""
    loss_fn = _loss_fn(prog.spec, prog.loss)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    # only a last chunk that runs past ``steps`` needs its tail masked (a select over the
    # whole state at every step: left out of the program when the chunks divide the steps)
    padded = prog.steps % prog.chunk != 0

    def run(state, hyper, start, x, y):
        tx = _transform(prog, hyper)

        def step(state, t):
            params = state["params"]
            if prog.batch_size is None:  # full batch: plain gradient descent
                xb, yb = x, y
            else:
                idx = jax.random.randint(jax.random.fold_in(state["data_key"], t),
                                         (prog.batch_size,), 0, x.shape[0])
                xb, yb = x[idx], y[idx]
            (value, accuracy), grads = grad_fn(params, xb, yb)
            grad_norm = optax.tree.norm(grads)
            fired = _clip_fired(prog, hyper, grads, params)
            updates, opt_state = tx.update(grads, state["opt_state"], params, at_step=t)
            active = t < prog.steps  # the padded tail of the last chunk does nothing
            diverged = state["diverged_at"] >= 0
            now = active & ~diverged & ~jnp.isfinite(value)
            new = {"params": optax.apply_updates(params, updates), "opt_state": opt_state,
                   "data_key": state["data_key"],
                   "diverged_at": jnp.where(now, t, state["diverged_at"]).astype(jnp.int32)}
            if padded:
                new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)
            keep = active & ~diverged
            nan = jnp.asarray(jnp.nan, value.dtype)
            record = {"loss": jnp.where(keep, value, nan),
                      "accuracy": jnp.where(keep, accuracy, nan),
                      "grad_norm": jnp.where(keep, grad_norm, nan),
                      "clip_fired": jnp.where(keep, fired, False)}
            return new, record

        return jax.lax.scan(step, state, start + jnp.arange(prog.chunk))

    return run


RUN_BLOCK_BYTES = 2 * 2**20  # on a CPU: runs vmapped together hold about this many weights


def run_block(spec, runs: int) -> int:
    """How many runs one training program steps together (``vmap``); blocks of them run
    one after another (``lax.map``).

    On a CPU, vmapping every run streams all their weights through memory at each step;
    blocks whose weights stay in cache are faster (measured, 2 cores, 20-layer MLPs, batch
    64, 64 runs: width 128: blocks of 2 runs 61 GFLOP/s, all 64 vmapped 43; width 32:
    blocks of 16 39 GFLOP/s, all 64 34).  Elsewhere (GPU) every run is vmapped.
    """
    if jax.default_backend() != "cpu":
        return runs
    fit = max(2, RUN_BLOCK_BYTES // (4 * hooks_for(spec).param_count(spec)))
    return int(min(runs, 2 ** int(np.log2(fit))))


@functools.lru_cache(maxsize=32)
def programs(prog: Program, fingerprint=None):
    """``(init, run, evaluate)``, jitted, for ``prog``; cached, so that trainings with the
    same program (in one process) compile it once.  ``fingerprint`` (of the network's
    functions) is only part of the cache key; call ``programs.__wrapped__`` where the
    functions have none."""
    # runs are initialised one after another (lax.map), not vmapped: XLA's CPU runtime
    # (jax 0.10.2) deadlocks on the vmapped initialisation of orthogonal-init networks
    # (measured: 20 layers, width 64, ≥ 4 runs, every time; 2 runs or lax.map: never)

    init = jax.jit(lambda keys, scalars, hyper: jax.lax.map(
        lambda a: _init_run(prog, *a), (keys, scalars, hyper)),
        compiler_options=compile_options("training"))
    chunk = _chunk_program(prog)

    def run(state, hyper, start, x, y):
        block = run_block(prog.spec, hyper["learning_rate"].shape[0])
        return jax.lax.map(lambda a: chunk(a[0], a[1], start, x, y), (state, hyper),
                           batch_size=block)

    run = jax.jit(over_devices(run, 2), compiler_options=compile_options("training"))
    evaluate = jax.jit(over_devices(_evaluate_program(prog), 1),
                       compiler_options=compile_options("training"))
    return init, run, evaluate


def run_devices() -> list:
    """The devices a training's runs are spread over (the default backend's)."""
    return jax.devices()


def _runs_sharding():
    """How a run-axis array is laid out over :func:`run_devices` (None: one device)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = run_devices()
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("runs",)), PartitionSpec("runs"))


def pad_runs(tree, multiple: int):
    """``tree`` (numpy, leading run axis) with its last run repeated up to a multiple of
    ``multiple`` runs (a whole number per device; the copies are dropped afterwards)."""
    return jax.tree.map(lambda a: np.concatenate(
        [a, np.repeat(a[-1:], -a.shape[0] % multiple, axis=0)]), tree)


def place_runs(tree):
    """``tree`` (leading run axis) laid out as the training programs return it, so that
    the first call of a program sees the layout of the later ones: a program is compiled
    per input layout, and the initial state (from one device) would compile it twice."""
    sharding = _runs_sharding()
    # through the host: splitting a device array compiles a slicing program per shape
    return tree if sharding is None else jax.device_put(jax.device_get(tree), sharding)


def over_devices(fn, n_split: int):
    """``fn`` with its first ``n_split`` arguments (and every output) split along their
    leading run axis over :func:`run_devices`, each device running its share
    (``jax.shard_map``); the other arguments are given whole to every device.  The run
    count must be a multiple of the device count (:func:`_compute` pads it).

    On a CPU, gradstudy's entry points make one XLA device per core
    (:func:`gradstudy._xla.default_xla_flags`): one device executes its program on one
    core at a time, and runs are independent, so each core gets its share (measured, 2
    cores, 64 runs: 1.9x at width 32, 1.8x at width 128).  With one device ``fn`` is
    returned unchanged.
    """
    from jax.sharding import PartitionSpec

    if len(run_devices()) == 1:
        return fn

    def wrapped(*args):
        split, whole = PartitionSpec("runs"), PartitionSpec()
        specs = tuple(split if i < n_split else whole for i in range(len(args)))
        mesh = _runs_sharding().mesh
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=split,
                             check_vma=False)(*args)

    return wrapped


def _program_for(prog: Program):
    fingerprint = _fingerprint(prog.spec)
    return programs(prog, fingerprint) if fingerprint is not None else \
        programs.__wrapped__(prog, None)


EVAL_TRAIN_EXAMPLES = 1000  # training-set metrics on the first this many examples
EVAL_MEMORY_BYTES = 2**28  # runs evaluated together: their activations within this


def _evaluate_program(prog: Program):
    """``(states, x, y, x_test, y_test) -> metrics (runs,)``: ``lax.map`` over the runs in
    batches whose forward activations fit ``EVAL_MEMORY_BYTES``."""
    spec = prog.spec
    loss_fn = _loss_fn(spec, prog.loss)

    def evaluate_all(states, x, y, x_test, y_test):
        runs = jax.tree.leaves(states)[0].shape[0]
        examples = max(x.shape[0], x_test.shape[0])
        per_run = hooks_for(spec).activation_bytes(spec, examples)
        batch = int(max(1, min(runs, EVAL_MEMORY_BYTES // per_run)))
        return jax.lax.map(lambda st: evaluate(st, x, y, x_test, y_test), states,
                           batch_size=batch)

    def evaluate(state, x, y, x_test, y_test):
        diverged = state["diverged_at"] >= 0
        out = {}
        for name, (xs, ys) in (("train", (x, y)), ("test", (x_test, y_test))):
            value, accuracy = loss_fn(state["params"], xs, ys)
            nan = jnp.asarray(jnp.nan, value.dtype)
            out[f"{name}_loss"] = jnp.where(diverged, nan, value)
            out[f"{name}_accuracy"] = jnp.where(diverged, nan, accuracy)
        return out

    return evaluate_all


# ------------------------------------------------------------------------------ the grid
def train(training: Training, data: Dataset, cache_dir: Path | str | None = None,
          name: str = "train", progress: bool = True, progress_label: str = "train"):
    """Train every run of ``training`` on ``data``; a labeled xarray Dataset.

    With ``cache_dir``, the finished result is stored there (:func:`gradstudy.results.cached`,
    keyed by the training description and a hash of the data) and a checkpoint after every
    chunk lets a killed run resume where it stopped.

    Returns:
        Dataset with dims ``point``, ``learning_rate``, ``seed`` and ``step`` (``loss``,
        ``accuracy``, ``grad_norm`` before clipping, ``clip_fired``), ``eval_step``
        (``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy`` on the whole
        sets, after that many steps), ``record`` × ``layer`` (``layer_grad_norm``,
        ``layer_update_ratio`` of the kernels, layer 1 = input layer, depth + 1 = readout)
        and ``diverged_at`` (first step with a non-finite loss, −1 if none).
    """

    _check_data(training, data)
    description = dict(training.describe(), data=data_fingerprint(data))

    def compute():
        return _compute(training, data, description, cache_dir, name, progress,
                        progress_label)

    cache = None if cache_dir is None else Path(cache_dir)
    return cached(name, description, compute, cache, _not_cacheable(training))


def _not_cacheable(training: Training) -> str | None:
    for label, point in zip(training.labels, training.points):
        why = family_for(point).why_unfingerprintable(point)
        if why is not None:
            return f"point {label!r}: {why}"
    return None


def _check_data(training: Training, data: Dataset) -> None:
    if not isinstance(data, Dataset):
        raise ConfigError(f"data: must be a gradstudy.data.Dataset, got {type(data).__name__}")
    for i, p in enumerate(training.points):
        why = hooks_for(p).check_data(p, data)
        if why is not None:
            raise ConfigError(f"points: item {i} {why}"[:300])
    if training.loss == "cross_entropy" and not data.classes:
        raise ConfigError("loss: cross_entropy needs class labels; this data is a "
                          "regression task: use loss='mse'")
    if training.loss == "mse" and data.classes:
        raise ConfigError("loss: mse needs regression targets; this data has class labels: "
                          "use loss='cross_entropy'")


def data_fingerprint(data: Dataset) -> str:
    digest = hashlib.sha256()
    for a in (data.x, data.y, data.x_test, data.y_test):
        a = np.ascontiguousarray(a)
        digest.update(json.dumps([a.dtype.str, a.shape]).encode())
        digest.update(a.tobytes())
    digest.update(str(data.classes).encode())
    return "sha256:" + digest.hexdigest()


def initial_params(training: Training, point: int, seed):
    """The parameters run (point, any rate, seed) starts from, as :func:`train` draws them;
    ``seed`` an int, or a sequence of seeds (then stacked along a leading seed axis, drawn
    in one compiled program)."""
    spec = training.points[point]
    seeds = np.atleast_1d(np.asarray(seed, int))
    keys = run_keys(training)[seeds]
    family = family_for(spec)
    static = family.program_key(spec)
    draw = _initial_params_program(static) if _fingerprint(static) is not None \
        else _initial_params_program.__wrapped__(static)
    params = draw(keys, _scalar_arrays([family.scalars(spec)]))
    return jax.tree.map(lambda a: a[0], params) if np.ndim(seed) == 0 else params


@functools.lru_cache(maxsize=16)
def _initial_params_program(static):
    init = hooks_for(static).init

    def one(key, scalars):
        k_init, _ = jax.random.split(key)
        return init(static, k_init, scalars)


    return jax.jit(lambda keys, scalars: jax.lax.map(
        lambda k: one(k, jax.tree.map(lambda a: a[0], scalars)), keys),
        compiler_options=compile_options("training"))


def _scalar_arrays(per_point: list[tuple]) -> tuple:
    """The family scalars of several points, stacked: one float32 array per entry of the
    ``scalars`` tuple, with a leading point axis."""
    return tuple(np.asarray([s[j] for s in per_point], np.float32)
                 for j in range(len(per_point[0])))


def clear_initial_params_programs() -> None:
    """Free the compiled programs of :func:`initial_params`."""
    _initial_params_program.cache_clear()


def _fingerprint(spec):
    return family_for(spec).fingerprint(spec)


def run_keys(training: Training) -> jax.Array:
    """Keys of the runs of one point, (learning rate, seed) flattened rate-major; seed s
    has the same key at every rate and point (common random numbers)."""
    seeds = seed_keys(training.base_seed, training.seeds)
    return jnp.tile(seeds, (len(training.rate_axis), 1))


def _group_inputs(training: Training, idx: list[int], branches) -> tuple:
    """Per-run (point-major, then rate, then seed) family scalars (e.g. an MLP's kernel
    scales and σ_b) and the traced optimizer settings of the points ``idx``."""
    per_point = training.runs_per_point
    per_seed = np.ones(training.seeds) if training.seed_lr_scale is None else \
        np.asarray(training.seed_lr_scale)
    family = family_for(training.points[idx[0]])
    scalars = tuple(np.repeat(a, per_point, axis=0) for a in _scalar_arrays(
        [family.scalars(training.points[i]) for i in idx]))
    rates = np.concatenate([(np.asarray(training.point_rates(i))[:, None] * per_seed[None, :]
                             ).reshape(-1) for i in idx]).astype(np.float32)
    opts = [training.optimizers[i] for i in idx]
    hyper = {"learning_rate": rates,
             "clip_threshold": np.repeat(np.asarray([o.clip_threshold for o in opts],
                                                    np.float32), per_point),
             "branch": np.repeat(np.asarray([branches.index(program_key(o)) for o in opts],
                                            np.int32), per_point)}
    keys = jnp.tile(run_keys(training), (len(idx), 1))
    return keys, scalars, hyper


def _groups(training: Training, chunk: int) -> dict[Program, list[int]]:
    """Points by the program they are trained with (network structure; the optimizers of
    the points sharing a network become the program's branches)."""
    by_spec: dict[Any, list[int]] = {}
    for i, p in enumerate(training.points):
        by_spec.setdefault(family_for(p).program_key(p), []).append(i)
    groups = {}
    for spec, idx in by_spec.items():
        branches = tuple(dict.fromkeys(program_key(training.optimizers[i]) for i in idx))
        groups[Program(spec, branches, training.steps, training.batch_size, training.loss,
                       training.record_every, chunk)] = idx
    return groups


def _compute(training, data, description, cache_dir, name, progress, progress_label):
    from tqdm.auto import tqdm


    chunk = min(training.eval_every, training.steps)
    n_chunks = -(-training.steps // chunk)
    groups = _groups(training, chunk)
    x_dev = [jnp.asarray(a) for a in (data.x, data.y, data.x_test, data.y_test)]
    eval_data = [x_dev[0][:EVAL_TRAIN_EXAMPLES], x_dev[1][:EVAL_TRAIN_EXAMPLES],
                 x_dev[2], x_dev[3]]
    bar = tqdm(total=len(groups) * n_chunks, desc=progress_label, unit="chunk",
               disable=not progress, leave=False)
    results = {}
    for prog, idx in groups.items():
        _check_memory(prog, training, len(idx) * training.runs_per_point, data)
    n_devices = len(run_devices())
    for prog, idx in groups.items():
        keys, scalars, hyper = _group_inputs(training, idx, prog.branches)
        runs = keys.shape[0]
        keys, scalars, hyper = pad_runs((np.asarray(keys), scalars, hyper), n_devices)
        init, run, evaluate = _program_for(prog)
        ckpt = None if cache_dir is None else _checkpoint_path(cache_dir, name, description,
                                                               idx)
        state = place_runs(init(keys, scalars, hyper))
        hyper = place_runs(hyper)
        records, evals, done = [], [evaluate(state, *eval_data)], 0
        if ckpt is not None and ckpt.exists():
            loaded = _load_checkpoint(ckpt, state)
            if loaded is not None:
                state, records, evals, done = loaded
                state = place_runs(state)
                bar.update(done)
        for c in range(done, n_chunks):
            state, rec = run(state, hyper, jnp.asarray(c * chunk, jnp.int32), x_dev[0],
                             x_dev[1])
            records.append(jax.device_get(rec))
            evals.append(evaluate(state, *eval_data))
            if ckpt is not None:
                _save_checkpoint(ckpt, state, records, evals, c + 1)
            bar.update(1)
        results[tuple(idx)] = _assemble_group(training, state, records, evals, runs)
        if ckpt is not None:
            ckpt.unlink(missing_ok=True)
    bar.close()
    arrays = _merge_groups(training, results)
    ds = _to_dataset(training, arrays, n_chunks, chunk)
    ds.attrs[DESCRIPTION_ATTR] = describe_json(description)
    return ds


def training_bytes(prog: Program, training: Training, runs: int, data: Dataset) -> int:
    """Estimated memory of one training program (bytes): per run the parameters with
    their gradients, updates and optimizer state (≈ 6 copies, 2 more per extra optimizer
    the program switches between), the activations a minibatch step keeps for the
    backward pass (≈ 4 per unit and layer), the monitor's buffers; plus the data and the
    per-step records of all runs."""
    spec = prog.spec
    hooks = hooks_for(spec)
    params = hooks.param_count(spec)
    batch = data.x.shape[0] if prog.batch_size is None else prog.batch_size
    kept = 4 * hooks.activation_bytes(spec, batch)  # ≈ 4 float32 words per unit
    monitor = 4 * _capacity(prog) * (hooks.layers(spec) + 1) * 5
    copies = 6 + 2 * (len(prog.branches) - 1)
    per_run = 4 * copies * params + kept + monitor + 13 * prog.steps
    return runs * per_run + 4 * (data.x.size + data.x_test.size + 2 * data.y.size)


def _check_memory(prog, training, runs, data) -> None:

    spec = prog.spec
    need, budget = training_bytes(prog, training, runs, data), budget_bytes()
    if need > budget:
        label = family_for(spec).label(spec)
        raise ConfigError(f"memory: this training needs ≈ {human(need)} ({runs} runs of "
                          f"{label}, batch {training.batch_size}) but "
                          f"the budget is {human(budget)}; use fewer seeds, rates or points, "
                          f"a smaller network or batch, or raise {BUDGET_ENV}")


def _assemble_group(training, state, records, evals, runs: int) -> dict:
    """The group's arrays, without the padding runs (beyond ``runs``)."""
    state, records, evals = jax.tree.map(lambda a: np.asarray(a)[:runs],
                                         jax.device_get((state, records, evals)))
    rec = {k: np.concatenate([np.asarray(r[k]) for r in records], axis=1)[:, :training.steps]
           for k in records[0]}
    ev = {k: np.stack([np.asarray(e[k]) for e in jax.device_get(evals)], axis=1)
          for k in evals[0]}
    mon = jax.device_get(find_state(state["opt_state"]))
    names = hooks_for(training.points[0]).layer_leaves(_leaf_names(state["params"]))
    leaves = dict(zip(_leaf_names(state["params"]), range(len(mon.grad_norm))))
    per_layer = {}
    for field in ("grad_norm", "update_norm", "update_ratio"):
        cols = []
        for leaf in names:
            buf = np.asarray(getattr(mon, field)[leaves[leaf]])  # (runs, capacity[, layers])
            cols.append(buf if buf.ndim == 3 else buf[..., None])
        per_layer[f"layer_{field}"] = np.concatenate(cols, axis=2)
    steps = np.asarray(mon.step)[0]
    out = {**rec, **ev, **per_layer, "diverged_at": np.asarray(state["diverged_at"]),
           "record_step": steps}
    return out


def _leaf_names(params) -> list[str]:

    return leaf_names(params)


def _merge_groups(training, results) -> dict:
    n_points, n_rates, n_seeds = len(training.points), len(training.rate_axis), \
        training.seeds
    merged = {}
    record_step = None
    for idx, arrays in results.items():
        record_step = arrays.pop("record_step")
        for k, v in arrays.items():
            v = v.reshape((len(idx), n_rates, n_seeds) + v.shape[1:])
            if k not in merged:
                merged[k] = np.empty((n_points,) + v.shape[1:], v.dtype)
            merged[k][list(idx)] = v
    merged["record_step"] = record_step
    return merged


_TRAIN_DIMS = {
    "loss": (("step",), "minibatch loss"),
    "accuracy": (("step",), "minibatch accuracy (NaN for regression)"),
    "grad_norm": (("step",), "global gradient norm before clipping"),
    "clip_fired": (("step",), "clipping changed the gradient at this step"),
    "train_loss": (("eval_step",), f"loss on the first {EVAL_TRAIN_EXAMPLES} training "
                                   "examples"),
    "train_accuracy": (("eval_step",), f"accuracy on the first {EVAL_TRAIN_EXAMPLES} "
                                       "training examples"),
    "test_loss": (("eval_step",), "loss on the test set"),
    "test_accuracy": (("eval_step",), "accuracy on the test set"),
    "layer_grad_norm": (("record", "layer"), "Frobenius norm of dL/dW_l before clipping"),
    "layer_update_norm": (("record", "layer"), "||ΔW_l|| of the step taken"),
    "layer_update_ratio": (("record", "layer"), "||ΔW_l|| / ||W_l|| of the step taken"),
    "diverged_at": ((), "first step with a non-finite loss (-1: none)"),
}


def _to_dataset(training, arrays, n_chunks, chunk):

    record_step = arrays.pop("record_step")
    dims = {k: ("point", "learning_rate", "seed") + d for k, (d, _) in _TRAIN_DIMS.items()}
    descriptions = {k: text for k, (_, text) in _TRAIN_DIMS.items()}
    eval_steps = np.minimum(np.arange(n_chunks + 1) * chunk, training.steps)
    coords = {
        "point": list(training.labels),
        "learning_rate": np.asarray(training.rate_axis),
        "seed": np.arange(training.seeds),
        "seed_lr_scale": ("seed", np.ones(training.seeds) if training.seed_lr_scale is None
                          else np.asarray(training.seed_lr_scale)),
        "step": np.arange(training.steps),
        "eval_step": eval_steps,
        "record": np.arange(arrays["layer_grad_norm"].shape[3]),
        "record_step": ("record", np.asarray(record_step, np.int64)),
        "layer": np.arange(1, arrays["layer_grad_norm"].shape[4] + 1),
        **{k: ("point", v) for k, v in
           hooks_for(training.points[0]).coords(training.points).items()},
        "optimizer": ("point", [o.name for o in training.optimizers]),
        "optimizer_learning_rate": ("point", [o.learning_rate for o in training.optimizers]),
        "clipping": ("point", [o.clip for o in training.optimizers]),
        "clip_threshold": ("point", [o.clip_threshold if o.clip != "none" else np.nan
                                     for o in training.optimizers]),
    }
    attrs = {"optimizer": json.dumps(training.describe()["optimizer"], sort_keys=True),
             "notes": "records after a run's divergence are NaN; eval_step e holds the "
                      "metrics after e optimizer steps"}
    return labeled_dataset(arrays, dims, coords, attrs, descriptions)


# --------------------------------------------------------------------------- checkpoints
def _checkpoint_path(cache_dir, name, description, idx) -> Path:

    return Path(cache_dir) / f"{name}-{cache_key(description)}-g{idx[0]}.ckpt.npz"


def _save_checkpoint(path: Path, state, records, evals, done: int) -> None:
    """State, records so far and the chunk count, written atomically (temp + rename)."""
    leaves = jax.tree.leaves(jax.device_get(state))
    payload = {f"state_{i}": np.asarray(a) for i, a in enumerate(leaves)}
    for c, rec in enumerate(records):
        payload.update({f"rec_{c}_{k}": np.asarray(v) for k, v in rec.items()})
    for c, ev in enumerate(jax.device_get(evals)):
        payload.update({f"eval_{c}_{k}": np.asarray(v) for k, v in ev.items()})
    payload["done"] = np.asarray(done)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_checkpoint(path: Path, template):
    """(state, records, evals, done) from ``path``, or None (one line) if unusable."""

    try:
        with np.load(path) as z:
            files = dict(z)
        treedef = jax.tree.structure(template)
        leaves = jax.tree.leaves(template)
        state_leaves = [files[f"state_{i}"] for i in range(len(leaves))]
        for got, want in zip(state_leaves, leaves):
            if got.shape != want.shape or got.dtype != want.dtype:
                raise ValueError("shapes differ")
        done = int(files["done"])
        rec_keys = sorted({k.split("_", 2)[2] for k in files if k.startswith("rec_")})
        ev_keys = sorted({k.split("_", 2)[2] for k in files if k.startswith("eval_")})
        records = [{k: files[f"rec_{c}_{k}"] for k in rec_keys} for c in range(done)]
        evals = [{k: files[f"eval_{c}_{k}"] for k in ev_keys} for c in range(done + 1)]
    except Exception as e:  # noqa: BLE001 -- a damaged checkpoint: start again
        notice(f"checkpoint {path} is unusable ({type(e).__name__}); starting afresh")
        return None
    notice(f"resuming from {path} after {done} chunks")
    state = jax.tree.unflatten(treedef, [jnp.asarray(a) for a in state_leaves])
    return state, records, evals, done
