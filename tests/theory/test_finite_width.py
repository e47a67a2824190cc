"""Finite-width law of ReLU log-norm ratios: closed forms at width 1, Monte Carlo of actual
ReLU networks in NumPy (forward and backward), the first-order form as the large-n limit."""

import math

import numpy as np
import pytest
from scipy import stats

from gradstudy.theory import (
    finite_width_beta,
    relu_backward_log_norm_moments,
    relu_layer_log_ratio_moments,
    relu_log_norm_moments,
    relu_log_norm_moments_first_order,
    sample_relu_log_norm,
)

EULER_GAMMA = 0.5772156649015329


def test_width_one_closed_form():
    # k = 1 given alive: log(2 χ²_1), E = ψ(½) + 2 log 2 = −γ, Var = ψ'(½) = π²/2
    m = relu_layer_log_ratio_moments(1, 1)
    assert m.mean == pytest.approx(-EULER_GAMMA, abs=1e-12)
    assert m.var == pytest.approx(math.pi**2 / 2, rel=1e-12)
    assert m.p_dead == 0.5
    # skewness of log χ²_1: ψ''(½)/ψ'(½)^1.5 = −14 ζ(3) / (π²/2)^1.5
    assert m.skewness == pytest.approx(-14 * 1.2020569031595942 / (math.pi**2 / 2) ** 1.5,
                                       rel=1e-10)


def test_layer_law_against_a_direct_monte_carlo_of_relu_units():
    rng = np.random.default_rng(1)
    fan_in, units, draws = 5, 4, 10**6
    g = rng.standard_normal((draws, units))
    ratio = (2 / fan_in) * np.sum(np.maximum(g, 0) ** 2, axis=1)
    alive = ratio > 0
    logs = np.log(ratio[alive])
    m = relu_layer_log_ratio_moments(fan_in, units)
    assert 1 - alive.mean() == pytest.approx(m.p_dead, abs=4 * math.sqrt(m.p_dead / draws))
    assert logs.mean() == pytest.approx(m.mean, abs=4 * logs.std() / math.sqrt(logs.size))
    assert logs.var() == pytest.approx(m.var, rel=0.01)
    assert stats.skew(logs) == pytest.approx(m.skewness, abs=0.02)
    # heavy left tail (log χ²_1): the sample kurtosis at 10⁶ draws scatters by ≈ 0.1
    # (repeated seeds); 4 of that
    assert stats.kurtosis(logs) == pytest.approx(m.excess_kurtosis, abs=0.4)


def _relu_network(rng, n, depth, draws, out=3):
    """NumPy ReLU nets (He, σ_b = 0), batch 1: forward log ‖x_L‖²/‖x_0‖² and backward
    log ‖δ_1‖²/‖δ_L‖² of the loss ⟨t, W_out x_L⟩."""
    x0 = rng.standard_normal((draws, n))
    ws = [rng.standard_normal((draws, n, n)) * math.sqrt(2 / n) for _ in range(depth)]
    w_out = rng.standard_normal((draws, out, n)) * math.sqrt(2 / n)
    t = rng.standard_normal((draws, out))
    hs, a = [], x0
    for w in ws:
        h = np.einsum("dij,dj->di", w, a)
        hs.append(h)
        a = np.maximum(h, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log(np.sum(a**2, 1) / np.sum(x0**2, 1))
        delta = np.einsum("dij,di->dj", w_out, t) * (hs[-1] > 0)
        top = np.sum(delta**2, 1)
        for l in range(depth - 1, 0, -1):
            delta = np.einsum("dij,di->dj", ws[l], delta) * (hs[l - 1] > 0)
        backward = np.log(np.sum(delta**2, 1) / top)
    return forward, backward


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_network_law_against_numpy_relu_networks(direction):
    n, depth, draws = 4, 4, 200_000
    forward, backward = _relu_network(np.random.default_rng(2), n, depth, draws)
    alive = np.isfinite(forward)  # every layer alive (the backward masks are the same)
    if direction == "forward":
        logs, m = forward[alive], relu_log_norm_moments((n,) * (depth + 1))
        assert 1 - alive.mean() == pytest.approx(m.p_dead, abs=4 * math.sqrt(m.p_dead / draws))
    else:
        logs, m = backward[alive], relu_backward_log_norm_moments((n,) * depth)
    se_mean = logs.std() / math.sqrt(logs.size)
    se_var = logs.var() * math.sqrt((2 + stats.kurtosis(logs)) / logs.size)
    assert logs.mean() == pytest.approx(m.mean, abs=4 * se_mean)
    assert logs.var() == pytest.approx(m.var, abs=4 * se_var)
    assert stats.skew(logs) == pytest.approx(m.skewness, abs=4 * math.sqrt(15 / logs.size))
    # width/2 for width (a plausible bug) is far outside these error bars
    wrong = relu_log_norm_moments((n // 2,) * (depth + 1))
    assert abs(logs.var() - wrong.var) > 20 * se_var


def test_first_order_is_the_large_width_limit():
    for n in (256, 1024, 4096):
        widths = (n,) * (n // 4 + 1)  # β = 1/4
        exact = relu_log_norm_moments(widths)
        mean1, var1 = relu_log_norm_moments_first_order(widths)
        assert finite_width_beta(widths) == pytest.approx(0.25)
        assert (mean1, var1) == pytest.approx((-5 / 8, 5 / 4))
        # the corrections are O(1/n) relative
        assert abs(exact.var / var1 - 1) < 30 / n
        assert abs(exact.mean / mean1 - 1) < 30 / n
        assert abs(exact.skewness) < 1 / math.sqrt(n)


def test_first_order_mean_of_unequal_widths_and_beta():
    widths = (10, 20, 40)
    mean1, var1 = relu_log_norm_moments_first_order(widths)
    assert finite_width_beta(widths) == pytest.approx(1 / 20 + 1 / 40)
    assert mean1 == pytest.approx(math.log(4) - 2.5 * (1 / 20 + 1 / 40))
    assert var1 == pytest.approx(5 * (1 / 20 + 1 / 40))
    exact = relu_log_norm_moments((1000, 2000, 4000))
    assert exact.mean == pytest.approx(math.log(4) - 2.5 * (1 / 2000 + 1 / 4000), abs=1e-5)


def test_samples_follow_the_moments():
    m = relu_log_norm_moments((8,) * 17)
    draws = sample_relu_log_norm((8,) * 17, 400_000, seed=3)
    assert draws.mean() == pytest.approx(m.mean, abs=4 * m.std / math.sqrt(draws.size))
    assert draws.var() == pytest.approx(m.var, rel=0.02)
    assert stats.skew(draws) == pytest.approx(m.skewness, abs=0.03)
    back = sample_relu_log_norm((8,) * 17, 400_000, seed=4, backward=True)
    mb = relu_backward_log_norm_moments((8,) * 17)
    assert back.mean() == pytest.approx(mb.mean, abs=4 * mb.std / math.sqrt(back.size))


def test_invalid_widths():
    with pytest.raises(ValueError):
        relu_log_norm_moments((8,))
    with pytest.raises(ValueError):
        finite_width_beta((8, 0))
