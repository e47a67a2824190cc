"""mean_field_rate (gradstudy.theory) against the ReLU closed form and a NumPy fixed-point
iteration for tanh (Gaussian expectations by the trapezoid rule on a fine grid)."""

import numpy as np

from gradstudy.theory import mean_field_rate


def test_relu_rate_is_rho_over_sqrt_two():
    # ReLU: χ₁ = σ_w² E[1{z > 0}] = σ_w²/2 whatever q* (finite for σ_w² < 2)
    rhos = np.array([0.3, 0.8, 1.0, 1.3])
    np.testing.assert_allclose(mean_field_rate(rhos, 1.0, activation="relu"),
                               rhos / np.sqrt(2), rtol=1e-10)


def test_tanh_rate_matches_a_numpy_fixed_point():
    z = np.linspace(-12.0, 12.0, 20_001)  # E over z ~ N(0, 1); tanh' is narrow at large q
    w = np.exp(-z**2 / 2) * (z[1] - z[0]) / np.sqrt(2 * np.pi)
    rhos, sigma_b2 = np.array([0.5, 0.9, 1.0, 1.6, 4.0]), 0.7
    expected = []
    for rho in rhos:
        q = 1.0
        for _ in range(300):
            q = rho**2 * np.sum(w * np.tanh(np.sqrt(q) * z) ** 2) + sigma_b2
        expected.append(np.sqrt(rho**2 * np.sum(w / np.cosh(np.sqrt(q) * z) ** 4)))
    got = mean_field_rate(rhos, sigma_b2)
    assert got.dtype == np.float64 and got.shape == rhos.shape
    np.testing.assert_allclose(got, expected, rtol=1e-8)
