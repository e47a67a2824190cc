"""Statistics of measured gradients over seeds, and the seed-to-seed uncertainty behind claims.

A claim compares a statistic over independently initialized networks (one value per seed)
with an expectation.  Its tolerance is ``K_SE`` standard errors of that statistic, estimated
from the spread over seeds, so that it shrinks as seeds are added and a claim resolves what
it states; a stated theoretical error (Monte Carlo error of a prediction, rounding bound)
is added in quadrature where there is one.

The spread itself is estimated from the seeds, and from few seeds it is noisy: two seeds
that happen to agree give a tiny standard error and a claim that fails by chance (at 4
seeds, ``K_SE`` estimated standard errors cover a normal mean only 97.2 % of the time, as
Student's t with 3 degrees of freedom says).  So the standard errors returned here are
*coverage-matched*: below ``K_REF_SEEDS`` seeds they are scaled by :func:`se_multiplier`,
which makes ``K_SE`` of them the Student-t interval with n − 1 degrees of freedom at the
coverage ``K_SE`` standard errors have at ``K_REF_SEEDS`` seeds (99.48 %).  From
``K_REF_SEEDS`` seeds on the multiplier is 1 (the paper's claims use at least that many),
and a tolerance widens, never narrows, as seeds are removed.  Below ``MIN_SEEDS`` finite
seeds there is no error bar at all: the standard error is NaN, and a claim built on it has
the verdict "not enough seeds" (:class:`gradstudy.studies.Claim`), never pass or fail.

The reductions that studies apply to their sweeps also live here, so that a study only
declares its sweep, calls the library, draws and claims: medians over the finite seeds,
norm ratios between layers (first to last, per-layer factors, residuals against a mean-field
profile), zero crossings along a parameter grid with their bootstrap error, and histograms.

References:
    Efron & Tibshirani (1993), An Introduction to the Bootstrap (bootstrap standard error).
    Kenney & Keeping (1962), Mathematics of Statistics (asymptotic variance of the median,
    π σ² / (2n) for normal samples).
    Abramowitz & Stegun (1964), Handbook of Mathematical Functions, 26.7.3–4 (Student's t
    distribution function for an integer number of degrees of freedom).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

K_SE = 4.0
"""Standard errors a measured statistic may lie from its expectation (coverage-matched
standard errors below ``K_REF_SEEDS`` seeds, see :func:`se_multiplier`)."""

MIN_SEEDS = 3
"""Finite seeds a standard error needs: with two, Student's t has one degree of freedom
(Cauchy tails) and the interval at the reference coverage is 123 standard errors wide, no
test of anything; with fewer than this the standard error is NaN ("not enough seeds")."""

K_REF_SEEDS = 8
"""From this many seeds on, tolerances are ``K_SE`` estimated standard errors, unchanged;
below, they widen to keep the coverage ``K_SE`` has here (the fewest seeds any paper-scale
claim estimates its spread from, so the paper's tolerances are as they were)."""

MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
BOOTSTRAP_RESAMPLES = 2000


def _finite(x) -> np.ndarray:
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def _t_coverage(t: float, dof: int) -> float:
    """P(|T| ≤ t) for Student's T with an integer number of degrees of freedom (A&S 26.7.3–4,
    finite series in cos²θ, θ = atan(t/√dof))."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    if dof % 2:  # odd: 2/π [θ + sinθ cosθ (1 + 2/3 c² + 2·4/(3·5) c⁴ + …)]
        for j in range(1, (dof - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        tail = math.sin(theta) * math.cos(theta) * total if dof > 1 else 0.0
        return 2 / math.pi * (theta + tail)
    for j in range(1, dof // 2):  # even: sinθ (1 + 1/2 c² + 1·3/(2·4) c⁴ + …)
        term *= c2 * (2 * j - 1) / (2 * j)
        total += term
    return math.sin(theta) * total


def _t_quantile(coverage: float, dof: int) -> float:
    """t with P(|T| ≤ t) = ``coverage`` (bisection; the coverage is monotone in t)."""
    lo, hi = 0.0, 1.0
    while _t_coverage(hi, dof) < coverage:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_coverage(mid, dof) < coverage else (lo, mid)
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


@functools.lru_cache(maxsize=None)
def _multiplier(n: int) -> float:
    if n < MIN_SEEDS:
        return float("nan")
    if n >= K_REF_SEEDS:
        return 1.0
    return _t_quantile(_t_coverage(K_SE, K_REF_SEEDS - 1), n - 1) / K_SE


def se_multiplier(n: int) -> float:
    """Factor on a standard error estimated from ``n`` seeds, so that ``K_SE`` of them keep
    the coverage ``K_SE`` has at ``K_REF_SEEDS`` seeds.

    ``t_{n−1}(p) / K_SE`` where p = P(|T_{K_REF_SEEDS−1}| ≤ K_SE) (99.48 %), and 1 from
    ``K_REF_SEEDS`` seeds on: non-increasing in n (at 3, 4, 5, 6, 7 seeds: 3.46, 1.84,
    1.39, 1.18, 1.07).  NaN below ``MIN_SEEDS``: no error bar.
    """
    return _multiplier(int(n))


def median_se(samples) -> tuple[float, float]:
    """Median of the finite per-seed values and its standard error, √(π/2)·s/√n.

    The standard error is coverage-matched (times :func:`se_multiplier`, > 1 below
    ``K_REF_SEEDS`` seeds), and NaN with fewer than ``MIN_SEEDS`` finite values: the
    median is still returned (a single seed's value is a measurement), but a claim built on
    it has the verdict "not enough seeds".  ``(nan, nan)`` without a finite value.
    """
    x = _finite(samples)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < MIN_SEEDS:
        return float(np.median(x)), float("nan")
    return float(np.median(x)), float(MEDIAN_SE_FACTOR * np.std(x, ddof=1) / math.sqrt(x.size)
                                      * se_multiplier(x.size))


def mean_se(samples) -> tuple[float, float]:
    """Mean of the finite per-seed values and its standard error s/√n, coverage-matched
    and NaN below ``MIN_SEEDS`` finite values as in :func:`median_se`."""
    x = _finite(samples)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < MIN_SEEDS:
        return float(np.mean(x)), float("nan")
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size)
                                    * se_multiplier(x.size))


def median_se_axis0(samples, widen: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`median_se` over axis 0 (seeds) of an array, element-wise over the rest.

    ``widen=False`` leaves out the coverage multiplier (the plain standard error, for a
    statistic such as :func:`rms_standardized_residual` whose threshold already accounts
    for the t distribution of a few seeds).
    """
    x = np.where(np.isfinite(samples), np.asarray(samples, float), np.nan)
    n = np.sum(np.isfinite(x), axis=0)
    factor = np.vectorize(se_multiplier, otypes=[float])(n) if widen else 1.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x, axis=0)
        se = MEDIAN_SE_FACTOR * np.nanstd(x, axis=0, ddof=1) / np.sqrt(n) * factor
    return np.where(n == 0, np.nan, med), np.where(n < MIN_SEEDS, np.nan, se)


def bootstrap_se(samples, statistic, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> float:
    """Bootstrap standard error over seeds (axis 0 of ``samples``) of ``statistic(samples)``.

    Resamples whose statistic is not finite are left out; NaN if fewer than half are finite,
    or with fewer than ``MIN_SEEDS`` seeds with any finite value (the coverage
    multiplier, too, counts those seeds).  Coverage-matched like :func:`median_se` (the
    bootstrap's spread from n seeds is as uncertain as s is).  The generator is seeded, so a
    claim's tolerance is reproducible.
    """
    samples = np.asarray(samples, float)
    n = samples.shape[0]
    # the error bar rests on the seeds with finite values (as median_se's), not all rows
    finite_seeds = int(np.sum(np.any(np.isfinite(samples.reshape(n, -1)), axis=1)))
    if finite_seeds < MIN_SEEDS:
        return float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(samples[rng.integers(0, n, n)]) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if values.size < resamples / 2:
        return float("nan")
    return float(np.std(values, ddof=1) * se_multiplier(finite_seeds))


def tolerance(*standard_errors: float, k: float = K_SE) -> float:
    """``k`` times the quadrature sum of independent standard errors."""
    return float(k * math.sqrt(sum(float(s) ** 2 for s in standard_errors)))


# ------------------------------------------------------------ reductions over seeds
def finite_median(x, axis=None):
    """Median over ``axis`` of the finite entries; NaN where there are none.

    Non-finite seeds (inf/NaN gradients) are recorded and plotted by the studies, and left
    out of their statistics.

    Args:
        x: array-like of values.
        axis: axis (or axes) to reduce, as in ``numpy.nanmedian``; None: all of them.

    Returns:
        The median (a NumPy scalar or array), NaN for slices without a finite value.
    """
    x = np.where(np.isfinite(x), np.asarray(x, float), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        return np.nanmedian(x, axis=axis)


def zero_crossing(x, y) -> float:
    """First ``x`` where ``y`` changes sign from negative to non-negative.

    Linear interpolation between the two grid points that bracket the first such change;
    pairs with a non-finite ``y`` are skipped.

    Args:
        x: (n,) increasing grid.
        y: (n,) values on the grid.

    Returns:
        The interpolated crossing, or NaN if ``y`` never crosses from below 0 to >= 0.
    """
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * (-y[i]) / (y[i + 1] - y[i]))
    return float("nan")


def median_zero_crossing(x, per_seed, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = 0) -> tuple[float, float]:
    """Zero crossing of the median over seeds, and its bootstrap standard error.

    Args:
        x: (n,) increasing grid.
        per_seed: (seeds, n) values on the grid, one row per seed; non-finite values are
            left out of the median (:func:`finite_median`).
        resamples: bootstrap resamples of whole seeds (rows), see :func:`bootstrap_se`.
        seed: seed of the bootstrap's generator (reproducible tolerances).

    Returns:
        ``(crossing, se)``: :func:`zero_crossing` of the median profile, and the standard
        error of that crossing over bootstrap resamples of the seeds (NaN if fewer than half
        of the resamples cross).
    """
    per_seed = np.asarray(per_seed, float)
    crossing = zero_crossing(x, finite_median(per_seed, 0))
    se = bootstrap_se(per_seed, lambda s: zero_crossing(x, finite_median(s, 0)),
                      resamples, seed)
    return crossing, se


def rms_standardized_residual(per_seed, predicted) -> float:
    """RMS over cells of (median over seeds − prediction) / standard error of the median.

    Under pure seed noise each cell's z is t-distributed, so the RMS is ≈ √((n−1)/(n−3))
    (1.7 at 4 seeds, 1.2 at 8, → 1 for many); a bias shared by every cell raises it.  The
    standard error is the plain one (not widened by :func:`se_multiplier`): the caller's
    threshold on the RMS is what accounts for few seeds, and a widened SE would let a bias
    of twice as many standard errors pass at 4 seeds.

    Args:
        per_seed: (seeds, ...) measured values; the cells are the trailing axes.
        predicted: predictions, broadcastable to ``per_seed.shape[1:]``.

    Returns:
        The RMS of z over all cells; NaN if any cell has fewer than ``MIN_SEEDS`` finite
        seeds.
    """
    med, se = median_se_axis0(per_seed, widen=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (med - predicted) / se
    return float(np.sqrt(np.mean(z**2)))


def log_mean_square_excess(log10_ratio, predicted: float) -> tuple[float, float]:
    """½ log10 of the seed mean of r², r = measured ratio / predicted ratio, and its SE.

    Mean field predicts the mean over networks of *squared* norms, not the median of the
    log: this compares the seed mean of ``10^(2(log10_ratio − predicted))`` with 1.  Seeds
    whose value is not finite are left out.  The standard error is the delta-method one,
    ½ s/(√n · mean · ln 10), coverage-matched and NaN below ``MIN_SEEDS`` finite seeds as
    in :func:`median_se`.

    Args:
        log10_ratio: (seeds,) measured log10 ratios (e.g. of ‖∂L/∂h_1‖ to ‖∂L/∂h_L‖).
        predicted: the predicted log10 ratio.

    Returns:
        ``(excess, se)`` in decades of the ratio (0 where the mean of squares matches).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 10.0 ** (2 * (np.asarray(log10_ratio) - predicted))  # in its own dtype
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    excess = 0.5 * np.log10(np.mean(r))
    se = (0.5 * np.std(r, ddof=1) / np.sqrt(r.size) / np.mean(r) / np.log(10)
          * se_multiplier(r.size)) if r.size >= MIN_SEEDS else float("nan")
    return float(excess), float(se)


# ------------------------------------------------------------ norm ratios between layers
def first_last_log10_ratio(norms, depths) -> np.ndarray:
    """log10 of the first- to last-layer norm of each network of a nested-depth sweep.

    Args:
        norms: (..., depth, layer) per-layer norms of a sweep over ``depths``, as
            ``Dataset.backprop_norm.values``: the depth-d network's layers are the first d
            entries of the layer axis.
        depths: the sweep's depths, in the order of the depth axis.

    Returns:
        (..., depth) ``log10(norms[..., j, 0] / norms[..., j, depths[j] - 1])``; inf/NaN
        where a norm is 0 or not finite (no warning).
    """
    norms = np.asarray(norms)
    depth_idx = np.arange(len(depths))
    last = np.asarray(depths) - 1  # index of layer d in a depth-d network
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(norms[..., 0] / norms[..., depth_idx, last])


def per_layer_factors(norms) -> np.ndarray:
    """Factor by which the squared norm grows from each layer to the one before it.

    Args:
        norms: (..., layer) per-layer norms (e.g. ‖∂L/∂h_l‖ per seed).

    Returns:
        (..., layer − 1) ``(norms[..., l] / norms[..., l + 1])²``: mean field's χ(q_l) for
        back-propagated gradients.
    """
    norms = np.asarray(norms)
    return (norms[..., :-1] / norms[..., 1:]) ** 2


def mean_log_factor(norms, first: int, last: int) -> np.ndarray:
    """log of the geometric-mean per-layer factor of squared norms from ``last`` to ``first``.

    ``2 log(‖x_first‖ / ‖x_last‖) / (last − first)``: the mean over layers first..last−1
    of log :func:`per_layer_factors`, read off the two end layers only.

    Args:
        norms: (seeds, layer) per-layer norms.
        first: first layer (1-based), ``first < last``.
        last: last layer (1-based).

    Returns:
        (seeds,) log factors; inf/NaN where a norm is 0 or not finite (no warning).
    """
    norms = np.asarray(norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * np.log(norms[:, first - 1] / norms[:, last - 1]) / (last - first)


def profile_residual(norms, profile) -> np.ndarray:
    """Measured norms relative to the last layer, over a predicted profile.

    Args:
        norms: (seeds, layer) per-layer norms.
        profile: (layer,) predicted norms relative to the last layer (1 there), e.g.
            ``gradstudy.theory.backprop_profile``.

    Returns:
        (seeds, layer) ``norms / norms[:, -1:] / profile``: 1 where a seed follows the
        prediction; inf/NaN where a norm is 0 or not finite (no warning).
    """
    norms = np.asarray(norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return norms / norms[:, -1:] / profile


# ---------------------------------------------------------------------- histograms
def symmetric_edges(values, quantile: float = 0.999, bins: int = 80) -> np.ndarray:
    """Equal-width bin edges on [−lim, lim], lim the ``quantile`` of ``|values|``.

    Args:
        values: array-like of values (all entries are used).
        quantile: fraction of ``|values|`` inside the range.
        bins: number of bins.

    Returns:
        (bins + 1,) increasing edges; ``edges[0] == -lim`` and ``edges[-1] == lim`` exactly.
    """
    lim = float(np.quantile(np.abs(values), quantile))
    return np.linspace(-lim, lim, bins + 1)


def clipped_histogram(values, edges) -> np.ndarray:
    """Histogram counts with values beyond the edges counted in the end bins.

    Args:
        values: array-like of values (flattened).
        edges: (bins + 1,) increasing edges, bins as in ``numpy.histogram`` (the last one
            closed).

    Returns:
        (bins,) integer counts summing to the number of values (NaN is not counted).
    """
    counts, _ = np.histogram(np.clip(np.ravel(values), edges[0], edges[-1]), edges)
    return counts


def fraction_beyond(values, limit: float) -> float:
    """Fraction of ``values`` with ``|value| > limit`` (those :func:`clipped_histogram`
    puts in its end bins for edges on [−limit, limit])."""
    return float(np.mean(np.abs(values) > limit))


def moving_average(values, window: int) -> np.ndarray:
    """Mean over each run of ``window`` consecutive values ("valid" part only: the result
    has ``len(values) − window + 1`` entries, entry i averaging values[i : i + window])."""
    window = max(1, int(window))
    return np.convolve(np.asarray(values, float), np.ones(window) / window, "valid")
