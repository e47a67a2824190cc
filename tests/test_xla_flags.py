"""``import gradstudy`` leaves the environment alone; gradstudy's own entry points (the
``gradstudy`` command, the benchmark, this test suite) set the default XLA flags.

Each import check runs in a fresh interpreter: this process imported gradstudy long ago, and
conftest.py has set the defaults in it.
"""

import json
import os
import subprocess
import sys

import pytest

from gradstudy import _xla

LEVEL = "--xla_backend_optimization_level=1"
CORES = _xla.usable_cores()
DEVICES = f" --xla_force_host_platform_device_count={CORES}" if CORES > 1 else ""
DEFAULTS = LEVEL + DEVICES  # what gradstudy adds on a CPU-only install
ACCELERATOR = _xla.accelerator_plugin() is not None


def _python(code: str, xla_flags: str | None) -> dict:
    """Run ``code`` in a fresh interpreter with XLA_FLAGS = ``xla_flags`` (unset if None);
    it prints one JSON object, returned."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "GRADSTUDY_XLA_DEFAULTS")}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


IMPORT_ONLY = """
import json, os
import gradstudy, gradstudy.cli, gradstudy.studies, gradstudy.engine
print(json.dumps({"xla_flags": os.environ.get("XLA_FLAGS")}))
"""


@pytest.mark.parametrize("xla_flags", [None, "", "--xla_cpu_enable_fast_math=false"])
def test_import_leaves_xla_flags_unchanged(xla_flags):
    assert _python(IMPORT_ONLY, xla_flags) == {"xla_flags": xla_flags}


CLI_MAIN = """
import json, os
from jax._src import xla_bridge
from gradstudy import cli
started = xla_bridge.backends_are_initialized()
try:
    cli.main(["--version"])  # argparse exits after printing the version
except SystemExit:
    pass
print(json.dumps({"xla_flags": os.environ.get("XLA_FLAGS"), "backend_started": started}))
"""


@pytest.mark.parametrize("xla_flags", [None, "--xla_cpu_enable_fast_math=false"])
def test_cli_main_sets_the_level_before_jax_starts(xla_flags):
    out = _python(CLI_MAIN, xla_flags)
    assert out["backend_started"] is False  # importing the CLI has not started XLA yet
    if ACCELERATOR:  # the level is a CPU-backend setting: left alone with a GPU/TPU plugin
        assert out["xla_flags"] == xla_flags
    else:
        assert out["xla_flags"] == ((xla_flags + " ") if xla_flags else "") + DEFAULTS


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("GRADSTUDY_XLA_DEFAULTS", raising=False)
    monkeypatch.setattr(_xla, "accelerator_plugin", lambda: None)  # a CPU-only install
    return monkeypatch


def test_default_xla_flags_appends_the_level(clean_env):
    clean_env.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    _xla.default_xla_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false " + DEFAULTS
    _xla.default_xla_flags()  # idempotent
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false " + DEFAULTS


def test_default_xla_flags_keeps_a_level_the_user_chose(clean_env):
    clean_env.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    _xla.default_xla_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=3" + DEVICES


def test_default_xla_flags_keeps_a_device_count_the_user_chose(clean_env):
    clean_env.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    _xla.default_xla_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1 " + LEVEL


def test_one_host_device_per_usable_core(clean_env):
    clean_env.setattr(_xla.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert _xla.usable_cores() == 3
    clean_env.setattr(_xla.os, "sched_getaffinity", lambda pid: set(range(64)),
                      raising=False)
    assert _xla.usable_cores() == _xla.MAX_HOST_DEVICES
    clean_env.setattr(_xla.os, "sched_getaffinity", lambda pid: {5}, raising=False)
    _xla.default_xla_flags()
    assert os.environ["XLA_FLAGS"] == LEVEL  # one core: one device, nothing to add


def test_default_xla_flags_opt_out(clean_env):
    clean_env.setenv("GRADSTUDY_XLA_DEFAULTS", "0")
    _xla.default_xla_flags()
    assert "XLA_FLAGS" not in os.environ


def test_default_xla_flags_not_with_an_accelerator_plugin(clean_env):
    clean_env.setattr(_xla, "accelerator_plugin", lambda: "jax_cuda12_plugin")
    _xla.default_xla_flags()
    assert "XLA_FLAGS" not in os.environ
