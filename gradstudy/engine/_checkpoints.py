"""Checkpoints of a training in progress: after every chunk the whole state of a group of
runs (parameters, optimizer and monitor state), its records and evaluations so far and the
chunk count, written atomically (temp file + rename), so that a killed training resumes
from its last chunk with bit-identical results; a damaged checkpoint is ignored (one
line) and the training starts afresh.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.results import cache_key, notice


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
