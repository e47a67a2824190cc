"""gradstudy's default XLA flags, set by its own entry points, never by ``import gradstudy``.

Called first thing by the ``gradstudy`` command (:func:`gradstudy.cli.main`), the
benchmark (``benchmarks/bench_sweep.py``) and the test suite (``tests/conftest.py``), before
anything touches JAX: XLA reads ``XLA_FLAGS`` once, when its backend initialises.  A library
user who wants the same setting calls :func:`default_xla_flags` before their first JAX
computation, or sets ``XLA_FLAGS`` themselves.
"""

from __future__ import annotations

import functools
import importlib.util
import os

from gradstudy._compilation_cache import enable_compilation_cache
from gradstudy._threefry import use_unrolled_threefry

ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm_plugin", "libtpu")


def accelerator_plugin() -> str | None:
    """The first installed JAX accelerator plugin of :data:`ACCELERATOR_PLUGINS`, or None."""
    return next((m for m in ACCELERATOR_PLUGINS if importlib.util.find_spec(m)), None)


def default_xla_flags() -> None:
    """Add ``--xla_backend_optimization_level=1`` and one host device per usable core
    (``--xla_force_host_platform_device_count``) to ``XLA_FLAGS`` on CPU-only installs.

    Leaves each alone if ``XLA_FLAGS`` already names it, and both if an accelerator plugin
    is installed or ``GRADSTUDY_XLA_DEFAULTS=0``.  Has no effect once JAX has started its
    backend.
    """
    # XLA's CPU backend spends seconds per program at its default LLVM optimisation level;
    # level 1 compiled our sweep programs 2-4x faster (width 256, 8 depths: 9.2 s -> 4.2 s;
    # a tiny net: 5.3 s -> 2.4 s) and ran them no slower (4.7 s -> 2.9 s), measured on a
    # 2-core CPU.  Only on CPU-only installs, only if the user has not chosen a level
    # (GRADSTUDY_XLA_DEFAULTS=0 opts out), and only before JAX starts its backend.
    if os.environ.get("GRADSTUDY_XLA_DEFAULTS", "1") == "0":
        return
    if accelerator_plugin() is not None:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        flags = (flags + " --xla_backend_optimization_level=1").strip()
    # one XLA CPU device per core: a device runs one program at a time on one core, and
    # training spreads its independent runs over the devices (gradstudy.engine.over_devices:
    # 1.8-1.9x on 2 cores); single-device programs (sweeps) run as before
    cores = usable_cores()
    if "xla_force_host_platform_device_count" not in flags and cores > 1:
        flags = f"{flags} --xla_force_host_platform_device_count={cores}"
    os.environ["XLA_FLAGS"] = flags


MAX_HOST_DEVICES = 8


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at most MAX_HOST_DEVICES."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_HOST_DEVICES, cores))


# XLA CPU's new fusion emitters compile our training programs ≈ 25 % slower than the
# classic ones and ran them no faster (2-core CPU, width 32 and 128, 20 layers: 1.94 ->
# 1.53 s compile, 16.0 vs 16.2 s run).  (Level 0 for the one-time initialisation compiled
# it 0.4 s faster but ran it 6x slower: 1.6 s for 64 width-128 networks; not used.)
TRAINING_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=None)
def compile_options(kind: str) -> dict | None:
    """Per-program XLA options for ``jax.jit(..., compiler_options=...)``; ``kind`` is
    ``"training"`` (the training programs), the only kind so far.

    None (XLA's defaults) unless the default backend is the CPU, ``GRADSTUDY_XLA_DEFAULTS``
    is not "0", and this XLA accepts the options (checked once on a trivial program, so a
    version that drops an option falls back to the defaults instead of failing).

    The first call also turns on JAX's persistent compilation cache
    (:func:`gradstudy._compilation_cache.enable_compilation_cache`).
    """
    import jax
    import jax.numpy as jnp

    # every training program is built through here: the first build turns on the
    # persistent compilation cache, before anything of it compiles (also for a library
    # user, who never runs the gradstudy command; a no-op after the first call)
    enable_compilation_cache()
    use_unrolled_threefry()  # the same random bits, 3x faster on a CPU (weights, minibatches)
    if os.environ.get("GRADSTUDY_XLA_DEFAULTS", "1") == "0" or jax.default_backend() != "cpu":
        return None
    options = {"training": TRAINING_OPTIONS}[kind]
    try:
        jax.jit(lambda x: x + 1, compiler_options=options)(jnp.zeros((), jnp.int32))
    except Exception:  # noqa: BLE001 -- an option this XLA does not know: its defaults
        return None
    return dict(options)
