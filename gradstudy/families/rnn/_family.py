"""The recurrent family for the engine: sweeps measure each network through time
(:data:`RNN_FAMILY`), trainings use :data:`RNN_TRAIN_HOOKS`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.errors import ConfigError
from gradstudy.families._base import ModelFamily, TrainHooks
from gradstudy.families.rnn._model import apply, kernel_names, leaf_kind, param_count, sample_params
from gradstudy.families.rnn._spec import _GATE_ORDER, RNN_VERSION, RNNSpec, scalars
from gradstudy.families.rnn._through_time import THROUGH_TIME, through_time


# ------------------------------------------------------------------------------- family
def sample_network(spec: RNNSpec, key: jax.Array, batch: int, input_std: float = 1.0,
                   scalars=None):
    """Parameters (:func:`sample_params`), inputs x ~ N(0, input_std²) (batch, T, in_dim)
    and targets ~ N(0, 1) drawn from ``key`` split in three (init, x, targets)."""
    k_init, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    params = sample_params(spec, k_init, scalars)
    x = input_std * jax.random.normal(k_x, (batch, spec.length, spec.in_dim), dtype)
    out_shape = (batch, spec.out_dim) if spec.readout == "last" else \
        (batch, spec.length, spec.out_dim)
    return params, x, jax.random.normal(k_t, out_shape, dtype)


def _one_length(depths) -> int:
    depths = tuple(depths)
    if len(depths) != 1:
        raise ConfigError(f"depths: the rnn family measures one sequence length per sweep, "
                          f"got {len(depths)} ({', '.join(map(str, depths))})")
    return int(depths[0])


def _check_keep_backprop(keep_backprop: bool) -> None:
    if keep_backprop:
        raise ConfigError("keep_backprop: not supported by the rnn family (it records "
                          "state_grad_norm through time)")


JACOBIAN_SAMPLES = 4  # examples per network whose state Jacobians a sweep measures


def _measure(spec, depths, batch, input_std, key, scalars, keep_backprop, loss):
    _check_keep_backprop(keep_backprop)
    spec = spec.replace(length=_one_length(depths))
    params, x, targets = sample_network(spec, key, batch, input_std, scalars)
    return through_time(spec, params, x, targets, loss, JACOBIAN_SAMPLES)


def activation_bytes(spec: RNNSpec, examples: int) -> int:
    """Forward activations of one network on ``examples`` sequences (float32): the states
    and the cell's gates/pre-activations at every step."""
    per_step = {"elman": 2, "lstm": 8, "gru": 6}[spec.kind] * spec.hidden + spec.in_dim
    return 4 * examples * spec.length * (per_step + spec.out_dim)


def _memory(spec, depths, batch, keep_backprop):
    _check_keep_backprop(keep_backprop)
    T = _one_length(depths)
    spec = spec.replace(length=T)
    itemsize = np.dtype(spec.dtype).itemsize
    size, n = spec.state_size, min(JACOBIAN_SAMPLES, batch)
    forward = activation_bytes(spec, batch) * itemsize // 4
    jacobians = 3 * (T + 1) * n * size * size * itemsize  # rows, transposed, SVD input
    rows = size * activation_bytes(spec, n) * itemsize // 4  # vmapped VJP residuals
    working = 3 * forward + jacobians + rows + 4 * param_count(spec) * itemsize
    output = (2 * (T + 1) + len(THROUGH_TIME)) * itemsize
    what = (f"{spec.cell}, hidden {spec.hidden}, length {T}, batch {batch}, {spec.dtype}")
    return working, output, what


def _coords(points) -> dict:
    return {
        "cell": [p.cell for p in points],
        "hidden": [p.hidden for p in points],
        "recurrent_init": [p.recurrent_init for p in points],
        "recurrent_scale": [float(p.recurrent_scale) for p in points],
        "input_scale": [float(p.input_scale) for p in points],
        "length": [p.length for p in points],
        "readout": [p.readout for p in points],
        "in_dim": [p.in_dim for p in points],
        "out_dim": [p.out_dim for p in points],
    }


def _label(spec) -> str:
    return (f"{spec.cell} RNN, hidden {spec.hidden}, length {spec.length}, "
            f"{spec.recurrent_init} init, {spec.dtype}")


# --------------------------------------------------------------------------- training
def _layer_leaves(names) -> list[str]:
    """The kernels among ``names`` in forward order: input, recurrent, readout."""
    kernels = [n for n in names if n.endswith("kernel")]
    kinds = {"input": 0, "recurrent": 1, "readout": 2}

    def position(name):  # gates in the cells' order: LSTM i, f, g, o; GRU r, z, n
        module = name.split("/")[-2]
        return kinds[leaf_kind(name)], _GATE_ORDER.find(module[1:2])

    return sorted(kernels, key=position)


def check_data(spec: RNNSpec, data) -> str | None:
    """Why ``data`` (a :class:`gradstudy.data.Dataset`) does not fit ``spec``, or None."""
    x = np.shape(data.x)
    if len(x) != 3:
        return f"x: the rnn family needs sequences (examples, time, features), got shape {x}"
    if x[1] != spec.length:
        return f"x: sequences of length {x[1]}, the spec's length is {spec.length}"
    if x[2] != spec.in_dim:
        return f"x: {x[2]} features per time step, the spec's in_dim is {spec.in_dim}"
    y = np.shape(data.y)
    per_step = spec.readout == "sequence"
    if data.classes:
        if spec.out_dim != data.classes:
            return f"out_dim: {spec.out_dim}, the data have {data.classes} classes"
        want = (x[0], x[1]) if per_step else (x[0],)
    else:
        want = (x[0], x[1], spec.out_dim) if per_step else (x[0], spec.out_dim)
    if y != want:
        return (f"y: shape {y}, readout {spec.readout!r} with out_dim {spec.out_dim} "
                f"needs {want}")
    return None


RNN_TRAIN_HOOKS = TrainHooks(
    init=sample_params,
    apply=apply,
    stacked=lambda name, leaf: False,
    is_output=lambda name: leaf_kind(name) == "readout",
    layer_leaves=_layer_leaves,
    layers=lambda spec: len(kernel_names(spec)),
    param_count=param_count,
    activation_bytes=activation_bytes,
    check_data=check_data,
    coords=_coords,
)

RNN_FAMILY = ModelFamily(
    name="rnn",
    spec_type=RNNSpec,
    at_depth=lambda spec, depth: spec.replace(length=depth),
    program_key=RNNSpec.static_key,
    scalars=scalars,
    measure=_measure,
    measured=THROUGH_TIME,
    memory=_memory,
    coords=_coords,
    fingerprint=lambda spec: (f"rnn-v{RNN_VERSION}",),
    why_unfingerprintable=lambda spec: None,
    label=_label,
    train=RNN_TRAIN_HOOKS,
    # XLA's CPU runtime (jax 0.10.2) deadlocks when the recurrent sweep program runs on two
    # host devices of one process at once (every cell and init, 8 seeds × 2 points,
    # hidden 8: no CPU used after a few seconds, every time; one device: 10 s): one device
    # per process until that is fixed upstream
    split_sweeps=False,
)
