"""JAX's persistent compilation cache, on by default for gradstudy's programs.

gradstudy's time to a first result is mostly XLA compilation.  JAX can keep every compiled
executable on disk and load it in the next process instead of compiling again;
:func:`enable_compilation_cache` turns that on.  The ``gradstudy`` command calls it first
thing, and the library calls it when it builds its first program (a sweep or training
program), never at ``import gradstudy``: importing stays free of side effects, and the
directory is set before the first compilation that should be cached.

Where (first match wins):

* a cache directory the user chose for JAX (``jax.config.update("jax_compilation_cache_dir",
  ...)`` or ``JAX_COMPILATION_CACHE_DIR``) is used as it is: gradstudy changes none of
  JAX's cache settings then; nor when the user turned JAX's cache off
  (``jax_enable_compilation_cache=False``);
* ``GRADSTUDY_COMPILATION_CACHE=0`` (or ``false``, ``off``, ``no``): no cache;
* ``GRADSTUDY_COMPILATION_CACHE=/some/dir``: that directory;
* otherwise ``$XDG_CACHE_HOME/gradstudy/jax``, or ``~/.cache/gradstudy/jax``.

A directory that cannot be created or written is one warning line, and the cache stays off:
nothing else changes.

Size: at most :data:`MAX_BYTES`.  With the ``filelock`` package installed (JAX needs it for
this) JAX enforces the bound itself (``jax_compilation_cache_max_size``): each write first
deletes the least recently read entries until the new one fits, under a file lock shared by
the processes using the directory.  Without ``filelock``, gradstudy deletes the least
recently written entries down to the bound when it turns the cache on (once per process), so
one process can exceed the bound by what it writes.

Why a hit is never a wrong number: JAX keys an entry (``jax._src.cache_key.get``, jax 0.10)
by a SHA-256 over the program itself (its StableHLO, canonicalised: shapes, dtypes -- also
float64 -- and every operation), the jaxlib version, the backend's platform and version,
the ``XLA_FLAGS`` of the process (all but dump flags and
``--xla_force_host_platform_device_count``, which change no code), the serialized compile
options (with the per-program ``compiler_options`` gradstudy passes, e.g.
:data:`gradstudy._xla.TRAINING_OPTIONS`, and the device assignment) and the devices'
kinds.  So the optimisation level gradstudy's entry points set, or a flag the user sets,
gives another key, not another program's executable.  The host CPU's model is not in the
key; XLA's CPU loader refuses an executable that needs instructions this CPU lacks (it is
compiled again), but one compiled on an older CPU of the same architecture runs as it is:
a cache directory shared between machines can round float sums in the other machine's
order (as a results file copied between them would).  Give each machine its own directory
(the default, unless the home directory is shared) where bit-for-bit agreement with a fresh
compilation on that machine matters.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

ENV = "GRADSTUDY_COMPILATION_CACHE"
OFF = ("0", "false", "off", "no")
MAX_BYTES = 2**30  # 1 GiB; a smoke reproduction leaves about 0.1 GiB (docs/performance.md)
# Programs that compile faster than this are not written.  JAX's default (1 s) skips most
# of gradstudy's programs at smoke scale (initialisation, evaluation: 0.4-2.4 s each on
# 2 cores at XLA optimisation level 1), and 0 would write hundreds of tiny programs (data
# staging, key folding: < 0.1 s) that load no faster than they compile.
MIN_COMPILE_SECS = 0.1

_UNSET = object()
_state: object = _UNSET  # this process's answer: the directory in use, or None


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/gradstudy/jax`` (an absolute XDG_CACHE_HOME only, as the XDG
    specification asks), else ``~/.cache/gradstudy/jax``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "gradstudy" / "jax"


def requested_dir() -> Path | None:
    """The directory ``GRADSTUDY_COMPILATION_CACHE`` asks for (None: off)."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    if value in ("", "1"):
        return default_dir()
    return Path(value).expanduser().absolute()


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for this process, once; see the module.

    Cheap after the first call (the answer is kept), so every program builder may call it.
    Must run before the first compilation that should be cached; programs compiled before it
    are not written.

    Returns:
        The cache directory this process uses (gradstudy's, or one the user set for JAX),
        or None when the cache is off.
    """
    global _state
    if _state is _UNSET:
        _state = _enable()
    return _state  # type: ignore[return-value]


def _enable() -> str | None:
    import jax

    if jax.config.jax_compilation_cache_dir:  # the user's choice, settings and all
        return str(jax.config.jax_compilation_cache_dir)
    if not jax.config.jax_enable_compilation_cache:
        return None
    path = requested_dir()
    if path is None:
        return None
    problem = _unwritable(path)
    if problem:
        warnings.warn(f"gradstudy: compilation cache off: cannot write to {str(path)!r} "
                      f"({problem}); set {ENV}=/another/dir, or {ENV}=0 to silence this",
                      RuntimeWarning, stacklevel=3)
        return None
    _bound(path, jax)
    if ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ
            and jax.config.jax_persistent_cache_min_compile_time_secs == 1.0):  # JAX's default
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot hold the cache (created if missing), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def _bound(path: Path, jax) -> None:
    """Keep the directory within MAX_BYTES (see the module: by JAX, or trimmed here)."""
    _add_missing_atimes(path)
    if importlib.util.find_spec("filelock") is not None:
        if jax.config.jax_compilation_cache_max_size == -1:  # JAX's default: unbounded
            jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    else:
        trim(path, MAX_BYTES)


# JAX's file layout (jax._src.lru_cache): an entry KEY is the file KEY-cache, and, when the
# size is bounded, KEY-atime holds its last use (time.time_ns(), 8 bytes little-endian).
CACHE_SUFFIX, ATIME_SUFFIX = "-cache", "-atime"


def _entries(path: Path) -> list[tuple[int, int, Path]]:
    """(last use in ns, size, file) of each entry; the write time where no use is kept."""
    out = []
    for f in path.glob(f"*{CACHE_SUFFIX}"):
        try:
            size, used = f.stat().st_size, f.stat().st_mtime_ns
            atime = f.with_name(f.name[:-len(CACHE_SUFFIX)] + ATIME_SUFFIX)
            if atime.exists():
                used = int.from_bytes(atime.read_bytes(), "little")
        except OSError:  # removed by another process meanwhile
            continue
        out.append((used, size, f))
    return out


def _add_missing_atimes(path: Path) -> None:
    """Give each entry without one a KEY-atime file (its write time): JAX's bounded cache
    reads one for every entry when it evicts, and fails on a directory filled unbounded."""
    for used, _, f in _entries(path):
        atime = f.with_name(f.name[:-len(CACHE_SUFFIX)] + ATIME_SUFFIX)
        if not atime.exists():
            try:
                atime.write_bytes(int(used).to_bytes(8, "little"))
            except OSError:
                pass


def trim(path: Path, max_bytes: int) -> int:
    """Delete the least recently used entries of the cache at ``path`` until the rest
    holds at most ``max_bytes``; returns the bytes deleted."""
    entries = sorted(_entries(Path(path)))
    total, freed = sum(size for _, size, _ in entries), 0
    for _, size, f in entries:
        if total - freed <= max_bytes:
            break
        for victim in (f, f.with_name(f.name[:-len(CACHE_SUFFIX)] + ATIME_SUFFIX)):
            try:
                victim.unlink()
            except OSError:
                pass
        freed += size
    return freed


def cache_size(path) -> int:
    """Bytes held by the entries of the cache at ``path`` (0 if there is none)."""
    return sum(size for _, size, _ in _entries(Path(path))) if path else 0
