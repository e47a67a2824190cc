"""The convolutional family's record: its training hooks (:data:`CNN_TRAIN_HOOKS`: which
parameter leaves are stacked, the readout, the kernels in forward order, the data check)
and :data:`CNN_FAMILY`, which sweeps and trainings find through the registry
(:mod:`gradstudy.families._registry`).
"""

from __future__ import annotations

import numpy as np

from gradstudy.errors import ConfigError
from gradstudy.families._base import ModelFamily, TrainHooks
from gradstudy.families.cnn._measure import (
    MEASURED,
    _label_of,
    _measure,
    _memory,
    coords,
    train_coords,
)
from gradstudy.families.cnn._model import (
    activation_bytes,
    apply,
    family_scalars,
    param_count,
    sample_params,
)
from gradstudy.families.cnn._spec import CNNSpec
from gradstudy.nn._fingerprint import spec_fingerprint, why_spec_unfingerprintable

STACK = "hidden/"
READOUT = "readout/"


def is_stacked(name: str, leaf=None) -> bool:
    """Leaves of the scanned conv stack (leading layer axis of length depth − 1)."""
    return name.startswith(STACK)


def is_output(name: str) -> bool:
    return name.startswith(READOUT)


def layer_leaves(names) -> list[str]:
    """The conv kernels in forward order (input conv, the stack), then the readout kernel."""
    order = ("input_layer/conv/kernel", "hidden/conv/kernel", "readout/dense/kernel")
    names = list(names)
    missing = [n for n in order if n not in names]
    if missing:
        raise ConfigError(f"params: not a cnn parameter tree (no {missing[0]!r})")
    return list(order)


def check_data(spec: CNNSpec, data) -> str | None:
    """Why ``data`` (a :class:`gradstudy.data.Dataset`) does not fit ``spec``, or None."""
    x = np.asarray(data.x)
    if x.ndim not in (2, 3):
        return (f"is a cnn on signals (examples, length[, channels]); the data's inputs "
                f"have shape {x.shape}")
    length, channels = x.shape[1], (1 if x.ndim == 2 else x.shape[2])
    outputs = data.classes or int(np.asarray(data.y).shape[1])
    if (length, channels, outputs) != (spec.length, spec.in_channels, spec.out_dim):
        return (f"has length {spec.length}, in_channels {spec.in_channels}, out_dim "
                f"{spec.out_dim}; the data need {length}, {channels} and {outputs}")
    return None


CNN_TRAIN_HOOKS = TrainHooks(
    init=sample_params,
    apply=apply,
    stacked=is_stacked,
    is_output=is_output,
    layer_leaves=layer_leaves,
    layers=lambda spec: spec.depth + 1,
    param_count=param_count,
    activation_bytes=activation_bytes,
    check_data=check_data,
    coords=train_coords,
)

CNN_FAMILY = ModelFamily(
    name="cnn",
    spec_type=CNNSpec,
    at_depth=lambda spec, depth: spec.replace(depth=depth),
    program_key=CNNSpec.static_key,
    scalars=family_scalars,
    measure=_measure,
    measured=MEASURED,
    memory=_memory,
    coords=coords,
    fingerprint=spec_fingerprint,
    why_unfingerprintable=why_spec_unfingerprintable,
    label=_label_of,
    train=CNN_TRAIN_HOOKS,
)
