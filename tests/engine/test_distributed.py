"""Sweeps and trainings on JAX's multi-process runtime (``jax.distributed``).

Two local CPU processes (coordinator on localhost, a free port), one host device each, run
the same small sweep and training as this process does on its two devices: the numbers
must be equal, and the result files written once.  Then one process is killed mid-training
(SIGKILL) and both are run again: the training resumes from the checkpoint the first run
wrote, the sweep's stored result is reused, and the numbers are still equal.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr

import gradstudy.engine._training_programs as programs_mod
from gradstudy.engine import initialize_distributed
from gradstudy.engine._distributed import agree, cached_once, gather, place, same_everywhere
from gradstudy.errors import ConfigError
from gradstudy.results import DESCRIPTION_ATTR, describe_json

REPO = Path(__file__).resolve().parents[2]

# What each process runs (and this test process, as the single-process reference).
WORKER = r'''
import os, sys
process, count, port, cache, out = sys.argv[1:6]
die_at = int(sys.argv[6]) if len(sys.argv) > 6 else 0
from gradstudy._xla import default_xla_flags
default_xla_flags()
from gradstudy.engine import initialize_distributed
initialize_distributed(f"localhost:{port}", int(count), int(process))
import numpy as np
import gradstudy.engine._training as train_mod
from test_distributed import compute

if die_at:  # this process dies (SIGKILL) at its die_at-th gather of a training
    calls, gather = [], train_mod.gather
    def dying(tree):
        calls.append(1)
        if len(calls) == die_at:
            os.kill(os.getpid(), 9)
        return gather(tree)
    train_mod.gather = dying
np.savez(out, **compute(cache))
'''


def compute(cache_dir) -> dict:
    """The small sweep and training, as flat arrays (``sweep_*``, ``train_*``)."""
    from gradstudy import MLPSpec, Sweep
    from gradstudy.data import Dataset
    from gradstudy.engine import OptimizerSpec, Training, run_cached, train

    spec = MLPSpec(width=8, depth=3, activation="tanh")
    sweep = Sweep(points=(spec, spec.replace(sigma_w=1.5), spec.replace(sigma_w=0.7)),
                  depths=(1, 3), seeds=3, batch=4)
    swept = run_cached(sweep, cache_dir, "sweep", progress=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    net = MLPSpec(width=8, depth=2, in_dim=5, out_dim=2, activation="relu", init="he_normal")
    training = Training(points=(net,), optimizer=OptimizerSpec("sgd", 0.1),
                        learning_rates=(0.05, 0.1, 0.2), seeds=1, steps=8, batch_size=8,
                        record_every=2, eval_every=2)
    trained = train(training, Dataset(x, y, x[:16], y[:16], 2), cache_dir, "train",
                    progress=False)
    return {**{f"sweep_{k}": v.values for k, v in swept.data_vars.items()},
            **{f"train_{k}": v.values for k, v in trained.data_vars.items()}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(tmp_path, cache, tag, die_at=(0, 0)):
    """Start the two processes (process p dies at its ``die_at[p]``-th gather if > 0)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(Path(__file__).parent)]))
    port = _free_port()
    procs = []
    for p in range(2):
        cmd = [sys.executable, str(script), str(p), "2", str(port), str(cache),
               str(tmp_path / f"{tag}-{p}.npz")] + ([str(die_at[p])] if die_at[p] else [])
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _finish(procs, timeout=240):
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            logs.append(proc.communicate()[0])
    return logs


@pytest.fixture(scope="module")
def reference():
    """This process on two devices (as many as the two processes have together)."""
    devices = jax.devices()
    if len(devices) < 2:
        pytest.skip("one XLA device (gradstudy._xla makes one per core)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(programs_mod, "run_devices", lambda: devices[:2])
        return compute(None)


def _assert_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_two_processes_give_the_single_process_numbers(tmp_path, reference):
    cache = tmp_path / "cache"
    cache.mkdir()
    logs = _finish(_launch(tmp_path, cache, "run"))
    for p in range(2):
        assert (tmp_path / f"run-{p}.npz").exists(), logs[p][-3000:]
        with np.load(tmp_path / f"run-{p}.npz") as z:
            _assert_equal(dict(z), reference)
    # written once, by process 0: one result file each, no checkpoint or temporary left
    names = sorted(f.name for f in cache.iterdir())
    assert len(names) == 2 and names[0].startswith("sweep-") and names[1].startswith("train-")


def test_a_killed_process_leaves_no_corrupt_file_and_a_rerun_resumes(tmp_path, reference):
    """Process 1 is SIGKILLed at its 5th gather of the training (chunk 2 of 4: process 0
    has written the checkpoint of chunk 1 and then waits for it); process 0 is then
    killed as a scheduler would.  Rerunning both resumes after chunk 1."""
    cache = tmp_path / "cache"
    cache.mkdir()
    first = _launch(tmp_path, cache, "killed", die_at=(0, 5))
    first[1].wait(timeout=240)
    assert first[1].returncode == -signal.SIGKILL
    deadline = time.time() + 60
    while time.time() < deadline and first[0].poll() is None \
            and not list(cache.glob("*.ckpt.npz")):
        time.sleep(0.1)
    time.sleep(0.5)  # (the checkpoint is renamed into place whole: no partial file)
    first[0].kill()
    logs = _finish(first)
    sweep_file, = cache.glob("sweep-*.nc")
    written = sweep_file.stat().st_mtime_ns
    assert len(list(cache.glob("*.ckpt.npz"))) == 1, logs[0][-3000:]
    assert not list(cache.glob("train-*.nc"))

    logs = _finish(_launch(tmp_path, cache, "rerun"))
    assert "resuming from" in logs[0] and "after 1 chunks" in logs[0], logs[0][-3000:]
    for p in range(2):
        with np.load(tmp_path / f"rerun-{p}.npz") as z:
            _assert_equal(dict(z), reference)
    assert sweep_file.stat().st_mtime_ns == written  # reused, not recomputed
    # the result stored, its checkpoint removed, every temporary of the killed run gone
    assert sorted(f.name[:6] for f in cache.iterdir()) == ["sweep-", "train-"]


# ---------------------------------------------------------------- with one process
def test_with_one_process_the_helpers_change_nothing(tmp_path):
    tree = {"a": np.arange(6.0).reshape(3, 2), "b": np.int32(3)}
    assert place(tree, None) is tree
    got = gather(jax.device_put(tree))
    np.testing.assert_array_equal(got["a"], tree["a"])
    assert agree(True) and not agree(False) and same_everywhere(7)
    calls = []

    def compute():
        calls.append(1)
        return xr.Dataset({"x": ("i", np.arange(3.0))},
                          attrs={DESCRIPTION_ATTR: describe_json({"k": 1})})

    for _ in range(2):
        ds = cached_once("t", {"k": 1}, compute, tmp_path)
        np.testing.assert_array_equal(ds.x.values, [0.0, 1.0, 2.0])
    assert len(calls) == 1


def test_initialize_distributed_refuses_a_bad_process_id():
    with pytest.raises(ConfigError, match=r"^process_id: must be an int in 0\.\.") as e:
        initialize_distributed("localhost:1", 2, 2)
    assert "\n" not in str(e.value)
