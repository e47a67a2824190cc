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
# directory per test session, shared with the xdist workers and every subprocess through
# the environment (the controller creates it; a worker or subprocess finds it in
# GRADSTUDY_TEST_XLA_CACHE_DIR), took `pytest -n 2` from 735 to 642 s on 2 cores.  Never
# the user's cache: gradstudy's default one (~/.cache/gradstudy/jax, which gradstudy leaves
# alone when JAX_COMPILATION_CACHE_DIR is set) nor a JAX_COMPILATION_CACHE_DIR of the
# user's (replaced here).  A hit is the same executable: JAX's key covers the program, the
# compile options, XLA_FLAGS and the jax/XLA version (gradstudy._compilation_cache).
# GRADSTUDY_TEST_XLA_CACHE=0 runs the suite without any persistent cache.
if os.environ.get("GRADSTUDY_TEST_XLA_CACHE", "1") == "0":
    os.environ["GRADSTUDY_COMPILATION_CACHE"] = "0"  # nor gradstudy's default one
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
else:
    if "GRADSTUDY_TEST_XLA_CACHE_DIR" not in os.environ:  # the controller (or a lone process)
        _cache = tempfile.mkdtemp(prefix="gradstudy-test-xla-cache-")
        os.environ["GRADSTUDY_TEST_XLA_CACHE_DIR"] = _cache
        atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # only its creator
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["GRADSTUDY_TEST_XLA_CACHE_DIR"]
    # every program, however small or quick to compile (jax's defaults skip those)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    # jax is already imported here (gradstudy imports it): the environment reaches only
    # the processes started from now on, this one needs the config
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long end-to-end runs (full smoke reproduction); -m 'not slow' skips")
