"""Training many networks at once with Optax: points × learning rates × seeds in one program.

``train(Training(...), data)`` trains every run of a grid — network specs of any family
with training hooks (:class:`gradstudy.families.TrainHooks`: MLPs, RNNs, 1-D CNNs; their
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
updates ‖ΔW_l‖/‖W_l‖ every ``record_every`` steps (:func:`gradstudy.tools.monitor`
wrapping the optimizer); test (and full training-set) loss and accuracy at every chunk
boundary; the first step whose loss is not finite (``diverged_at``, −1 if none).  A diverged
run's records after its divergence are NaN, and so are its gradient norm and accuracy at the
divergence step (``clip_fired`` False there) and its per-layer records from it on (with the
reason, ``forward_nonfinite``, in their status companions); an accuracy whose loss is not
finite (a step's or an evaluation's) is NaN, never the class-0 fraction that the argmax of
NaN logits gives.  The other runs of its batch are computed independently and are not
affected.

The pieces: the spec (:class:`Training`, :mod:`gradstudy.engine._training_spec`), the
compiled programs and their layout over devices (:mod:`gradstudy.engine._training_programs`),
the checkpoints (:mod:`gradstudy.engine._checkpoints`); here :func:`train` groups the points
by program, checks the memory, runs the chunks and assembles the labeled Dataset.  With
several processes (``jax.distributed``, :mod:`gradstudy.engine._distributed`) each trains
the runs of its own devices, every one gets the whole result, and process 0 alone writes
the checkpoints and the result.

References:
    Glorot & Bengio (2010); He et al. (2015); Schoenholz et al. (2017): the studies that
    train with this engine cite their own.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import status
from gradstudy._validate import short_repr
from gradstudy.data._datasets import Dataset, check_dataset
from gradstudy.engine._checkpoints import (
    _checkpoint_path,
    _load_checkpoint,
    _save_checkpoint,
    checkpoint_identity,
)
from gradstudy.engine._distributed import (
    cached_once,
    gather,
    is_writer,
    multiprocess,
    same_everywhere,
)
from gradstudy.engine._memory import BUDGET_ENV, budget_bytes, human
from gradstudy.engine._optim import program_key
from gradstudy.engine._training_programs import (
    EVAL_TRAIN_EXAMPLES,
    Program,
    _capacity,
    _scalar_arrays,
    pad_runs,
    place_runs,
    place_whole,
    programs,
    run_devices,
)
from gradstudy.engine._training_spec import (
    Training,
    _fingerprint,
    family_for,
    hooks_for,
    run_keys,
)
from gradstudy.errors import ConfigError
from gradstudy.results import (
    DESCRIPTION_ATTR,
    describe_json,
    labeled_dataset,
)
from gradstudy.tools._monitor import find_state, leaf_names


# ----------------------------------------------------------------------------- the grid
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
        and ``diverged_at`` (first step with a non-finite loss, −1 if none).  A diverged
        run's records after that step are NaN (at it: its loss is kept, inf or NaN, its
        gradient norm and accuracy are NaN, ``clip_fired`` False); every accuracy (of a
        step or an evaluation) whose loss is not finite is NaN; a diverged run's
        per-layer records from its divergence step on are NaN, and each
        per-layer variable has a ``<name>_status`` companion (:mod:`gradstudy.status`
        codes: ``forward_nonfinite`` there).
    """

    data = _check_data(training, data)
    cache_dir = _check_cache_dir(cache_dir)
    description = dict(training.describe(), data=data_fingerprint(data))

    not_cacheable = _not_cacheable(training)
    # an unfingerprintable point's description does not pin down its functions: a
    # checkpoint keyed by it could resume another computation, so there are none
    checkpoints = None if not_cacheable is not None else cache_dir

    def compute():
        # traced per program (0.4-0.6 s each), so only when computing: a stored result's
        # key holds the data's fingerprint, so its data passed this check when computed
        _check_output_shapes(training, data)
        return _compute(training, data, description, checkpoints, name, progress,
                        progress_label)

    # with several processes (jax.distributed) each trains its share, process 0 alone
    # writes the result and the checkpoints, the others wait for it
    ds = cached_once(name, description, compute, cache_dir, not_cacheable)
    if checkpoints is not None and is_writer():
        # only now, with the result stored atomically (or verified from the cache): a kill
        # before this point resumes from the checkpoints instead of recomputing
        for idx in _groups(training, _chunk(training)).values():
            _checkpoint_path(checkpoints, name, description, idx).unlink(missing_ok=True)
    return ds


def _chunk(training: Training) -> int:
    return min(training.eval_every, training.steps)


def _not_cacheable(training: Training) -> str | None:
    for label, point in zip(training.labels, training.points):
        why = family_for(point).why_unfingerprintable(point)
        if why is not None:
            return f"point {label!r}: {why}"
    return None


def _check_data(training: Training, data: Dataset) -> Dataset:
    """``data`` checked (:func:`gradstudy.data.check_dataset`: finite float32 inputs,
    integer labels within ``classes``, matching lengths and shapes) and checked against the
    training (loss, every point's input shape), before anything is compiled: bad data
    would otherwise train silently (a label −1 as the last class) or be recorded as a
    divergence at step 0 (NaN inputs, labels ≥ classes).  The output shapes, which need a
    trace, are checked by :func:`_check_output_shapes` when the training is computed."""
    raw_y = getattr(data, "y", None)
    data = check_dataset(data)
    if training.loss == "cross_entropy" and not data.classes:
        looks_like_labels = np.asarray(raw_y).dtype.kind in "iu" and np.ndim(raw_y) == 1
        if looks_like_labels:
            raise ConfigError("classes: 0 means regression targets, but y holds integer "
                              "labels and loss is cross_entropy: set classes to the number "
                              "of classes")
        raise ConfigError("loss: cross_entropy needs class labels; this data is a "
                          "regression task: use loss='mse'")
    if training.loss == "mse" and data.classes:
        raise ConfigError("loss: mse needs regression targets; this data has class labels: "
                          "use loss='cross_entropy'")
    if not data.classes and data.y.ndim < 2:
        raise ConfigError(f"y: regression targets need shape (examples, outputs), got "
                          f"{data.y.shape}; for one output use y[:, None]")
    for i, p in enumerate(training.points):
        why = hooks_for(p).check_data(p, data)
        if why is not None:
            raise ConfigError(f"points: item {i} {why}"[:300])
    return data


def _check_output_shapes(training: Training, data: Dataset) -> None:
    """:func:`_check_output_shape` once per program (points sharing a network share it),
    before anything is compiled."""
    checked = set()
    for i, p in enumerate(training.points):
        key = family_for(p).program_key(p)
        if key not in checked:
            checked.add(key)
            _check_output_shape(i, p, data)


def _check_output_shape(i: int, point, data: Dataset) -> None:
    """The labels (targets) of one example must have the shape of the network's output for
    one example without (with) its class axis; traced abstractly, nothing is computed."""
    family, hooks = family_for(point), hooks_for(point)
    key = family.program_key(point)
    scalars = tuple(a[0] for a in _scalar_arrays([family.scalars(point)]))
    example = jax.ShapeDtypeStruct((1,) + data.x.shape[1:], jnp.float32)
    try:
        params = jax.eval_shape(lambda k: hooks.init(key, k, scalars),
                                jax.random.PRNGKey(0))
        out = jax.eval_shape(hooks.apply(key), params, example).shape[1:]
    except Exception as e:  # noqa: BLE001 -- a shape the family's own check let through
        raise ConfigError(f"x: examples of shape {data.x.shape[1:]} do not fit points item "
                          f"{i} ({type(e).__name__})") from None
    want = out[:-1] if data.classes else out
    if data.y.shape[1:] != want:
        what = "labels" if data.classes else "targets"
        raise ConfigError(f"y: {what} of shape {data.y.shape[1:]} per example, but points "
                          f"item {i} outputs {out} per example: {what} need {want}")


def _check_cache_dir(cache_dir) -> Path | None:
    """``cache_dir`` as a Path to an existing, writable directory (made if missing), so
    that a training is not computed only to fail when its result is stored."""
    if cache_dir is None:
        return None
    if not isinstance(cache_dir, (str, os.PathLike)) or str(cache_dir) == "":
        raise ConfigError(f"cache_dir: must be a folder path (str or Path) or None, got "
                          f"{short_repr(cache_dir)}")
    path = Path(cache_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"cache_dir: {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cache_dir: cannot create {str(path)!r} "
                          f"({e.strerror or type(e).__name__})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cache_dir: {str(path)!r} is not writable")
    return path


def data_fingerprint(data: Dataset) -> str:
    digest = hashlib.sha256()
    for a in (data.x, data.y, data.x_test, data.y_test):
        a = np.ascontiguousarray(a)
        digest.update(json.dumps([a.dtype.str, a.shape]).encode())
        digest.update(a.tobytes())
    digest.update(str(data.classes).encode())
    return "sha256:" + digest.hexdigest()


def _program_for(prog: Program):
    fingerprint = _fingerprint(prog.spec)
    return programs(prog, fingerprint) if fingerprint is not None else \
        programs.__wrapped__(prog, None)


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


    chunk = _chunk(training)
    n_chunks = -(-training.steps // chunk)
    groups = _groups(training, chunk)
    arrays = [np.asarray(a) for a in (data.x, data.y, data.x_test, data.y_test)]
    # laid out once on every device (and with several processes, given by each)
    x_dev = place_whole([jnp.asarray(a) for a in arrays[:2]])
    eval_data = place_whole([jnp.asarray(a) for a in (
        arrays[0][:EVAL_TRAIN_EXAMPLES], arrays[1][:EVAL_TRAIN_EXAMPLES], *arrays[2:])])
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
        identity = checkpoint_identity(description, idx, state)
        hyper = place_runs(hyper)
        # with several processes the evaluations are gathered at once (a collective, in
        # step on every process); with one they stay on the device until needed
        host = gather if multiprocess() else (lambda tree: tree)
        records, evals, done = [], [host(evaluate(state, *eval_data))], 0
        loaded = None
        if ckpt is not None and ckpt.exists():
            loaded = _load_checkpoint(ckpt, identity, state, chunk, training.steps)
        # every process resumes from the same chunk or none does (a collective: it also
        # keeps process 0 from overwriting the checkpoint before all have read it)
        if same_everywhere(-1 if loaded is None else loaded[3]) and loaded is not None:
            state, records, evals, done = loaded
            state = place_runs(state)
            bar.update(done)
        for c in range(done, n_chunks):
            state, rec = run(state, hyper, place_whole(np.asarray(c * chunk, np.int32)),
                             *x_dev)
            records.append(gather(rec))
            evals.append(host(evaluate(state, *eval_data)))
            if ckpt is not None:
                whole = gather(state)  # a collective: every process takes part
                if is_writer():
                    _save_checkpoint(ckpt, identity, whole, records, evals, c + 1)
            bar.update(1)
        results[tuple(idx)] = _assemble_group(training, gather(state), records, evals, runs)
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
    diverged_at = np.asarray(state["diverged_at"])
    # from its divergence step on, a run's forward pass is not finite and its per-layer
    # norms mean nothing, whatever number the backward pass made (ReLU's derivative at NaN
    # is 0: the input layer's gradient norm read exactly 0.0, which looks like vanishing):
    # NaN, with the reason in the status companion
    forward_finite = (diverged_at[:, None] < 0) | (steps[None, :] < diverged_at[:, None])
    for name in list(per_layer):
        value = np.where(forward_finite[..., None], per_layer[name], np.nan)
        per_layer[name] = value.astype(per_layer[name].dtype)
        per_layer[name + "_status"] = status.classify(value, forward_finite[..., None])
    out = {**rec, **ev, **per_layer, "diverged_at": diverged_at, "record_step": steps}
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
             "notes": "records after a run's divergence are NaN (its loss at the divergence "
                      "step is kept: inf or NaN; its gradient norms and accuracy there are "
                      "NaN, clip_fired False); an accuracy whose loss is not finite is NaN; "
                      "per-layer "
                      "records from the divergence step on are NaN with status "
                      "forward_nonfinite; eval_step e holds the metrics after e optimizer "
                      "steps"}
    return labeled_dataset(arrays, dims, coords, attrs, descriptions)
