"""Storage: labeled xarray Datasets written atomically as netCDF, cached by description.

Storage only stores.  The producer of a result declares the dims of what it returns
(:func:`labeled_dataset`: a name -> dims table, e.g. ``(point, seed, depth, layer)`` for a
sweep, a ``step`` axis for training, a ``time`` axis for recurrent nets) and a JSON-able
description of everything that changes the numbers; :func:`cached` then reuses a file only
if it opens, its ``description`` attribute equals this
description and its ``checksum`` attribute equals the SHA-256 of its variables; otherwise
it recomputes, with one line saying why, and rewrites the file atomically.  A result whose
description cannot be trusted (a function without a fingerprint) is computed afresh every
time and never stored.  Files open without gradstudy (``xarray.open_dataset(path)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from gradstudy import status
from gradstudy._version import __version__

# The attribute holding the JSON description of what a result computed.
DESCRIPTION_ATTR = "description"
# gradstudy 0.1 stored every description (a training's too) under "sweep"; such files are
# still read, verified like new ones (the content of the attribute is unchanged) and
# returned with the description under DESCRIPTION_ATTR
LEGACY_DESCRIPTION_ATTR = "sweep"


def versions() -> dict[str, str]:
    import flax
    import optax

    return {"gradstudy": __version__, "jax": jax.__version__,
            "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
            "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__,
            "xarray": xr.__version__, "python": platform.python_version()}


def backend() -> str:
    dev = jax.devices()[0]
    return f"{jax.default_backend()}:{dev.device_kind}:{jax.device_count()}"


def cache_key(description: dict) -> str:
    blob = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def describe_json(description: dict) -> str:
    """The canonical text of a description, as stored in the ``description`` attribute."""
    return json.dumps(description, sort_keys=True, default=str)


def labeled_dataset(arrays: Mapping[str, np.ndarray], dims: Mapping[str, tuple[str, ...]],
                    coords: Mapping, attrs: Mapping,
                    descriptions: Mapping[str, str] | None = None) -> xr.Dataset:
    """A Dataset of ``arrays`` with the dims their producer declares.

    Args:
        arrays: name -> array.  ``<name>_status`` arrays (int8 codes of
            :mod:`gradstudy.status`: why a value of ``<name>`` is not a normal number) take
            the dims of ``<name>`` and are linked to it by CF ``ancillary_variables``.
        dims: name -> dims, for every array that is not a status companion.
        coords: xarray coordinates.
        attrs: dataset attributes (e.g. the description under ``DESCRIPTION_ATTR``);
            package versions, backend and creation time are added.
        descriptions: name -> one-line description (default the name).

    Raises:
        KeyError: an array whose dims were not declared (a producer's bug).
    """
    descriptions = descriptions or {}
    data_vars = {}
    for name, value in arrays.items():
        measured = name[:-len("_status")] if name.endswith("_status") else name
        if measured not in dims:
            raise KeyError(f"no dims declared for {measured!r}; declared: {', '.join(dims)}")
        if measured != name:
            attrs_ = dict(status.cf_attributes(), long_name=f"status of {measured}")
        else:
            attrs_ = {"description": descriptions.get(name, name)}
            if name + "_status" in arrays:
                attrs_["ancillary_variables"] = name + "_status"
        data_vars[name] = xr.Variable(tuple(dims[measured]), value, attrs_)
    attrs = {"versions": json.dumps(versions(), sort_keys=True), "backend": backend(),
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **attrs}
    return xr.Dataset(data_vars, coords, attrs)


# ------------------------------------------------------------------------------ integrity
CHECKSUM_ATTR = "checksum"


_CHECKSUM_CHUNK = 1 << 20  # elements hashed at a time: memory stays bounded


def data_checksum(ds: xr.Dataset) -> str:
    """``sha256:`` + hex digest over every variable, coordinates included: name, dims,
    shape, dtype and values (little-endian bytes; strings as UTF-8).

    NaNs are hashed as one canonical NaN: netCDF's fill-value decoding does not keep a
    NaN's sign or payload, and neither changes a result.  Variables are read one at a
    time, so a lazily opened dataset is hashed without loading it whole.
    """
    digest = hashlib.sha256()

    def add(token: bytes) -> None:
        digest.update(len(token).to_bytes(8, "little"))
        digest.update(token)

    for name in sorted(ds.variables, key=str):
        variable = ds.variables[name]
        values = np.asarray(variable.values)
        text = values.dtype.kind in "OUS"
        dtype_token = "str" if text else values.dtype.newbyteorder("<").str
        add(str(name).encode())
        add(json.dumps([list(map(str, variable.dims)), list(values.shape),
                        dtype_token]).encode())
        flat = values.reshape(-1)
        for start in range(0, flat.size, _CHECKSUM_CHUNK):
            chunk = flat[start:start + _CHECKSUM_CHUNK]
            if text:
                digest.update(b"".join(len(b).to_bytes(8, "little") + b for b in
                                       (_as_text(v).encode("utf-8") for v in chunk)))
                continue
            if chunk.dtype.kind in "fc":
                chunk = np.where(np.isnan(chunk), np.nan, chunk).astype(chunk.dtype)
            digest.update(np.ascontiguousarray(chunk, chunk.dtype.newbyteorder("<")).tobytes())
        del values, flat
    return "sha256:" + digest.hexdigest()


def file_checksums(path: Path) -> tuple[str | None, str]:
    """(stored, actual) checksum of a netCDF file, reading one variable at a time."""
    with xr.open_dataset(path, engine="h5netcdf", cache=False) as ds:
        return ds.attrs.get(CHECKSUM_ATTR), data_checksum(ds)


def _as_text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class UnusableCache(Exception):
    """A cached file that must not be used; the message says why (one short phrase)."""


def load_verified(path: Path, description: dict) -> xr.Dataset:
    """Load ``path`` if it is a readable netCDF of exactly ``description`` whose data match
    its stored checksum; else raise :class:`UnusableCache`."""
    path = Path(path)
    if path.is_dir():
        raise UnusableCache("a directory, not a file")
    try:
        ds = load(path)
    except Exception as e:  # truncated, empty or foreign bytes fail in many ways
        raise UnusableCache(f"unreadable: {type(e).__name__}") from None
    stored = ds.attrs.get(DESCRIPTION_ATTR, ds.attrs.get(LEGACY_DESCRIPTION_ATTR))
    if stored is None:
        raise UnusableCache("no description")
    if stored != describe_json(description):
        raise UnusableCache("it holds a different computation")
    checksum = ds.attrs.get(CHECKSUM_ATTR)
    if checksum is None:
        raise UnusableCache("no checksum: written by an older gradstudy")
    try:
        actual = data_checksum(ds)
    except Exception as e:
        raise UnusableCache(f"data unreadable: {type(e).__name__}") from None
    if checksum != actual:
        raise UnusableCache("checksum mismatch")
    if DESCRIPTION_ATTR not in ds.attrs:  # a 0.1 file: the same description, today's name
        ds.attrs[DESCRIPTION_ATTR] = ds.attrs.pop(LEGACY_DESCRIPTION_ATTR)
    return ds


# ------------------------------------------------------------------------ atomic writing
# Temporary files are named ``<target>.<random>.<host>-<pid>.tmp`` so that a later run can
# tell a leftover of a killed process (removed) from a file being written now (kept).
_TEMP_NAME = re.compile(r"^(?P<target>.+)\.[A-Za-z0-9_]+\.(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)"
                        r"\.tmp$")
# Before pids were in the names: mkstemp's default "tmpXXXXXXXX" with our suffixes, and the
# training checkpoints' "<name>.ckpt.npz.<random>.tmp".
_LEGACY_TEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}(\.nc)?\.tmp$"
                               r"|^.+\.ckpt\.npz\.[A-Za-z0-9_]{8}\.tmp$")
# A temporary file untouched this long has no live writer (writing one takes seconds);
# used for files of other hosts (shared file systems) and of older gradstudy versions.
STALE_TEMP_AGE_S = 3600.0


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def _temp_suffix(kind: str) -> str:
    return f"{kind}.{_host_tag()}-{os.getpid()}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists, owned by someone else (or not a pid we can judge)
    return True


def remove_stale_temporaries(directory: Path, max_age_s: float = STALE_TEMP_AGE_S
                             ) -> list[Path]:
    """Remove temporary files a killed gradstudy process left in ``directory``.

    A file named with this host and a pid that is no longer running is removed; one of
    another host, or from an older gradstudy (no pid in the name), only once it has not
    been modified for ``max_age_s``.  Other files are never touched.  Returns what was
    removed.
    """
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    host, now = _host_tag(), time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match and not _LEGACY_TEMP_NAME.match(entry.name):
            continue
        try:
            info = entry.lstat()
            if not entry.is_file() or entry.is_symlink():
                continue
            old = now - info.st_mtime > max_age_s
            dead = bool(match) and match["host"] == host and not _pid_alive(int(match["pid"]))
            if dead or old:
                entry.unlink()
                removed.append(entry)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` with a ``checksum`` attribute to a temporary file beside ``path``, check
    that it reads back with that checksum, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    ds = ds.assign_attrs({CHECKSUM_ATTR: data_checksum(ds)})
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=_temp_suffix(".nc"),
                               dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        stored, actual = file_checksums(tmp)
        if stored != actual:  # a value that netCDF does not store as given: a bug here
            raise RuntimeError(f"{path}: the written file does not read back as written")
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; results are ordinary files
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # a directory squatting on a cache file's name
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text: str, path: Path) -> None:
    """Write ``text`` to a unique temporary file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=_temp_suffix(""),
                               dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(obj, path: Path) -> None:
    write_text_atomic(json.dumps(obj, indent=2, default=_json_default) + "\n", path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def load(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def notice(message: str) -> None:
    """One line to stderr, for what a user should know but that is not an error."""
    print(f"gradstudy: {message}", file=sys.stderr, flush=True)


def cached(name: str, description: dict, compute: Callable[[], xr.Dataset],
           cache_dir: Path | None, not_cacheable: str | None = None) -> xr.Dataset:
    """``compute()``'s Dataset, or the verified file of an earlier identical computation.

    Args:
        name: file-name stem; the file is ``<cache_dir>/<name>-<hash of description>.nc``.
        description: JSON-able, everything that changes the result; stored in the file
            (``DESCRIPTION_ATTR``) and compared on load.
        compute: makes the Dataset (its ``DESCRIPTION_ATTR`` must be ``description``).
        cache_dir: None to compute without storing.
        not_cacheable: why ``description`` cannot key a cache (e.g. an unfingerprintable
            function), or None: then the result is computed afresh and not stored.
    """
    if cache_dir is None:
        return compute()
    remove_stale_temporaries(Path(cache_dir))
    if not_cacheable is not None:
        notice(f"{name}: not cached, computed afresh: cannot fingerprint {not_cacheable}")
        return compute()
    path = Path(cache_dir) / f"{name}-{cache_key(description)}.nc"
    if os.path.lexists(path):
        try:
            return load_verified(path, description)
        except UnusableCache as e:
            notice(f"cached {path} is unusable ({e}); recomputing")
    ds = compute()
    if ds.attrs.get(DESCRIPTION_ATTR) != describe_json(description):
        raise ValueError(f"{name}: the computed Dataset does not carry its description")
    ds.attrs[CHECKSUM_ATTR] = data_checksum(ds)
    write_atomic(ds, path)
    return ds

__all__ = [
    "backend", "cache_key", "cached", "CHECKSUM_ATTR", "data_checksum", "describe_json",
    "DESCRIPTION_ATTR", "file_checksums", "labeled_dataset", "LEGACY_DESCRIPTION_ATTR", "load",
    "load_verified", "notice", "remove_stale_temporaries", "STALE_TEMP_AGE_S", "UnusableCache",
    "versions", "write_atomic", "write_json_atomic", "write_text_atomic",
]
