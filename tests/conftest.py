"""Shared pytest configuration: markers, gradstudy's default XLA flags, and a compilation
cache shared by the test processes.

``import gradstudy`` leaves ``XLA_FLAGS`` alone; the test suite sets the same defaults as
the ``gradstudy`` command (CPU: ``--xla_backend_optimization_level=1``, 2-4x faster
compiles), here, before any test module starts JAX's backend.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax

from gradstudy._xla import default_xla_flags

default_xla_flags()

# test modules in the sub-folders import helpers of tests/test_cli.py
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The suite is mostly XLA compilation, and many tests (and the smoke reproduction's
# subprocess) compile the same programs: JAX's persistent compilation cache, in a fresh
# directory per test session, shared with the xdist workers and subprocesses through the
# environment, took `pytest -n 2` from 735 to 642 s on 2 cores.  The cache is keyed by the
# program's HLO, the compile options and the jax/XLA version, so a hit is the same
# executable.  GRADSTUDY_TEST_XLA_CACHE=0 turns it off; a JAX_COMPILATION_CACHE_DIR set by
# the user is left alone.
if (os.environ.get("GRADSTUDY_TEST_XLA_CACHE", "1") != "0"
        and "JAX_COMPILATION_CACHE_DIR" not in os.environ):
    _cache = tempfile.mkdtemp(prefix="gradstudy-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # only the creating process
if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    # every program, however small or quick to compile (jax's defaults skip those)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # jax is already imported here (gradstudy imports it): the environment reaches only
    # the processes started from now on, this one needs the config
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                      int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long end-to-end runs (full smoke reproduction); -m 'not slow' skips")
