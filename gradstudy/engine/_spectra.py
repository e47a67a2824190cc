"""Spectra of networks at initialization, measured and cached like a sweep: the mean
singular value of an MLP's layer Jacobians (Glorot & Bengio's 2010 statistic).

The measurement is the fully connected family's
(:func:`gradstudy.families.mlp.measured_jacobian_mean_singular_values`: one jitted program
vmapped over the seeds); this module declares it — a description of everything that
changes the numbers — and stores it through :func:`gradstudy.results.cached`.

References:
    Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward
    neural networks (the layer Jacobians' mean singular values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from gradstudy._validate import check_int
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._family import MLP_FAMILY, measured_jacobian_mean_singular_values
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

SPECTRA_VERSION = 1  # bumped whenever what layer_jacobian_spectrum computes changes


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
