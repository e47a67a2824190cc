"""Self-describing results: xarray Datasets written atomically as netCDF, cached by config.

A sweep's result opens without gradstudy (``xarray.open_dataset(path)``): named dims
(point, seed, depth, layer), per-point coordinates (activation, init, σ_w, σ_b, effective
σ_w², ...), and the sweep description, package versions and backend as attributes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
import xarray as xr

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


def to_dataset(sweep: Sweep, arrays: dict) -> xr.Dataset:
    data_vars = {}
    for name, value in arrays.items():
        data_vars[name] = xr.Variable(_DIMS[name], value, {"description": _DESCRIPTIONS[name]})
    pts = sweep.points
    coords = {
        "point": list(sweep.labels),
        "seed": np.arange(sweep.seeds),
        "depth": np.asarray(sweep.depths),
        "layer": np.arange(1, sweep.max_depth + 1),
        "activation": ("point", [p.describe()["activation"] for p in pts]),
        "init": ("point", [p.describe()["init"] for p in pts]),
        "sigma_w": ("point", [float(p.sigma_w) for p in pts]),
        "sigma_b": ("point", [float(p.sigma_b) for p in pts]),
        "sigma_w2": ("point", [float(p.sigma_w2()) for p in pts]),
        "width": ("point", [p.width for p in pts]),
        "norm": ("point", [p.norm for p in pts]),
        "residual_alpha": ("point", [np.nan if p.residual_alpha is None else p.residual_alpha
                                     for p in pts]),
    }
    attrs = {
        "sweep": json.dumps(sweep.describe(), sort_keys=True, default=str),
        "versions": json.dumps(versions(), sort_keys=True),
        "backend": backend(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch": sweep.batch,
        "input_std": float(sweep.input_std),
        "notes": "depth-d networks are the first d layers of one max-depth stack per seed; "
                 "NaN marks layers a depth-d network does not have, or a non-finite result",
    }
    return xr.Dataset(data_vars, coords, attrs)


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text: str, path: Path) -> None:
    """Write ``text`` to a unique temporary file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=path.parent)
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


def run_cached(sweep: Sweep, cache_dir: Path | None, name: str = "sweep",
               progress: bool = True, keep_backprop: bool = False) -> xr.Dataset:
    """Run ``sweep`` or load its result: the file name carries a hash of the full config."""
    desc = dict(sweep.describe(), keep_backprop=keep_backprop)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{name}-{cache_key(desc)}.nc"
        if path.exists():
            return load(path)
    ds = to_dataset(sweep, run_sweep_arrays(sweep, progress=progress,
                                            keep_backprop=keep_backprop))
    if path is not None:
        write_atomic(ds, path)
    return ds
