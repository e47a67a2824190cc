"""per_step_rate and pascanu_bound_ratio (gradstudy.families.rnn) against closed forms and an
element-by-element Python loop."""

import numpy as np
import pytest
import xarray as xr

from gradstudy.families.rnn import pascanu_bound_ratio, per_step_rate


def test_per_step_rate_of_a_geometric_profile_is_its_ratio():
    rho = np.array([[0.5, 0.9], [1.0, 2.5]])  # (point, seed)
    T = 12
    jac = rho[..., None] ** np.arange(T + 1)  # ‖∂s_T/∂s_t‖₂ = ρ^k: a linear RNN, W = ρQ
    np.testing.assert_allclose(per_step_rate(jac), rho, rtol=1e-14)
    np.testing.assert_allclose(pascanu_bound_ratio(jac, rho), np.ones_like(jac), rtol=1e-14)
    # a profile at c times the bound has ratio c at every lag
    np.testing.assert_allclose(pascanu_bound_ratio(0.25 * jac, rho), 0.25, rtol=1e-14)


def test_rates_match_a_loop_and_accept_a_dataarray():
    rng = np.random.default_rng(0)
    jac = rng.uniform(0.1, 3.0, (3, 4, 9))
    lam = rng.uniform(0.5, 2.0, (3, 4))
    T = jac.shape[-1] - 1
    rate, ratio = per_step_rate(jac), pascanu_bound_ratio(jac, lam)
    for i in range(3):
        for j in range(4):
            assert rate[i, j] == pytest.approx(jac[i, j, -1] ** (1 / T), rel=1e-14)
            for k in range(T + 1):
                assert ratio[i, j, k] == pytest.approx(jac[i, j, k] / lam[i, j] ** k, rel=1e-14)
    dims = ("point", "seed", "lag")
    np.testing.assert_array_equal(per_step_rate(xr.DataArray(jac, dims=dims)), rate)
    np.testing.assert_array_equal(
        pascanu_bound_ratio(xr.DataArray(jac, dims=dims), xr.DataArray(lam, dims=dims[:2])),
        ratio)
