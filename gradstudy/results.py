"""Self-describing results: xarray Datasets written atomically as netCDF, cached by config.

A sweep's result opens without gradstudy (``xarray.open_dataset(path)``): named dims
(point, seed, depth, layer), per-point coordinates (activation, init, σ_w, σ_b, effective
σ_w², ...), and the sweep description, package versions and backend as attributes.

A cached file is reused only if it opens, its ``sweep`` attribute equals this sweep's full
description (functions included, by fingerprint: :mod:`gradstudy.fingerprint`) and its
``checksum`` attribute equals the SHA-256 of its variables; otherwise the sweep is
recomputed, with one line saying why, and the file rewritten.  A sweep whose functions
cannot be fingerprinted is computed afresh every time and never stored.
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
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from gradstudy import status
from gradstudy.activations import get_activation
from gradstudy.sweep import Sweep, run_sweep_arrays

_DIMS = {
    "weight_grad_norm": ("point", "seed", "depth", "layer"),
    "bias_grad_norm": ("point", "seed", "depth", "layer"),
    "backprop_norm": ("point", "seed", "depth", "layer"),
    "loss": ("point", "seed", "depth"),
    "input_grad_norm": ("point", "seed", "depth"),
    "readout_grad_norm": ("point", "seed", "depth"),
    "preact_mean": ("point", "seed", "layer"),
    "preact_q": ("point", "seed", "layer"),
    "backprop": ("point", "seed", "depth", "layer", "example", "unit"),
}
_DESCRIPTIONS = {
    "weight_grad_norm": "Frobenius norm of dL/dW_l",
    "bias_grad_norm": "L2 norm of dL/db_l",
    "backprop_norm": "L2 norm of dL/dh_l over batch and units (back-propagated signal)",
    "loss": "MSE loss at initialization",
    "input_grad_norm": "L2 norm of dL/dx",
    "readout_grad_norm": "L2 norm of the readout parameters' gradient",
    "preact_mean": "mean of the pre-activations h_l",
    "preact_q": "second moment q_l of the pre-activations h_l",
    "backprop": "back-propagated signal dL/dh_l",
}


def versions() -> dict[str, str]:
    import flax
    import optax

    import gradstudy

    return {"gradstudy": gradstudy.__version__, "jax": jax.__version__,
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
    """The canonical text of a description, as stored in the ``sweep`` attribute."""
    return json.dumps(description, sort_keys=True, default=str)


def to_dataset(sweep: Sweep, arrays: dict, description: dict | None = None) -> xr.Dataset:
    """The arrays of ``run_sweep_arrays`` with named dims, per-point coordinates and the
    sweep ``description`` (default ``sweep.describe()``) as attributes."""
    data_vars = {}
    for name, value in arrays.items():
        if name.endswith("_status"):
            # why the value of ``name[:-7]`` is not a normal number (gradstudy.status codes)
            attrs = dict(status.cf_attributes(), long_name=f"status of {name[:-7]}")
            data_vars[name] = xr.Variable(_DIMS[name[:-7]], value, attrs)
            continue
        attrs = {"description": _DESCRIPTIONS.get(name, name)}
        if name + "_status" in arrays:
            attrs["ancillary_variables"] = name + "_status"
        data_vars[name] = xr.Variable(_DIMS[name], value, attrs)
    pts = sweep.points
    described = [p.describe() for p in pts]
    coords = {
        "point": list(sweep.labels),
        "seed": np.arange(sweep.seeds),
        "depth": np.asarray(sweep.depths),
        "layer": np.arange(1, sweep.max_depth + 1),
        "activation": ("point", [d["activation"] for d in described]),
        "init": ("point", [d["init"] for d in described]),
        "sigma_w": ("point", [float(p.sigma_w) for p in pts]),
        "sigma_b": ("point", [float(p.sigma_b) for p in pts]),
        "sigma_w2": ("point", [float(p.sigma_w2()) for p in pts]),
        "width": ("point", [p.width for p in pts]),
        "norm": ("point", [p.norm for p in pts]),
        "residual_alpha": ("point", [np.nan if p.residual_alpha is None else p.residual_alpha
                                     for p in pts]),
    }
    attrs = {
        "sweep": describe_json(sweep.describe() if description is None else description),
        "versions": json.dumps(versions(), sort_keys=True),
        "backend": backend(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch": sweep.batch,
        "input_std": float(sweep.input_std),
        "notes": "depth-d networks are the first d layers of one max-depth stack per seed; "
                 "NaN marks layers a depth-d network does not have, or a non-finite result",
    }
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
    stored = ds.attrs.get("sweep")
    if stored is None:
        raise UnusableCache("no sweep description")
    if stored != describe_json(description):
        raise UnusableCache("it holds a different sweep")
    checksum = ds.attrs.get(CHECKSUM_ATTR)
    if checksum is None:
        raise UnusableCache("no checksum: written by an older gradstudy")
    try:
        actual = data_checksum(ds)
    except Exception as e:
        raise UnusableCache(f"data unreadable: {type(e).__name__}") from None
    if checksum != actual:
        raise UnusableCache("checksum mismatch")
    return ds


# ------------------------------------------------------------------------ atomic writing
# Temporary files are named ``<target>.<random>.<host>-<pid>.tmp`` so that a later run can
# tell a leftover of a killed process (removed) from a file being written now (kept).
_TEMP_NAME = re.compile(r"^(?P<target>.+)\.[A-Za-z0-9_]+\.(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)"
                        r"\.tmp$")
# Before pids were in the names: mkstemp's default "tmpXXXXXXXX" with our suffixes.
_LEGACY_TEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}(\.nc)?\.tmp$")
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


def unfingerprintable(sweep: Sweep) -> str | None:
    """Why ``sweep``'s results cannot be cached (a function without a fingerprint), or None."""
    from gradstudy.fingerprint import why_initializer_not_fingerprintable, why_not_fingerprintable

    for label, point in zip(sweep.labels, sweep.points):
        described = point.describe()
        if described["activation_fingerprint"] is None:
            why = why_not_fingerprintable(get_activation(point.activation))
            return f"point {label!r}: activation {described['activation']} ({why})"
        if described["init_fingerprint"] is None:
            why = why_initializer_not_fingerprintable(point.init)
            return f"point {label!r}: init {described['init']} ({why})"
    return None


def run_cached(sweep: Sweep, cache_dir: Path | None, name: str = "sweep",
               progress: bool = True, keep_backprop: bool = False,
               progress_label: str = "sweep") -> xr.Dataset:
    """Run ``sweep`` or load its verified result: the file name carries a hash of the full
    description (functions by fingerprint), the file the description and a checksum.
    ``progress_label`` names the work in the progress bar (e.g. the study)."""
    desc = dict(sweep.describe(), keep_backprop=keep_backprop)

    def compute() -> xr.Dataset:
        arrays = run_sweep_arrays(sweep, progress=progress, keep_backprop=keep_backprop,
                                  desc=progress_label)
        return to_dataset(sweep, arrays, desc)

    if cache_dir is None:
        return compute()
    remove_stale_temporaries(Path(cache_dir))
    why_not = unfingerprintable(sweep)
    if why_not is not None:
        notice(f"{name}: not cached, computed afresh: cannot fingerprint {why_not}")
        return compute()
    path = Path(cache_dir) / f"{name}-{cache_key(desc)}.nc"
    if os.path.lexists(path):
        try:
            return load_verified(path, desc)
        except UnusableCache as e:
            notice(f"cached {path} is unusable ({e}); recomputing")
    ds = compute()
    ds.attrs[CHECKSUM_ATTR] = data_checksum(ds)
    write_atomic(ds, path)
    return ds
