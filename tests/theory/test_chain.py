"""Tests of gradstudy.theory: reverse-mode ∂x_D/∂x_0 through D equal factors.

References: exact rational arithmetic (``fractions.Fraction``) for factor**D, and the IEEE 754
limits of float32/float64 worked out by hand (smallest normal 2^-126 / 2^-1022, smallest
subnormal 2^-149 / 2^-1074, largest finite (2 - 2^-23)·2^127 / (2 - 2^-52)·2^1023).
"""

import functools
import math
from fractions import Fraction

import numpy as np
import pytest

from gradstudy.theory import (
    chain_closed_form,
    chain_gradients,
    first_nonfinite_or_zero,
    predicted_breakdown_depth,
)

FACTORS = [0.5, 0.9, 1.0, 1.1, 2.0, 3.0]


def exact_power(factor, dtype, depth):
    """factor rounded to ``dtype``, raised to ``depth`` exactly (a Fraction)."""
    return Fraction(float(np.asarray(factor, dtype))) ** depth


@functools.lru_cache(maxsize=None)
def _chain(dtype):
    depths = np.arange(1, 1101)
    return dtype, depths, chain_gradients(FACTORS, depths, dtype)


@pytest.fixture(scope="module", params=["float32", "float64"])
def chain(request):
    return _chain(request.param)


def test_chain_gradients_match_exact_power(chain):
    """Where finite and non-zero: |measured/exact - 1| ≤ D·eps (D roundings of a product)."""
    dtype, depths, measured = chain
    assert measured.shape == (len(FACTORS), len(depths)) and measured.dtype == dtype
    eps = np.finfo(dtype).eps
    info = np.finfo(dtype)
    checked = 0
    for i, a in enumerate(FACTORS):
        for j in range(0, len(depths), 7):  # every 7th depth: exact Fractions are slow-ish
            d = int(depths[j])
            exact = exact_power(a, dtype, d)
            if not (info.tiny <= exact <= Fraction(float(info.max))):
                continue  # outside the normal range: see the breakdown tests
            m = Fraction(float(measured[i, j]))
            assert abs(m / exact - 1) <= d * eps, (a, d)
            checked += 1
    assert checked > 300
    # powers of two and 1 are exact in binary floating point
    for a in (0.5, 1.0, 2.0):
        i = FACTORS.index(a)
        ok = np.isfinite(measured[i]) & (measured[i] != 0)
        np.testing.assert_array_equal(measured[i][ok], float(a) ** depths[ok].astype(float))
    assert np.all(measured[FACTORS.index(1.0)] == 1.0)


def test_closed_form_is_exact_power():
    depths = np.array([1, 5, 40, 200])
    for dtype in ("float32", "float64"):
        cf = chain_closed_form(FACTORS, depths, dtype)
        for i, a in enumerate(FACTORS):
            for j, d in enumerate(depths):
                exact = exact_power(a, dtype, int(d))
                rel = abs(Fraction(float(cf[i, j])) / exact - 1)
                # longdouble is at least float64; float() rounds once more
                assert rel <= Fraction(4 * int(d) + 1) * Fraction(2.0**-52), (dtype, a, d)


def test_closed_form_rel_error_bound_D_eps():
    """chain_gradients vs chain_closed_form to rtol D·eps where both are in range."""
    depths = np.arange(1, 121)
    factors = [0.7, 0.9, 1.1, 1.3]
    for dtype in ("float32", "float64"):
        measured = chain_gradients(factors, depths, dtype)
        cf = chain_closed_form(factors, depths, dtype).astype(float)
        eps = np.finfo(dtype).eps
        ok = (cf > np.finfo(dtype).tiny) & (cf < np.finfo(dtype).max)
        rel = np.abs(measured / np.where(ok, cf, 1.0) - 1)
        assert np.all(rel[ok] <= depths[None, :].repeat(len(factors), 0)[ok] * eps)
        assert ok.sum() > 300


def test_predicted_breakdown_depth_by_hand():
    # float32, factor 0.5: 0.5^D < 2^-126 first at D = 127; ≤ 2^-149 / 2 (a tie that
    # rounds to even, 0) first at D = 150
    assert predicted_breakdown_depth(0.5, "float32") == (127.0, 150.0)
    # float32, factor 2: 2^128 > (2 - 2^-23)·2^127 first at D = 128
    assert predicted_breakdown_depth(2.0, "float32") == (128.0, 128.0)
    # float64: 2^1024 > max; 0.5^1023 < 2^-1022; 0.5^1075 ≤ 2^-1074 / 2
    assert predicted_breakdown_depth(2.0, "float64") == (1024.0, 1024.0)
    assert predicted_breakdown_depth(0.5, "float64") == (1023.0, 1075.0)
    # float32, factor 3: 3^80 = 1.48e38 < 3.40e38 < 3^81 = 4.43e38
    assert predicted_breakdown_depth(3.0, "float32") == (81.0, 81.0)
    lo, hi = predicted_breakdown_depth(1.0)
    assert math.isnan(lo) and math.isnan(hi)


def _numpy_chain_breakdown(factor, dtype, max_depth):
    """First D where an IEEE (gradual-underflow) NumPy product chain hits 0 or inf."""
    x, a = np.ones((), dtype), np.asarray(factor, dtype)
    with np.errstate(over="ignore", under="ignore"):
        for d in range(1, max_depth + 1):
            x = x * a
            if x == 0 or not np.isfinite(x):
                return d
    return None


@pytest.mark.parametrize("dtype,factor", [("float32", 0.5), ("float32", 0.1), ("float32", 2.0),
                                          ("float32", 3.0), ("float64", 0.5), ("float64", 2.0)])
def test_ieee_reference_chain_within_prediction(dtype, factor):
    """A plain NumPy chain (gradual underflow, round to nearest) breaks down in the range."""
    lo, hi = predicted_breakdown_depth(factor, dtype)
    got = _numpy_chain_breakdown(factor, dtype, 2000)
    assert lo <= got <= hi, (got, lo, hi)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradual_underflow_stalls_for_factor_above_half(dtype):
    """For 1/2 < a < 1, round-to-nearest maps k·s (s the smallest subnormal) to itself once
    k·(1 − a) < 1/2: an IEEE chain stalls at a tiny subnormal and never reaches 0, so the
    prediction's upper end is inf."""
    lo, hi = predicted_breakdown_depth(0.9, dtype)
    assert hi == float("inf")
    # flush-to-zero end: first D with 0.9^D below the smallest normal
    d = math.floor(math.log(float(np.finfo(dtype).tiny)) / math.log(0.9)) + 1
    assert abs(lo - d) <= 1  # 0.9 rounded to float32 differs from 0.9 in the 8th digit
    assert _numpy_chain_breakdown(0.9, dtype, 12000) is None
    x, a = np.ones((), dtype), np.asarray(0.9, dtype)
    with np.errstate(under="ignore"):
        for _ in range(12000):
            x = x * a
    s = np.finfo(dtype).smallest_subnormal
    assert 0 < x <= s * math.ceil(0.5 / (1 - 0.9)) and x * a == x  # a fixed point


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_float32_breakdown_within_prediction(factor):
    dtype, depths, measured = _chain("float32")
    i = FACTORS.index(factor)
    got = first_nonfinite_or_zero(measured[i:i + 1], depths)[0]
    lo, hi = predicted_breakdown_depth(factor, "float32")
    assert lo <= got <= hi
    if factor > 1:
        assert got == 128 and np.isinf(measured[i, 127]) and measured[i, 126] == 2.0**127
    else:
        assert measured[i, int(got) - 1] == 0.0 and measured[i, int(got) - 2] > 0


def test_float64_factor_two_overflows_at_1024():
    dtype, depths, measured = _chain("float64")
    i = FACTORS.index(2.0)
    assert first_nonfinite_or_zero(measured[i:i + 1], depths)[0] == 1024
    assert measured[i, 1022] == 2.0**1023 and np.isinf(measured[i, 1023])
    # and 0.5 flushes to zero within [1023, 1075]
    j = FACTORS.index(0.5)
    got = first_nonfinite_or_zero(measured[j:j + 1], depths)[0]
    assert 1023 <= got <= 1075


def test_first_nonfinite_or_zero():
    depths = np.array([1, 2, 3, 4])
    values = np.array([[1.0, 0.5, 0.0, 0.0],
                       [2.0, np.inf, np.nan, 1.0],
                       [1.0, 1.0, 1.0, 1.0],
                       [np.nan, 1.0, 1.0, 1.0]])
    out = first_nonfinite_or_zero(values, depths)
    np.testing.assert_array_equal(out[[0, 1, 3]], [3.0, 2.0, 1.0])
    assert np.isnan(out[2])
