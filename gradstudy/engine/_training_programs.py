"""The compiled programs of a training, and how their runs are laid out over devices.

Every run of a group of points sharing a network (a :class:`Program`) is trained by one
jitted ``lax.scan`` over the steps of a chunk (:func:`programs`: init, run, evaluate): per
run the minibatch loss and accuracy, the global gradient norm **before** clipping and
whether clipping fired every step, and the monitor's per-layer records
(:func:`gradstudy.tools.monitor` wrapping the optimizer, which the program selects per
run: :func:`gradstudy.engine.switch`).  Runs are ``vmap``-ped in blocks whose weights fit
the CPU's cache and the blocks ``lax.map``-ped (:func:`run_block`; on a GPU one
``vmap``); the run axis is split over the host devices (:func:`over_devices`,
:func:`pad_runs`, :func:`place_runs`).  :func:`initial_params` draws the parameters a run
starts from with the same keys.

Both compiled-program caches live here, once: :func:`programs` (an ``lru_cache``) and the
programs of :func:`initial_params` (:func:`clear_initial_params_programs`); the sweep
engine's ``release_programs`` clears both.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradstudy._xla import compile_options
from gradstudy.engine._distributed import place
from gradstudy.engine._optim import OptimizerSpec, build, clip_fired, select, switch
from gradstudy.engine._training_spec import (
    Training,
    _fingerprint,
    family_for,
    hooks_for,
    run_keys,
)
from gradstudy.nn._losses import LOSS_FUNCTIONS
from gradstudy.tools._monitor import monitor


# ------------------------------------------------------------------------------ one run
def _loss_fn(spec, loss: str):
    forward = hooks_for(spec).apply(spec)

    def fn(params, x, y):
        out = forward(params, x)
        if loss == "cross_entropy":
            # labels (batch,) or, for sequence outputs, (batch, time): mean over both
            value = LOSS_FUNCTIONS[loss](out, y)
            accuracy = jnp.mean(jnp.argmax(out, -1) == y)
            # the argmax of NaN logits is class 0: the accuracy of a non-finite forward
            # pass would read as the class-0 fraction, a real-looking number
            accuracy = jnp.where(jnp.isfinite(value), accuracy,
                                 jnp.asarray(jnp.nan, accuracy.dtype))
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
            # at the divergence step the loss is kept (inf or NaN says how it diverged),
            # but a gradient of a non-finite forward pass means nothing (ReLU makes a NaN
            # cotangent an exact 0): its norm NaN, clipping not fired; the accuracy is NaN
            # there already (_loss_fn: NaN wherever the loss is not finite)
            record = {"loss": jnp.where(keep, value, nan),
                      "accuracy": jnp.where(keep, accuracy, nan),
                      "grad_norm": jnp.where(keep & ~now, grad_norm, nan),
                      "clip_fired": jnp.where(keep & ~now, fired, False)}
            return new, record

        return jax.lax.scan(step, state, start + jnp.arange(prog.chunk))

    return run


# --------------------------------------------------------------------- runs and devices
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
    """The devices a training's (and a sweep's) runs are spread over: the default
    backend's, of every process when several take part (``jax.distributed``)."""
    return jax.devices()


def _runs_sharding():
    """How a run-axis array is laid out over :func:`run_devices` (None: one device)."""
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
    per input layout, and the initial state (from one device) would compile it twice.
    With several processes (:func:`gradstudy.engine.initialize_distributed`) each one
    keeps the runs of its own devices."""
    sharding = _runs_sharding()
    # through the host: splitting a device array compiles a slicing program per shape
    return tree if sharding is None else place(jax.device_get(tree), sharding)


def place_whole(tree):
    """``tree`` (host arrays, e.g. the data) given whole to every device of
    :func:`run_devices`, laid out once instead of copied at every call of a program;
    unchanged with one device."""
    sharding = _runs_sharding()
    if sharding is None:
        return tree
    return place(jax.device_get(tree), NamedSharding(sharding.mesh, PartitionSpec()))


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
    if len(run_devices()) == 1:
        return fn

    def wrapped(*args):
        split, whole = PartitionSpec("runs"), PartitionSpec()
        specs = tuple(split if i < n_split else whole for i in range(len(args)))
        mesh = _runs_sharding().mesh
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=split,
                             check_vma=False)(*args)

    return wrapped


# --------------------------------------------------------------------------- evaluation
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


# ------------------------------------------------------------------- initial parameters
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
