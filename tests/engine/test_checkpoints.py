"""Training checkpoints are trusted only when verified, and live until the result is stored.

Before the fix a checkpoint whose content was changed consistently (a parameter +1 and the
file rewritten, so that the zip's own CRCs match; or ``done = 2`` holding the state after
chunk 4) was resumed silently and its wrong numbers stored under a valid checksum; a kill
between the last chunk and the stored result recomputed the whole training; and the
temporary file of a killed save was never removed.  Each test compares against the same
training run uninterrupted (the engine's resume is bit-identical, so any difference is a
wrong number)."""

import dataclasses
import os
import subprocess

import numpy as np
import pytest

import gradstudy.engine._checkpoints as ckpt_mod
import gradstudy.engine._training as train_mod
import gradstudy.results as results_mod
from gradstudy import MLPSpec
from gradstudy.data import Dataset
from gradstudy.engine import OptimizerSpec, Training, train

RNG = np.random.default_rng(3)
X = RNG.normal(size=(40, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 40).astype(np.int32)
DATA = Dataset(X[:30], Y[:30], X[30:], Y[30:], 3)
SPEC = MLPSpec(width=6, depth=2, in_dim=5, out_dim=3, activation="tanh",
               init="glorot_normal")
# 5 chunks of 2 steps
TRAINING = Training(points=(SPEC,), optimizer=OptimizerSpec("adam", 1e-2), steps=10,
                    seeds=2, batch_size=8, record_every=2, eval_every=2)


class Killed(BaseException):
    """A kill: nothing after it runs (not even ``except Exception``)."""


@pytest.fixture(scope="module")
def reference():
    return train(TRAINING, DATA, progress=False)


def _assert_equal(ds, reference):
    for name in reference.data_vars:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, name)


def _killed_after(monkeypatch, tmp_path, chunks: int):
    """Train until the checkpoint of ``chunks`` chunks is written, then die; the path."""
    real_save = ckpt_mod._save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        if args[-1] == chunks:
            raise Killed

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(TRAINING, DATA, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    (path,) = tmp_path.glob("*.ckpt.npz")
    return path


def _rewrite(path, change, recompute_checksum=False):
    """Rewrite the checkpoint with ``change(files)`` applied: a valid npz (its CRCs match),
    with the stored checksum kept, or recomputed as the writer would."""
    with np.load(path) as z:
        files = dict(z)
    change(files)
    if recompute_checksum:
        identity = str(files.pop("identity"))
        files.pop("checksum")
        files["checksum"] = np.asarray(ckpt_mod._content_checksum(identity, files))
        files["identity"] = np.asarray(identity)
    with open(path, "wb") as f:
        np.savez(f, **files)


def _kernel_plus_one(files):
    # the state's leaves in key order: data_key, diverged_at, opt_state (Adam's moments
    # and the monitor), params: the last (runs, 5, 6) array is the input kernel
    name = max((k for k, v in files.items() if k.startswith("state_")
                and v.shape[1:] == (5, 6)), key=lambda k: int(k[6:]))
    files[name] = files[name] + np.float32(1.0)


def _saves(monkeypatch):
    count = []
    real_save = ckpt_mod._save_checkpoint
    monkeypatch.setattr(train_mod, "_save_checkpoint",
                        lambda *a: (count.append(a[-1]), real_save(*a)))
    return count


def test_a_consistently_changed_parameter_is_refused(reference, tmp_path, monkeypatch,
                                                      capsys):
    path = _killed_after(monkeypatch, tmp_path, 2)
    _rewrite(path, _kernel_plus_one)
    saves = _saves(monkeypatch)
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert "checksum mismatch" in capsys.readouterr().err
    assert saves == [1, 2, 3, 4, 5]  # computed afresh


def test_a_chunk_count_behind_the_state_is_refused(reference, tmp_path, monkeypatch, capsys):
    """``done = 2`` holding the state after chunk 4, records and evaluations cut to 2
    chunks: refused by the checksum, and by the monitor's step count where the checksum
    was recomputed (a writer's bug rather than a changed file)."""
    path = _killed_after(monkeypatch, tmp_path, 4)
    original = path.read_bytes()

    def back_to_two(files):
        files["done"] = np.asarray(2, np.int64)
        for k in [k for k in files if k.startswith(("rec_2_", "rec_3_", "eval_3_",
                                                     "eval_4_"))]:
            del files[k]

    for recompute, why in ((False, "checksum mismatch"), (True, "disagrees with its state")):
        path.write_bytes(original)
        _rewrite(path, back_to_two, recompute_checksum=recompute)
        saves = _saves(monkeypatch)
        _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
        assert why in capsys.readouterr().err
        assert saves == [1, 2, 3, 4, 5]
        for stored in tmp_path.glob("*.nc"):
            stored.unlink()  # the next round must not read the result from the cache


def test_a_checkpoint_of_another_training_is_refused(reference, tmp_path, monkeypatch,
                                                     capsys):
    other = dataclasses.replace(TRAINING, base_seed=1)
    real_save = ckpt_mod._save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        raise Killed

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(other, DATA, cache_dir=tmp_path / "other", progress=False)
    (theirs,) = (tmp_path / "other").glob("*.ckpt.npz")
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    ours = _killed_after(monkeypatch, tmp_path, 1)
    ours.write_bytes(theirs.read_bytes())  # same shapes, same everything but its identity
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert "belongs to a different computation" in capsys.readouterr().err


def test_a_checkpoint_written_under_another_optax_is_recomputed(reference, tmp_path,
                                                              monkeypatch, capsys):
    """A state is restored leaf by leaf by position, shape and dtype: Adam's mu and nu have
    the same shapes, so an optax (or flax) release that reorders a state's fields would
    resume with them swapped.  The libraries' versions are part of a checkpoint's
    identity: one written under another optax is not resumed."""
    real_versions = ckpt_mod.versions
    monkeypatch.setattr(ckpt_mod, "versions",
                        lambda: dict(real_versions(), optax="0.0.1"))
    _killed_after(monkeypatch, tmp_path, 3)  # written under "optax 0.0.1"
    monkeypatch.setattr(ckpt_mod, "versions", real_versions)
    saves = _saves(monkeypatch)
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert "belongs to a different computation" in capsys.readouterr().err
    assert saves == [1, 2, 3, 4, 5]  # computed afresh


def test_the_identity_holds_the_state_libraries_and_structure():
    import jax
    import optax

    idx, description = [0], {"training": "t"}
    adam = optax.adam(0.1).init({"w": np.zeros(2, np.float32)})
    sgd = optax.sgd(0.1, momentum=0.9).init({"w": np.zeros(2, np.float32)})
    identity = ckpt_mod.checkpoint_identity(description, idx, adam)
    assert str(jax.tree.structure(adam)) in identity
    assert identity != ckpt_mod.checkpoint_identity(description, idx, sgd)
    for library in ("jax", "flax", "optax"):
        assert f'"{library}": "{results_mod.versions()[library]}"' in identity, library


def test_a_verified_checkpoint_still_resumes(reference, tmp_path, monkeypatch, capsys):
    _killed_after(monkeypatch, tmp_path, 3)
    saves = _saves(monkeypatch)
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert "resuming" in capsys.readouterr().err and saves == [4, 5]


def test_a_kill_while_the_result_is_written_keeps_the_checkpoint(reference, tmp_path,
                                                                 monkeypatch):
    def killed_write(ds, path):
        raise Killed

    monkeypatch.setattr(results_mod, "write_atomic", killed_write)
    with pytest.raises(Killed):
        train(TRAINING, DATA, cache_dir=tmp_path, progress=False)
    monkeypatch.undo()
    assert list(tmp_path.glob("*.ckpt.npz")), "the checkpoint went before the result"
    saves = _saves(monkeypatch)
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert saves == []  # nothing recomputed: every chunk came from the checkpoint
    assert not list(tmp_path.glob("*.ckpt.npz")) and len(list(tmp_path.glob("*.nc"))) == 1


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])  # a process this test starts and waits for
    process.wait()
    return process.pid


class _KilledInReplace:
    """``os`` for the checkpoint module of a process killed inside ``os.replace``: the
    temporary file is written, and nothing after (no clean-up) runs."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def replace(src, dst):
        raise Killed

    @staticmethod
    def remove(path):
        pass


def test_the_temporary_of_a_killed_save_is_removed_by_the_next_run(reference, tmp_path,
                                                                   monkeypatch):
    dead = _dead_pid()
    monkeypatch.setattr(ckpt_mod, "os", _KilledInReplace())
    monkeypatch.setattr(ckpt_mod, "_temp_suffix",
                        lambda kind: f"{kind}.{results_mod._host_tag()}-{dead}.tmp")
    with pytest.raises(Killed):
        train(TRAINING, DATA, cache_dir=tmp_path, progress=False)
    monkeypatch.undo()
    (left,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert ".ckpt.npz." in left.name and left.stat().st_size > 0
    _assert_equal(train(TRAINING, DATA, cache_dir=tmp_path, progress=False), reference)
    assert not left.exists()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".nc"]
