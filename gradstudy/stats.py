"""Seed-to-seed uncertainty of a study's statistics, from which claim tolerances are derived.

A claim compares a statistic over independently initialized networks (one value per seed)
with an expectation.  Its tolerance is ``K_SE`` standard errors of that statistic, estimated
from the spread over seeds, so that it shrinks as seeds are added and a claim resolves what
it states; a stated theoretical error (Monte Carlo error of a prediction, rounding bound)
is added in quadrature where there is one.

References:
    Efron & Tibshirani (1993), An Introduction to the Bootstrap (bootstrap standard error).
    Kenney & Keeping (1962), Mathematics of Statistics (asymptotic variance of the median,
    π σ² / (2n) for normal samples).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

K_SE = 4.0
"""Standard errors a measured statistic may lie from its expectation.  Four, not two: the
standard error itself is estimated from as few as four seeds (smoke scale)."""

MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
BOOTSTRAP_RESAMPLES = 2000


def _finite(x) -> np.ndarray:
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def median_se(samples) -> tuple[float, float]:
    """Median of the finite per-seed values and its standard error, √(π/2)·s/√n.

    Returns ``(nan, nan)`` with fewer than two finite values: a claim built on it fails.
    """
    x = _finite(samples)
    if x.size < 2:
        return float("nan"), float("nan")
    return float(np.median(x)), float(MEDIAN_SE_FACTOR * np.std(x, ddof=1) / math.sqrt(x.size))


def mean_se(samples) -> tuple[float, float]:
    """Mean of the finite per-seed values and its standard error s/√n."""
    x = _finite(samples)
    if x.size < 2:
        return float("nan"), float("nan")
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size))


def median_se_axis0(samples) -> tuple[np.ndarray, np.ndarray]:
    """:func:`median_se` over axis 0 (seeds) of an array, element-wise over the rest."""
    x = np.where(np.isfinite(samples), np.asarray(samples, float), np.nan)
    n = np.sum(np.isfinite(x), axis=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x, axis=0)
        se = MEDIAN_SE_FACTOR * np.nanstd(x, axis=0, ddof=1) / np.sqrt(n)
    bad = n < 2
    return np.where(bad, np.nan, med), np.where(bad, np.nan, se)


def bootstrap_se(samples, statistic, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> float:
    """Bootstrap standard error over seeds (axis 0 of ``samples``) of ``statistic(samples)``.

    Resamples whose statistic is not finite are left out; NaN if fewer than half are finite.
    The generator is seeded, so a claim's tolerance is reproducible.
    """
    samples = np.asarray(samples, float)
    n = samples.shape[0]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(samples[rng.integers(0, n, n)]) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if values.size < resamples / 2:
        return float("nan")
    return float(np.std(values, ddof=1))


def tolerance(*standard_errors: float, k: float = K_SE) -> float:
    """``k`` times the quadrature sum of independent standard errors."""
    return float(k * math.sqrt(sum(float(s) ** 2 for s in standard_errors)))
