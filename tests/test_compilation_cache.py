"""JAX's persistent compilation cache: on by default for the library and the command, in the
user's cache directory, off with one environment variable, harmless when unwritable, keyed
by the XLA flags, and reused by a second process (hits counted from JAX's monitoring
events, never timed).

Each check that starts JAX runs in a fresh interpreter: this process's JAX already has the
test suite's cache (conftest.py), and a cache directory is set once per process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradstudy import _compilation_cache as cc

HITS = "/jax/compilation_cache/cache_hits"
COUNT_HITS = f"""
import json, jax
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event == {HITS!r}
                                   else None)
"""
REPORT = """
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "hits": len(hits),
                  "min_secs": jax.config.jax_persistent_cache_min_compile_time_secs,
                  "max_size": jax.config.jax_compilation_cache_max_size}))
"""
# a tiny training through the library (import gradstudy never turns the cache on: the first
# program build does)
TRAIN = COUNT_HITS + """
from gradstudy import MLPSpec
from gradstudy.data import teacher_student
from gradstudy.engine import OptimizerSpec, Training, train
assert jax.config.jax_compilation_cache_dir is None or {user}
data = teacher_student(features=4, outputs=1, train=32, test=16, seed=0)
spec = MLPSpec(width=4, depth=2, in_dim=4, out_dim=1, activation="tanh")
ds = train(Training(points=(spec,), optimizer=OptimizerSpec("sgd", 0.1), steps=4, seeds=2,
                    batch_size=8, loss="mse", record_every=2, eval_every=2), data,
         progress=False)
assert bool(jax.numpy.isfinite(ds.loss.values).all())
""" + REPORT
SWEEP = COUNT_HITS + """
from gradstudy import MLPSpec, Sweep
from gradstudy.engine import run_sweep_arrays
spec = MLPSpec(width=4, depth=3, in_dim=4, out_dim=1, activation="tanh")
out = run_sweep_arrays(Sweep(points=(spec,), depths=(2, 3), seeds=2, batch=4), progress=False)
""" + REPORT


def _env(tmp_path, **extra) -> dict:
    """This environment without any cache setting (conftest.py's included), the user's cache
    directory moved under ``tmp_path``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "GRADSTUDY_COMPILATION_CACHE", "XDG_CACHE_HOME"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env.update(extra)
    return env


def _python(code: str, env: dict, user: bool = False) -> tuple[dict, str]:
    """Run ``code`` in a fresh interpreter; its JSON report and its stderr."""
    done = subprocess.run([sys.executable, "-c", code.replace("{user}", str(user))], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.glob("*-cache")} if path.is_dir() else set()


IMPORT = COUNT_HITS + """
import gradstudy, gradstudy.cli, gradstudy.engine, gradstudy.studies, gradstudy.tools
""" + REPORT


def test_import_leaves_jax_alone(tmp_path):
    out, _ = _python(IMPORT, _env(tmp_path))
    assert out["dir"] is None and out["min_secs"] == 1.0 and out["max_size"] == -1
    assert not (tmp_path / "xdg").exists()


def test_on_by_default_and_reused_by_a_second_process(tmp_path):
    env = _env(tmp_path)
    where = tmp_path / "xdg" / "gradstudy" / "jax"  # the user's cache directory
    first, _ = _python(TRAIN, env)
    assert first["dir"] == str(where)
    assert first["min_secs"] == cc.MIN_COMPILE_SECS
    assert first["max_size"] == cc.MAX_BYTES  # bounded by JAX (filelock is installed here)
    written = _entries(where)
    assert written, "the first process wrote no program to the cache"
    assert first["hits"] == 0  # an empty cache
    second, _ = _python(TRAIN, env)
    # every program the first process wrote is loaded, none compiled and written again (a
    # program whose compile time straddles MIN_COMPILE_SECS may be written only now)
    assert second["hits"] == len(written)
    assert _entries(where) >= written


def test_a_sweep_through_the_library_is_cached(tmp_path):
    env = _env(tmp_path, GRADSTUDY_COMPILATION_CACHE=str(tmp_path / "mine"))
    out, _ = _python(SWEEP, env)
    assert out["dir"] == str(tmp_path / "mine")
    assert _entries(tmp_path / "mine")
    again, _ = _python(SWEEP, env)
    assert again["hits"] == len(_entries(tmp_path / "mine")) > 0


def test_off_with_the_environment_variable(tmp_path):
    out, _ = _python(TRAIN, _env(tmp_path, GRADSTUDY_COMPILATION_CACHE="0"))
    assert out["dir"] is None and out["hits"] == 0
    assert not (tmp_path / "xdg").exists()  # not even created


def test_unwritable_directory_warns_once_and_runs(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a directory under a file cannot be created, even by root
    out, err = _python(TRAIN, _env(tmp_path, GRADSTUDY_COMPILATION_CACHE=str(blocker / "jax")))
    assert out["dir"] is None
    warned = [line for line in err.splitlines() if "compilation cache off" in line]
    assert len(warned) == 1 and str(blocker / "jax") in warned[0]


def test_leaves_a_directory_the_user_set_for_jax_alone(tmp_path):
    users = tmp_path / "users"
    env = _env(tmp_path, JAX_COMPILATION_CACHE_DIR=str(users),
               GRADSTUDY_COMPILATION_CACHE=str(tmp_path / "ours"))
    out, _ = _python(TRAIN, env, user=True)
    assert out["dir"] == str(users)
    assert out["min_secs"] == 1.0 and out["max_size"] == -1  # JAX's defaults, untouched
    assert not (tmp_path / "ours").exists()


FLAGGED = COUNT_HITS + """
import os
from gradstudy._compilation_cache import enable_compilation_cache
enable_compilation_cache()
import jax.numpy as jnp
options = json.loads(os.environ.get("TEST_COMPILER_OPTIONS", "{}"))
jax.jit(lambda x: jnp.sin(x) @ x.T, compiler_options=options)(jnp.ones((8, 8))).block_until_ready()
""" + REPORT


def _lambdas(path: Path) -> int:
    """Entries of FLAGGED's own program (its other, tiny programs never change)."""
    return len([name for name in _entries(path) if name.startswith("jit__lambda-")])


def test_the_key_includes_the_xla_flags(tmp_path):
    """A program compiled under other XLA flags is not loaded: a cache hit is the executable
    these flags would build."""
    env = _env(tmp_path, GRADSTUDY_COMPILATION_CACHE=str(tmp_path / "c"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # also this tiny program
               XLA_FLAGS="--xla_backend_optimization_level=1")
    assert _python(FLAGGED, env)[0]["hits"] == 0
    written = len(_entries(tmp_path / "c"))
    assert _python(FLAGGED, env)[0]["hits"] == written  # the same flags: all loaded
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=2"
    assert _python(FLAGGED, env)[0]["hits"] == 0  # other flags: every program compiled again
    assert len(_entries(tmp_path / "c")) == 2 * written


def test_the_key_includes_the_compiler_options(tmp_path):
    """Likewise the per-program options (gradstudy's training programs pass some:
    gradstudy._xla.TRAINING_OPTIONS)."""
    env = _env(tmp_path, GRADSTUDY_COMPILATION_CACHE=str(tmp_path / "c"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert _python(FLAGGED, env)[0]["hits"] == 0
    written = len(_entries(tmp_path / "c"))
    assert _lambdas(tmp_path / "c") == 1
    env["TEST_COMPILER_OPTIONS"] = json.dumps({"xla_cpu_use_fusion_emitters": False})
    # other options: the program is compiled again (a second entry), its helpers loaded
    assert _python(FLAGGED, env)[0]["hits"] == written - 1
    assert _lambdas(tmp_path / "c") == 2
    assert _python(FLAGGED, env)[0]["hits"] == written  # the same options: all loaded
    assert _lambdas(tmp_path / "c") == 2


CLI = """
import json, jax
from gradstudy import cli
status = cli.main(["run", "no_such_study"])  # fails after the cache is on, before any work
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "status": status}))
"""


def test_the_command_turns_it_on_first(tmp_path):
    out, _ = _python(CLI, _env(tmp_path))
    assert out == {"dir": str(tmp_path / "xdg" / "gradstudy" / "jax"), "status": 2}


# ----------------------------------------------------------------- in this process
@pytest.mark.parametrize("value, expected", [
    (None, "default"), ("", "default"), ("1", "default"), ("0", None), ("off", None),
    ("False", None), ("~/elsewhere", "home"), ("rel/dir", "relative")])
def test_requested_dir(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv(cc.ENV, raising=False)
    else:
        monkeypatch.setenv(cc.ENV, value)
    want = {"default": tmp_path / "gradstudy" / "jax", None: None,
            "home": tmp_path / "home" / "elsewhere", "relative": tmp_path / "rel" / "dir"}
    assert cc.requested_dir() == want[expected]


def test_default_dir_without_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for xdg in (None, "", "relative/path"):  # the XDG spec: only an absolute path counts
        if xdg is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        assert cc.default_dir() == tmp_path / ".cache" / "gradstudy" / "jax"


def _entry(path: Path, key: str, size: int, used_ns: int | None) -> None:
    (path / f"{key}-cache").write_bytes(b"x" * size)
    if used_ns is not None:
        (path / f"{key}-atime").write_bytes(used_ns.to_bytes(8, "little"))


def test_trim_deletes_the_least_recently_used(tmp_path):
    _entry(tmp_path, "old", 400, 1)
    _entry(tmp_path, "new", 400, 3)
    _entry(tmp_path, "mid", 400, 2)
    assert cc.cache_size(tmp_path) == 1200
    assert cc.trim(tmp_path, 800) == 400
    assert _entries(tmp_path) == {"new-cache", "mid-cache"}
    assert not (tmp_path / "old-atime").exists()
    assert cc.trim(tmp_path, 800) == 0  # within the bound: nothing
    assert cc.trim(tmp_path, 399) == 800
    assert cc.cache_size(tmp_path) == 0


def test_entries_written_unbounded_get_a_last_use(tmp_path):
    """JAX's bounded cache reads KEY-atime for every entry when it evicts: one written by an
    unbounded cache (no such file) would make each later write fail."""
    _entry(tmp_path, "a", 10, None)
    cc._add_missing_atimes(tmp_path)
    used = int.from_bytes((tmp_path / "a-atime").read_bytes(), "little")
    assert used == (tmp_path / "a-cache").stat().st_mtime_ns
