"""Mean-field predictions for concrete specs (the 'expected' side of every claim) against
closed forms, scipy quadrature and random-matrix theory."""

import math

import numpy as np
import pytest
from scipy import integrate

from gradstudy import MLPSpec
from gradstudy.predictions import (
    backprop_factors,
    backprop_profile,
    jacobian_mean_singular_value,
    log10_backprop_ratio,
    preactivation_q,
    weight_grad_profile,
)


def _gauss(f):
    """E_z[f(z)], z ~ N(0, 1), by adaptive quadrature (independent of Gauss–Hermite)."""
    val, _ = integrate.quad(lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                            -30, 30, limit=200)
    return val


def test_relu_closed_forms():
    depth, s2 = 12, 3.0
    spec = MLPSpec(width=64, depth=depth, activation="relu", sigma_w=math.sqrt(s2))
    q = preactivation_q(spec, 1.0)
    np.testing.assert_allclose(q, s2 * (s2 / 2) ** np.arange(depth), rtol=1e-12)
    np.testing.assert_allclose(backprop_profile(spec, 1.0),
                               (s2 / 2) ** ((depth - 1 - np.arange(depth)) / 2), rtol=1e-12)
    he = MLPSpec(width=64, depth=depth, activation="relu", init="he_normal")
    np.testing.assert_allclose(backprop_profile(he, 1.0), 1.0, rtol=1e-12)
    # a_1 = x (E = 1), a_l = relu(h_{l-1}) with E = q/2 = 1: flat weight gradients
    np.testing.assert_allclose(weight_grad_profile(he, 1.0), 1.0, rtol=1e-12)


def test_linear_closed_form_with_bias():
    s2, b2, depth = 0.7, 0.2, 6
    spec = MLPSpec(width=32, depth=depth, activation="linear", sigma_w=math.sqrt(s2),
                   sigma_b=math.sqrt(b2))
    ref = [s2 * 2.0 + b2]  # input variance 2
    for _ in range(depth - 1):
        ref.append(s2 * ref[-1] + b2)
    np.testing.assert_allclose(preactivation_q(spec, 2.0), ref, rtol=1e-12)
    np.testing.assert_allclose(backprop_factors(spec, np.asarray(ref)), s2, rtol=1e-12)


@pytest.mark.parametrize("activation,dphi", [
    ("tanh", lambda h: 1 / math.cosh(h) ** 2),
    ("sigmoid", lambda h: math.exp(-h) / (1 + math.exp(-h)) ** 2),
])
def test_smooth_activation_trajectory_vs_scipy(activation, dphi):
    phi = {"tanh": math.tanh, "sigmoid": lambda h: 1 / (1 + math.exp(-h))}[activation]
    s2, b2, depth = 1.7, 0.05, 5
    spec = MLPSpec(width=32, depth=depth, activation=activation, sigma_w=math.sqrt(s2),
                   sigma_b=math.sqrt(b2))
    q_ref = [s2 * 1.0 + b2]
    for _ in range(depth - 1):
        q = q_ref[-1]
        q_ref.append(s2 * _gauss(lambda z: phi(math.sqrt(q) * z) ** 2) + b2)
    np.testing.assert_allclose(preactivation_q(spec, 1.0), q_ref, rtol=1e-9)
    chi_ref = [s2 * _gauss(lambda z: dphi(math.sqrt(q) * z) ** 2) for q in q_ref]
    np.testing.assert_allclose(backprop_factors(spec, np.asarray(q_ref)), chi_ref, rtol=1e-9)
    prof = backprop_profile(spec, 1.0)
    np.testing.assert_allclose(prof[0] ** 2, np.prod(chi_ref[:-1]), rtol=1e-9)


def test_grid_ratio_matches_per_spec_profile():
    s2w, depths = np.array([0.6, 1.0, 2.5]), [2, 5, 9]
    grid = log10_backprop_ratio(MLPSpec(width=16, activation="tanh"), depths, s2w, 0.05)
    for i, s2 in enumerate(s2w):
        spec = MLPSpec(width=16, depth=9, activation="tanh", sigma_w=math.sqrt(s2),
                       sigma_b=math.sqrt(0.05))
        expected = [np.log10(backprop_profile(spec, 1.0, d)[0]) for d in depths]
        np.testing.assert_allclose(grid[i], expected, rtol=1e-10, atol=1e-12)


def test_jacobian_mean_singular_value_quarter_circle():
    # linear activation, square Gaussian W with variance 1/n: singular values follow the
    # quarter-circle law, mean 8/(3π) (Marchenko–Pastur with ratio 1)
    spec = MLPSpec(width=300, depth=3, activation="linear")
    assert jacobian_mean_singular_value(spec, n_samples=4) == pytest.approx(8 / (3 * math.pi),
                                                                            rel=0.02)
