"""Tests of the network C-maps and the TAT leaky ReLU (gradstudy.theory._kernel_maps).

References are independent of the code under test: closed forms (ReLU's arc-cosine
kernel, erf's arcsine kernel, the identity), scipy quadrature of E[φ(u_a) φ(u_b)] (in
polar coordinates, for a positively homogeneous φ), NumPy iteration with scipy root
finding for the TAT slope, and, where it is installed, google-deepmind's ``dks`` package.
Float64 throughout.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize

from gradstudy import theory
from gradstudy.nn import leaky_relu_with_slope


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------ independent references
def covariance_by_quadrature(phi, q, c):
    """E[φ(u_a) φ(u_b)], u ~ N(0, q [[1, c], [c, 1]]), for a positively homogeneous φ.

    In polar coordinates z = ρ (cos θ, sin θ) of u_a = √q z1, u_b = √q (c z1 + √(1 − c²) z2),
    E[ρ²] = 2 leaves q/π ∫_0^{2π} φ(cos θ) φ(c cos θ + √(1 − c²) sin θ) dθ: one adaptive
    scipy quadrature, split where either factor changes sign."""
    r = math.sqrt(1 - c * c)
    kink = math.atan2(-c, r) % math.pi  # c cos θ + r sin θ = 0 at kink and kink + π
    points = sorted({math.pi / 2, 3 * math.pi / 2, kink, kink + math.pi})

    def integrand(theta):
        return phi(math.cos(theta)) * phi(c * math.cos(theta) + r * math.sin(theta))

    value, _ = integrate.quad(integrand, 0, 2 * math.pi, points=points, epsabs=1e-12,
                              epsrel=1e-13, limit=200)
    return q * value / math.pi


def leaky(alpha):
    return lambda x: x if x >= 0 else alpha * x


def normalised_relu_map(c):
    """Arc-cosine kernel of degree 1 (Cho & Saul 2009), normalised: (sin θ + (π − θ) cos θ)/π."""
    theta = math.acos(c)
    return (math.sin(theta) + (math.pi - theta) * c) / math.pi


def erf_correlation(c, q, sigma_w2, sigma_b2):
    """Williams (1997): E[erf(u_a) erf(u_b)] = (2/π) arcsin(2 q c / (1 + 2 q))."""
    cov = 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
    q_next = sigma_w2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sigma_b2
    return (sigma_w2 * cov + sigma_b2) / q_next, q_next


# ------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.43, 1.0, -0.5])
@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.55, 0.97])
def test_leaky_relu_correlation_map_against_quadrature(alpha, c):
    q, sigma_w2, sigma_b2 = 1.7, 1.3, 0.2
    cov = covariance_by_quadrature(leaky(alpha), q, c)
    q_next = sigma_w2 * q * (1 + alpha**2) / 2 + sigma_b2
    expected = (sigma_w2 * cov + sigma_b2) / q_next
    got = theory.leaky_relu_correlation_map(c, q, sigma_w2, sigma_b2, alpha)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-11)


def test_leaky_relu_correlation_map_at_zero_slope_is_relu():
    c = jnp.linspace(-1, 1, 41)
    np.testing.assert_allclose(theory.leaky_relu_correlation_map(c, 0.8, 2.0, 0.1, 0.0),
                               theory.relu_correlation_map(c, 0.8, 2.0, 0.1), atol=1e-14)


def test_leaky_relu_correlation_map_agrees_with_the_quadrature_map():
    c = jnp.linspace(-0.99, 0.99, 23)
    alpha = 0.3
    np.testing.assert_allclose(
        theory.leaky_relu_correlation_map(c, 1.3, 1.7, 0.1, alpha),
        theory.correlation_map(leaky_relu_with_slope(alpha), 1.3, c, 1.7, 0.1), atol=1e-10)


def test_relu_arc_cosine_kernel():
    """The normalised leaky-ReLU C-map at α = 0 is the arc-cosine kernel."""
    for c in np.linspace(-1, 1, 17):
        np.testing.assert_allclose(theory.tat_leaky_relu_c_map(c, 0.0), normalised_relu_map(c),
                                   atol=1e-14)


@pytest.mark.parametrize("q", [0.05, 1.0, 4.0])
def test_erf_correlation_map_is_the_arcsine_kernel(q):
    for c in (-0.8, 0.0, 0.4, 0.95):
        expected, _ = erf_correlation(c, q, 1.5, 0.05)
        np.testing.assert_allclose(theory.correlation_map("erf", q, c, 1.5, 0.05), expected,
                                   atol=1e-10)


def test_tat_map_is_the_normalised_leaky_relu_map_at_every_q():
    c = jnp.linspace(-1, 1, 21)
    for alpha in (0.0, 0.3, 0.9):
        s2w = theory.tat_leaky_relu_sigma_w2(alpha)
        for q in (0.1, 1.0, 7.0):
            np.testing.assert_allclose(theory.tat_leaky_relu_c_map(c, alpha),
                                       theory.leaky_relu_correlation_map(c, q, s2w, 0.0, alpha),
                                       atol=1e-13)
            # the normalisation makes q a fixed point of the Q-map
            np.testing.assert_allclose(theory.leaky_relu_length_map(q, s2w, 0.0, alpha), q)


def test_tat_map_identity_at_slope_one():
    c = jnp.linspace(-1, 1, 11)
    np.testing.assert_allclose(theory.tat_leaky_relu_network_c_map(c, 1.0, 30), c, atol=1e-14)


# ---------------------------------------------------------------- composition
def test_composed_map_of_erf_against_the_iterated_closed_form():
    sigma_w2, sigma_b2, n = 2.0, 0.1, 12
    cs, qs = theory.composed_correlation_map("erf", jnp.asarray([0.0, 0.6]), 0.7, sigma_w2,
                                             sigma_b2, n)
    assert cs.shape == qs.shape == (n + 1, 2)
    for j, c in enumerate((0.0, 0.6)):
        q = 0.7
        for layer in range(1, n + 1):
            c, q = erf_correlation(c, q, sigma_w2, sigma_b2)
            np.testing.assert_allclose(cs[layer, j], c, atol=1e-9)
            np.testing.assert_allclose(qs[layer, j], q, rtol=1e-9)


def test_composed_map_of_relu_against_the_iterated_arc_cosine_kernel():
    n = 20
    cs, qs = theory.composed_correlation_map("relu", 0.0, 1.0, 2.0, 0.0, n)
    c = 0.0
    for layer in range(1, n + 1):
        c = normalised_relu_map(c)
        np.testing.assert_allclose(cs[layer], c, atol=1e-9)
    np.testing.assert_allclose(qs, 1.0, rtol=1e-10)  # He: q is a fixed point
    trajectory = theory.tat_leaky_relu_c_map_trajectory(0.0, 0.0, n)
    np.testing.assert_allclose(trajectory, cs, atol=1e-9)


def test_composed_map_of_the_identity_is_the_identity():
    """A linear network with σ_b² = 0 keeps every correlation (and σ_w² = 1 every q)."""
    c = jnp.asarray([-0.5, 0.0, 0.3])
    cs, qs = theory.composed_correlation_map("linear", c, 2.0, 1.0, 0.0, 7)
    np.testing.assert_allclose(cs, jnp.broadcast_to(c, cs.shape), atol=1e-12)
    np.testing.assert_allclose(qs, 2.0, rtol=1e-12)


def test_trajectory_last_entry_is_the_network_map():
    c = jnp.linspace(-1, 1, 9)
    np.testing.assert_allclose(theory.tat_leaky_relu_c_map_trajectory(c, 0.37, 15)[-1],
                               theory.tat_leaky_relu_network_c_map(c, 0.37, 15), atol=1e-15)


# ----------------------------------------------------------------- TAT slope
def _numpy_network_c0(alpha, n):
    c = 0.0
    k = (1 - alpha) ** 2 / (math.pi * (1 + alpha**2))
    for _ in range(n):
        c = c + k * (math.sqrt(1 - c * c) - c * math.acos(c))
    return c


@pytest.mark.parametrize("n_layers,eta", [(49, 0.9), (99, 0.9), (30, 0.7), (64, 0.95)])
def test_tat_slope_against_brentq(n_layers, eta):
    expected = optimize.brentq(lambda a: _numpy_network_c0(a, n_layers) - eta, 0.0, 1.0,
                               xtol=1e-15)
    alpha = float(theory.tat_leaky_relu_slope(n_layers, eta))
    assert alpha == pytest.approx(expected, abs=1e-12)
    assert float(theory.tat_leaky_relu_network_c_map(0.0, alpha, n_layers)) == pytest.approx(
        eta, abs=1e-12)


def test_tat_slope_nan_where_unreachable():
    # one ReLU layer maps 0 to 1/π < 0.9: no slope in [0, 1] reaches η = 0.9
    assert math.isnan(float(theory.tat_leaky_relu_slope(1, 0.9)))
    assert math.isnan(float(theory.tat_leaky_relu_slope(10, 0.0)))
    assert 0 < float(theory.tat_leaky_relu_slope(1, 0.2)) < 1


def test_tat_slope_against_dks():
    """google-deepmind's dks package (TAT for leaky ReLU, subnetwork = the whole chain)."""
    pytest.importorskip("dks")
    from dks.base import activation_transform

    for n_layers in (49, 99):
        def subnet_max(c, local_c_map, n=n_layers):
            for _ in range(n):
                c = local_c_map(c)
            return c

        params = activation_transform._get_activations_params(
            ["leaky_relu"], method="TAT", tat_params={"c_val_0_target": 0.9},
            subnet_max_func=subnet_max)["leaky_relu"]
        alpha = float(theory.tat_leaky_relu_slope(n_layers, 0.9))
        assert alpha == pytest.approx(params["negative_slope"], abs=1e-6)  # dks: tol 1e-8 on C
        assert float(theory.tat_leaky_relu_sigma_w2(alpha)) == pytest.approx(
            params["output_scale"] ** 2, rel=1e-5)
        c = np.linspace(-0.99, 0.99, 11)
        np.testing.assert_allclose(theory.tat_leaky_relu_c_map(c, alpha),
                                   activation_transform._leaky_relu_cmap(c, alpha), atol=1e-12)
