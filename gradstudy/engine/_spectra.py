"""Spectra of networks at initialization, measured and cached like a sweep: the mean
singular value of an MLP's layer Jacobians (Glorot & Bengio's 2010 statistic), and the
squared singular values of its input–output Jacobian at several depths (Pennington et al.
2017).

The measurement is the fully connected family's
(:func:`gradstudy.families.mlp.measured_jacobian_mean_singular_values`: one jitted program
vmapped over the seeds); this module declares it — a description of everything that
changes the numbers — and stores it through :func:`gradstudy.results.cached`.

References:
    Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward
    neural networks (the layer Jacobians' mean singular values).
    Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid in deep learning
    through dynamical isometry (the input–output Jacobian's spectrum).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from gradstudy._budget import budget_bytes, human
from gradstudy._seeds import seed_keys
from gradstudy._validate import check_int, check_real
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._family import (
    MLP_FAMILY,
    measured_jacobian_mean_singular_values,
    sample_network,
)
from gradstudy.families.mlp._jacobians import jacobian_squared_singular_values
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

SPECTRA_VERSION = 1  # bumped whenever what layer_jacobian_spectrum computes changes
JACOBIAN_SPECTRUM_VERSION = 1  # bumped whenever what jacobian_spectrum computes changes


def layer_jacobian_spectrum(spec: MLPSpec, seeds: int, batch: int, base_seed: int = 0,
                            cache_dir: Path | str | None = None,
                            name: str = "jacobians") -> xr.Dataset:
    """The mean singular value of the layer Jacobians of ``seeds`` networks, cached.

    Per network (weights and inputs x ~ N(0, 1) drawn as in a sweep from
    ``seed_keys(base_seed, seeds)``), the mean over ``batch`` examples, layers 2..depth and
    singular values of ∂h_l/∂h_(l−1)
    (:func:`gradstudy.families.mlp.measured_jacobian_mean_singular_values`).  The file is
    keyed by the spec (its functions by fingerprint), ``seeds``, ``batch`` and
    ``base_seed``; a spec whose functions cannot be fingerprinted is measured afresh.

    Args:
        spec: the network (its own gains and σ_b); depth >= 2, no batchnorm.
        seeds: number of networks.
        batch: examples per network.
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with dim ``seed``: ``mean_singular_value`` (float64).

    Raises:
        ConfigError: a spec that is not an MLPSpec, or counts out of range.

    References:
        Glorot & Bengio (2010).
    """
    if not isinstance(spec, MLPSpec):
        raise ConfigError(f"spec: must be an MLPSpec, got {type(spec).__name__}")
    seeds = check_int("seeds", seeds, 1, 10**5)
    batch = check_int("batch", batch, 1, 10**6)
    base_seed = check_int("base_seed", base_seed, 0, 2**32 - 1)
    description = {"measurement": "mean singular value of the layer Jacobians at init",
                   "point": spec.describe(), "seeds": seeds, "batch": batch,
                   "base_seed": base_seed, "input_std": 1.0,
                   "spectra_version": SPECTRA_VERSION}

    def compute():
        values = measured_jacobian_mean_singular_values(spec, seeds, batch, base_seed)
        return labeled_dataset(
            {"mean_singular_value": np.asarray(values, float)},
            {"mean_singular_value": ("seed",)}, {"seed": np.arange(seeds)},
            {DESCRIPTION_ATTR: describe_json(description), "batch": batch},
            {"mean_singular_value": "mean over examples, layers 2..depth and singular "
                                    "values of ∂h_l/∂h_(l−1)"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  MLP_FAMILY.why_unfingerprintable(spec))


def jacobian_spectrum(spec: MLPSpec, depths: Sequence[int], seeds: int, batch: int = 1,
                      input_std: float = 1.0, base_seed: int = 0,
                      cache_dir: Path | str | None = None,
                      name: str = "jacobian_spectrum") -> xr.Dataset:
    """Squared singular values of the input–output Jacobian of ``seeds`` networks, cached.

    Per network (weights and inputs x ~ N(0, input_std²) drawn as in a sweep from
    ``seed_keys(base_seed, seeds)``, built ``max(depths) + 1`` layers deep) and example, the
    squared singular values λ of ``J_d = ∂h_{d+1}/∂h_1`` for every ``d`` of ``depths``
    (:func:`gradstudy.families.mlp.jacobian_squared_singular_values`; one jitted program,
    vmapped over the seeds, every depth from one pass).  Choose ``input_std`` so that
    ``h_1`` starts at the variance the theory assumes (e.g. the fixed point q*).  The file is
    keyed by the spec (its functions by fingerprint), depths, seeds, batch, input_std and
    base_seed.

    Args:
        spec: the network (its own gains and σ_b; its depth is ignored); no batchnorm.
        depths: numbers of layer Jacobians in the product (>= 1).
        seeds: number of networks.
        batch: examples per network.
        input_std: standard deviation of the inputs.
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with dims ``seed``, ``depth``, ``example``, ``index``: ``lambda`` (float64,
        descending along ``index``).

    Raises:
        ConfigError: a spec that is not an MLPSpec, counts out of range, or a program whose
            Jacobians would not fit the memory budget (one line, with the estimate).

    References:
        Pennington, Schoenholz & Ganguli (2017).
    """
    if not isinstance(spec, MLPSpec):
        raise ConfigError(f"spec: must be an MLPSpec, got {type(spec).__name__}")
    depths = tuple(sorted({check_int("depths", d, 1, 100_000) for d in depths}))
    if not depths:
        raise ConfigError("depths: need at least one depth")
    seeds = check_int("seeds", seeds, 1, 10**5)
    batch = check_int("batch", batch, 1, 10**4)
    base_seed = check_int("base_seed", base_seed, 0, 2**32 - 1)
    input_std = check_real("input_std", input_std)
    spec = spec.replace(depth=depths[-1] + 1)
    # per network: J, its tangent and the layer's JVP intermediates (≈ 4 width² per example),
    # the SVD's workspace and the recorded spectra, plus the weights
    item = np.dtype(spec.dtype).itemsize
    per_network = item * (batch * (6 * spec.width**2 + len(depths) * spec.width)
                          + (spec.depth + 1) * spec.width**2)
    if seeds * per_network > budget_bytes():
        raise ConfigError(f"seeds: {seeds} networks of width {spec.width}, depth {spec.depth} "
                          f"need ≈ {human(seeds * per_network)} but the budget is "
                          f"{human(budget_bytes())}; use fewer seeds or a smaller width")
    description = {"measurement": "squared singular values of the input-output Jacobian",
                   "point": spec.describe(), "depths": list(depths), "seeds": seeds,
                   "batch": batch, "base_seed": base_seed, "input_std": input_std,
                   "spectra_version": JACOBIAN_SPECTRUM_VERSION}

    def compute():
        # one program per static key: specs differing only in gains share it (traced)
        values = _measure_jacobian_spectra(spec.static_key(), depths, batch, input_std,
                                           np.asarray(spec.kernel_scales()), spec.sigma_b,
                                           seed_keys(base_seed, seeds))
        values = np.asarray(values, np.float64)
        return labeled_dataset(
            {"lambda": values}, {"lambda": ("seed", "depth", "example", "index")},
            {"seed": np.arange(seeds), "depth": np.asarray(depths),
             "example": np.arange(batch), "index": np.arange(spec.width)},
            {DESCRIPTION_ATTR: describe_json(description), "batch": batch},
            {"lambda": "squared singular values of ∂h_(d+1)/∂h_1, descending"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  MLP_FAMILY.why_unfingerprintable(spec))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _measure_jacobian_spectra(spec, depths, batch, input_std, kernel_scales, sigma_b, keys):
    def one(key):
        params, x, _ = sample_network(spec, key, batch, input_std, kernel_scales, sigma_b)
        return jacobian_squared_singular_values(spec, params, x, depths)

    return jax.vmap(one)(keys)
