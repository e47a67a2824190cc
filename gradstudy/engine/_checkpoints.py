"""Checkpoints of a training in progress: after every chunk the whole state of a group of
runs (parameters, optimizer and monitor state), its records and evaluations so far and the
chunk count, written atomically (temp file + rename), so that a killed training resumes
from its last chunk with bit-identical results.

A checkpoint is verified as a stored result is (:func:`gradstudy.results.load_verified`):
it holds the description of the training and the group it belongs to (with the versions of
the libraries that lay out its state, and the state's tree structure), and a SHA-256 over
that identity, the chunk count and every array; on load the identity must be this
training's, the checksum must match, and the chunk count must agree with what the arrays
say of themselves (the monitor's step counter of every run, the number of records and
evaluations).  A checkpoint that fails any check is not resumed: one line says why and the
group is computed afresh.  Temporary files are named like every temporary of
:mod:`gradstudy.results` (``<target>.<random>.<host>-<pid>.tmp``), so those of a killed
save are removed by :func:`gradstudy.results.remove_stale_temporaries`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.results import _temp_suffix, cache_key, describe_json, notice, versions
from gradstudy.tools._monitor import find_state

# 2: identity, checksum and chunk-count checks (1 had none); 3: the identity holds the
# libraries' versions and the state's tree structure
CHECKPOINT_VERSION = 3
# the libraries that decide how a state's leaves are ordered (optax's and flax's state
# fields, jax's flattening): a state of another version may hold the same shapes in
# another order (Adam's mu and nu)
STATE_LIBRARIES = ("jax", "jaxlib", "flax", "optax")


def _checkpoint_path(cache_dir, name, description, idx) -> Path:

    return Path(cache_dir) / f"{name}-{cache_key(description)}-g{idx[0]}.ckpt.npz"


def checkpoint_identity(description: dict, idx, state) -> str:
    """What a checkpoint belongs to: the training's description, the group's points, and
    what its state's leaves mean.

    A state is stored as its leaves in flattening order and restored by position, shape
    and dtype: leaves of equal shapes (Adam's mu and nu) would be swapped silently by an
    optax or flax release that reorders a state's fields, and the tree structure's text
    names no fields.  So the versions of the libraries that lay out the state
    (``STATE_LIBRARIES``) and the structure of ``state`` (the group's initial state, or
    any tree of its structure) are part of the identity: a checkpoint written under other
    versions is not resumed.
    """
    library = versions()
    return describe_json({"training": description, "group": [int(i) for i in idx],
                          "checkpoint_version": CHECKPOINT_VERSION,
                          "libraries": {k: library.get(k, "") for k in STATE_LIBRARIES},
                          "state_structure": str(jax.tree.structure(state))})


def _content_checksum(identity: str, arrays: dict[str, np.ndarray]) -> str:
    """``sha256:`` over the identity and every array (name, dtype, shape, bytes), in name
    order; the chunk count is one of the arrays."""
    digest = hashlib.sha256()

    def add(token: bytes) -> None:
        digest.update(len(token).to_bytes(8, "little"))
        digest.update(token)

    add(identity.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        add(name.encode())
        add(json.dumps([a.dtype.str, list(a.shape)]).encode())
        add(a.tobytes())
    return "sha256:" + digest.hexdigest()


def _save_checkpoint(path: Path, identity: str, state, records, evals, done: int) -> None:
    """State, records so far and the chunk count with their identity and checksum, written
    atomically (temp + rename)."""
    leaves = jax.tree.leaves(jax.device_get(state))
    payload = {f"state_{i}": np.asarray(a) for i, a in enumerate(leaves)}
    for c, rec in enumerate(records):
        payload.update({f"rec_{c}_{k}": np.asarray(v) for k, v in rec.items()})
    for c, ev in enumerate(jax.device_get(evals)):
        payload.update({f"eval_{c}_{k}": np.asarray(v) for k, v in ev.items()})
    payload["done"] = np.asarray(done, np.int64)
    payload["checksum"] = np.asarray(_content_checksum(identity, payload))
    payload["identity"] = np.asarray(identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=_temp_suffix(""),
                               dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class _Unusable(Exception):
    """A checkpoint that must not be resumed; the message says why (a short phrase)."""


def _load_checkpoint(path: Path, identity: str, template, chunk: int, steps: int):
    """(state, records, evals, done) from ``path``, or None (one line) if it is not a
    verified checkpoint of ``identity`` whose chunk count agrees with its content.

    Args:
        identity: :func:`checkpoint_identity` of the training and group.
        template: the group's initial state (the structure, shapes and dtypes expected).
        chunk, steps: steps per chunk and in all: after ``done`` chunks every run's
            monitor has counted ``min(done·chunk, steps)`` steps.
    """
    try:
        state, records, evals, done = _read_verified(path, identity, template, chunk, steps)
    except _Unusable as e:
        notice(f"checkpoint {path} is unusable ({e}); computing this group afresh")
        return None
    except Exception as e:  # noqa: BLE001 -- damaged bytes fail in many ways
        notice(f"checkpoint {path} is unusable ({type(e).__name__}); computing this group "
               f"afresh")
        return None
    notice(f"resuming from {path} after {done} chunks")
    return state, records, evals, done


def _read_verified(path, identity, template, chunk, steps):
    with np.load(path, allow_pickle=False) as z:
        files = dict(z)
    stored_identity, checksum = files.pop("identity", None), files.pop("checksum", None)
    if stored_identity is None or checksum is None:
        raise _Unusable("no checksum: written by an older gradstudy")
    if str(stored_identity) != identity:
        raise _Unusable("it belongs to a different computation")
    if str(checksum) != _content_checksum(identity, files):
        raise _Unusable("checksum mismatch")
    leaves = jax.tree.leaves(template)
    state_leaves = [files[f"state_{i}"] for i in range(len(leaves))]
    if any(k.startswith("state_") and int(k[6:]) >= len(leaves) for k in files):
        raise _Unusable("more state arrays than the training has")
    for got, want in zip(state_leaves, leaves):
        if got.shape != want.shape or got.dtype != want.dtype:
            raise _Unusable("its arrays have other shapes than the training's")
    done = int(files["done"])
    n_chunks = -(-steps // chunk)
    if not 1 <= done <= n_chunks:
        raise _Unusable(f"chunk count {done} outside 1..{n_chunks}")
    rec_chunks = {int(k.split("_")[1]) for k in files if k.startswith("rec_")}
    ev_chunks = {int(k.split("_")[1]) for k in files if k.startswith("eval_")}
    if rec_chunks != set(range(done)) or ev_chunks != set(range(done + 1)):
        raise _Unusable(f"chunk count {done} disagrees with its {len(rec_chunks)} records "
                        f"and {len(ev_chunks)} evaluations")
    treedef = jax.tree.structure(template)
    state = jax.tree.unflatten(treedef, state_leaves)
    counted = np.asarray(find_state(state["opt_state"]).count)
    if not np.all(counted == min(done * chunk, steps)):
        raise _Unusable(f"chunk count {done} disagrees with its state (after "
                        f"{int(np.max(counted))} steps, not {min(done * chunk, steps)})")
    rec_keys = sorted({k.split("_", 2)[2] for k in files if k.startswith("rec_")})
    ev_keys = sorted({k.split("_", 2)[2] for k in files if k.startswith("eval_")})
    records = [{k: files[f"rec_{c}_{k}"] for k in rec_keys} for c in range(done)]
    evals = [{k: files[f"eval_{c}_{k}"] for k in ev_keys} for c in range(done + 1)]
    for c, rec in enumerate(records):
        lengths = {v.shape[1] if v.ndim > 1 else -1 for v in rec.values()}
        if lengths != {chunk}:
            raise _Unusable(f"records of chunk {c} are not {chunk} steps long")
    state = jax.tree.unflatten(treedef, [jnp.asarray(a) for a in state_leaves])
    return state, records, evals, done
