"""Dynamical isometry of deep 1-D conv stacks, measured and cached like a sweep: per-layer
back-propagated squared norms and the input–output Jacobian's squared singular values.

The measurement is the convolutional family's (:func:`gradstudy.families.cnn.isometry_probes`:
one jitted program vmapped over the seeds); this module declares it — a description of
everything that changes the numbers — and stores it through :func:`gradstudy.results.cached`.

References:
    Xiao et al. (2018), Dynamical isometry and a mean field theory of CNNs (ICML).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from gradstudy._validate import check_int, check_real
from gradstudy.families.cnn._family import CNN_FAMILY
from gradstudy.families.cnn._isometry import check_isometry_spec, isometry_probes
from gradstudy.families.cnn._spec import CNNSpec
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

ISOMETRY_VERSION = 1  # bumped whenever what cnn_isometry computes changes


def cnn_isometry(spec: CNNSpec, sigma_b: float, input_ms: float, seeds: int,
                 jacobian_depths: tuple[int, ...] = (), base_seed: int = 0,
                 cache_dir: Path | str | None = None, name: str = "cnn_isometry"
                 ) -> xr.Dataset:
    """Back-propagated norms and Jacobian spectra of ``seeds`` plain conv stacks, cached.

    Per network (kernels by ``spec.init`` × ``spec.sigma_w``, biases N(0, σ_b²), input at
    mean square ``input_ms`` per position; :mod:`gradstudy.families.cnn._isometry`), drawn
    from ``seed_keys(base_seed, seeds)``.  The file is keyed by the spec (its functions by
    fingerprint), σ_b, ``input_ms``, ``seeds``, ``jacobian_depths`` and ``base_seed``.

    Args:
        spec: a plain CNNSpec; ``depth`` layers C → C, ``length`` positions.
        sigma_b: bias standard deviation.
        input_ms: mean square of the input over the channels at every position.
        seeds: number of networks.
        jacobian_depths: depths d (<= spec.depth) at which the squared singular values of
            ∂h_d/∂h_0 are measured; empty for none.
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with ``backprop_sq`` (seed, layer: 0..L), ‖δ_l‖² for the readout ⟨u, h_L⟩;
        ``pre_q`` (seed, layer: 1..L); with ``jacobian_depths``, ``sv2`` (seed,
        jacobian_depth, index), ascending (float64 copies of float32 measurements).

    Raises:
        ConfigError: a spec that is not a plain CNNSpec, or values out of range.
    """
    check_isometry_spec(spec, jacobian_depths)
    seeds = check_int("seeds", seeds, 1, 10**5)
    base_seed = check_int("base_seed", base_seed, 0, 2**32 - 1)
    sigma_b = check_real("sigma_b", sigma_b)
    input_ms = check_real("input_ms", input_ms)
    jacobian_depths = tuple(int(d) for d in jacobian_depths)
    description = {"measurement": "cnn isometry probe: backprop norms and Jacobian spectra",
                   "point": spec.describe(), "sigma_b": sigma_b, "input_ms": input_ms,
                   "seeds": seeds, "jacobian_depths": list(jacobian_depths),
                   "base_seed": base_seed, "isometry_version": ISOMETRY_VERSION}

    def compute():
        out = isometry_probes(spec, seeds, sigma_b, input_ms, base_seed, jacobian_depths)
        arrays = {"backprop_sq": np.asarray(out["backprop_sq"], float),
                  "pre_q": np.asarray(out["pre_q"], float)}
        dims = {"backprop_sq": ("seed", "layer"), "pre_q": ("seed", "pre_layer")}
        coords = {"seed": np.arange(seeds), "layer": np.arange(spec.depth + 1),
                  "pre_layer": np.arange(1, spec.depth + 1)}
        if jacobian_depths:
            arrays["sv2"] = np.asarray(out["sv2"], float)
            dims["sv2"] = ("seed", "jacobian_depth", "index")
            coords["jacobian_depth"] = np.asarray(jacobian_depths)
            coords["index"] = np.arange(arrays["sv2"].shape[-1])
        return labeled_dataset(
            arrays, dims, coords, {DESCRIPTION_ATTR: describe_json(description)},
            {"backprop_sq": "‖∂⟨u, h_L⟩/∂h_l‖², u ~ N(0, 1)",
             "pre_q": "mean square of layer l's pre-activation",
             "sv2": "squared singular values of ∂h_d/∂h_0, ascending"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  CNN_FAMILY.why_unfingerprintable(spec))
