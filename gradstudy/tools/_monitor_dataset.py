"""A monitor's records as an ``xarray.Dataset`` (:func:`monitor_dataset`): the valid rows of
its ring buffer in step order, one ``leaf`` entry per parameter leaf and layer of a stacked
leaf."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from gradstudy.errors import ConfigError
from gradstudy.tools._monitor import (
    MONITOR_FIELDS,
    MonitorState,
    find_state,
    leaf_names,
    valid_rows,
)

_LONG_NAMES = {
    "grad_norm": "norm of the tree the monitor received (gradients if first/wrapping)",
    "update_norm": "norm of the tree the monitor returned (updates ΔW if last/wrapping)",
    "param_norm": "parameter norm ‖W‖ (NaN: update called without params)",
    "update_ratio": "update_norm / param_norm (NaN: no params; inf: ‖W‖ = 0)",
    "nonfinite": "number of NaN/inf entries in the received tree",
}


def monitor_dataset(state, params_or_names):
    """The valid records as an ``xarray.Dataset`` with dims ``(step, leaf)``.

    A stacked leaf contributes one ``leaf`` entry per layer, named ``path[l]``; the
    non-dimension coordinates ``path`` (the '/'-joined parameter path) and ``layer`` (-1 for
    a plain leaf) say where each entry comes from.  Rows are in step order; with a full ring
    buffer only the latest ``capacity`` records exist (``attrs["dropped_records"]``).

    Args:
        state: a :class:`MonitorState`, an optax state containing exactly one, or a Flax
            ``nnx.Optimizer`` whose transformation holds one.  Not batched: index a vmapped
            state first, ``jax.tree.map(lambda x: x[i], state)``.
        params_or_names: the parameter pytree the optimizer was initialised with (names are
            its '/'-joined key paths, e.g. ``params/Dense_0/kernel``); a Flax NNX model
            (names are the paths of its parameters inside ``nnx.Optimizer``, e.g.
            ``layers/0/kernel``: those of ``nnx.state(model, wrt)``, with the optimizer's
            ``wrt`` filter when ``state`` is the optimizer, else ``nnx.Param``); or a
            sequence of one name per leaf.

    Returns:
        Dataset with ``grad_norm``, ``update_norm``, ``param_norm``, ``update_ratio``
        (floats) and ``nonfinite`` (int) on ``(step, leaf)``.
    """
    import xarray as xr

    state, params_or_names = _from_nnx(state, params_or_names)
    state = _host_state(state)
    names = _names(params_or_names, len(state.grad_norm))
    rows = valid_rows(state)
    entries, paths, layers = _entries(names, state.grad_norm)
    capacity = int(np.shape(state.step)[0])
    n = int(state.n_records)
    return xr.Dataset(
        {f: (("step", "leaf"), _table(state, f, rows), {"long_name": _LONG_NAMES[f]})
         for f in MONITOR_FIELDS},
        coords={"step": np.asarray(state.step)[rows].astype(np.int64),
                "leaf": np.asarray(entries, dtype=object),
                "path": ("leaf", np.asarray(paths, dtype=object)),
                "layer": ("leaf", np.asarray(layers, dtype=np.int64))},
        attrs={"steps_seen": int(state.count), "records_taken": n, "capacity": capacity,
               "valid_records": len(rows), "dropped_records": n - len(rows),
               "buffer": "ring: when full, the oldest record is overwritten"})


def _from_nnx(state, params_or_names):
    """An ``nnx.Optimizer``'s optax state, and an NNX model's parameter state (filtered by
    the optimizer's ``wrt``), as :func:`monitor_dataset` reads them; others unchanged."""
    wrt = nnx.Param
    if isinstance(state, nnx.Optimizer):
        wrt = state.wrt
        state = state.opt_state
    if isinstance(params_or_names, nnx.Module):
        params_or_names = nnx.state(params_or_names, wrt)
    return state, params_or_names


def _host_state(state) -> MonitorState:
    """The one unbatched :class:`MonitorState` in ``state``, on the host."""
    if not isinstance(state, MonitorState):
        state = find_state(state)
    state = jax.device_get(state)
    if np.ndim(state.count) != 0:
        raise ConfigError(f"state: batched monitor state (count shape {np.shape(state.count)}); "
                          f"index one run first: jax.tree.map(lambda x: x[i], state)")
    return state


def _names(params_or_names, n_leaves: int) -> list[str]:
    """One name per recorded leaf: the given names, or the parameter tree's key paths."""
    if isinstance(params_or_names, Sequence) and all(isinstance(s, str)
                                                     for s in params_or_names):
        names = list(params_or_names)
    else:
        names = leaf_names(params_or_names)
    if len(names) != n_leaves:
        raise ConfigError(f"params_or_names: {len(names)} leaves, but the monitor recorded "
                          f"{n_leaves}")
    return names


def _entries(names: list[str], buffers) -> tuple[list[str], list[str], list[int]]:
    """The ``leaf`` entries (``name`` or ``name[l]`` per layer of a stacked leaf), their
    paths and layers (-1 for a plain leaf); ConfigError if they are not unique."""
    entries, paths, layers = [], [], []
    for name, buf in zip(names, buffers):
        if np.ndim(buf) == 1:
            entries.append(name)
            paths.append(name)
            layers.append(-1)
        else:
            for layer in range(np.shape(buf)[1]):
                entries.append(f"{name}[{layer}]")
                paths.append(name)
                layers.append(layer)
    if len(set(entries)) != len(entries):
        raise ConfigError("params_or_names: leaf names are not unique")
    return entries, paths, layers


def _table(state: MonitorState, field: str, rows: np.ndarray) -> np.ndarray:
    """``field``'s valid rows, one column per ``leaf`` entry: (rows, entries)."""
    # an explicit width: reshape(0, -1) of a state with no record yet is ambiguous
    cols = [np.asarray(b)[rows].reshape(len(rows), int(np.prod(np.shape(b)[1:], dtype=int)))
            for b in getattr(state, field)]
    return np.concatenate(cols, axis=1) if cols else np.zeros((len(rows), 0))
