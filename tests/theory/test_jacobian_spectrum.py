"""Free-probability moments and densities of the input–output Jacobian's spectrum, against
closed forms (Marchenko–Pastur, Fuss–Catalan, ReLU's and hard tanh's two-point φ'²), scipy
quadrature, and each other (the density's moments against the S-transform moments)."""

from math import comb

import numpy as np
import pytest
from scipy import integrate, special

from gradstudy import theory
from gradstudy.errors import ConfigError


def _quad(f):
    return integrate.quad(lambda z: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                          -12, 12, limit=200, points=[0.0])[0]


@pytest.mark.parametrize("q", [0.05, 0.5, 2.0])
def test_derivative_moments_against_closed_forms_and_scipy(q):
    assert theory.derivative_moments("relu", q) == pytest.approx((0.5, 0.5), abs=1e-12)
    assert theory.derivative_moments("linear", q) == pytest.approx((1.0, 1.0), abs=1e-12)
    p = special.erf(1 / np.sqrt(2 * q))  # P(|√q z| < 1): φ'² = φ'⁴ = 1 there, 0 outside
    assert theory.derivative_moments("hard_tanh", q) == pytest.approx((p, p), rel=1e-10)
    sech2 = lambda z: 1 / np.cosh(np.sqrt(q) * z) ** 2  # noqa: E731
    expected = (_quad(lambda z: sech2(z) ** 2), _quad(lambda z: sech2(z) ** 4))
    assert theory.derivative_moments("tanh", q) == pytest.approx(expected, rel=1e-9)


def test_moments_of_relu_and_linear_networks():
    """ReLU: μ_2/μ_1² − 1 = 1, so the normalised variance per layer is 2 (Gaussian) and 1
    (orthogonal: ReLU cannot reach isometry); linear: 1 and 0 (exact isometry)."""
    for act, sw2, slopes in [("relu", 2.0, (2.0, 1.0)), ("linear", 1.0, (1.0, 0.0))]:
        for weights, slope in zip(("gaussian", "orthogonal"), slopes):
            m = theory.jacobian_spectrum_moments(act, sw2, 0.0, 16, weights, q=1.0)
            assert m.chi1 == pytest.approx(1.0) and m.mean == pytest.approx(1.0)
            assert m.layer_slope == pytest.approx(slope, abs=1e-12)
            assert m.normalized_variance == pytest.approx(16 * slope, abs=1e-10)
    # σ_w instead of σ_w² (He: σ_w = √2) leaves criticality: mean (√2/2)^L, not 1
    off = theory.jacobian_spectrum_moments("relu", np.sqrt(2.0), 0.0, 16, q=1.0)
    assert off.mean == pytest.approx(2.0 ** -8, rel=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "hard_tanh"])
def test_isometry_as_q_star_falls(activation):
    """On the critical line, μ_2/μ_1² − 1 → 0 as σ_b² (so q*) → 0: orthogonal tanh and hard
    tanh approach isometry; the variance per layer falls monotonically with σ_b²."""
    slopes = []
    for sb2 in (1e-4, 1e-2, 1e-1):
        sw2 = float(theory.critical_sigma_w2(activation, sb2, dtype="float64"))
        m = theory.jacobian_spectrum_moments(activation, sw2, sb2, 1, "orthogonal")
        assert m.chi1 == pytest.approx(1.0, abs=1e-9)
        assert m.q_star == pytest.approx(
            float(theory.fixed_point_q(activation, sw2, sb2, dtype="float64")))
        slopes.append(m.layer_slope)
    assert slopes[0] < 0.02 and np.all(np.diff(slopes) > 0)
    gaussian = theory.jacobian_spectrum_moments(activation, sw2, 0.1, 1, "gaussian")
    assert gaussian.layer_slope == pytest.approx(slopes[-1] + 1.0, abs=1e-12)


def test_marchenko_pastur_density_at_depth_one():
    s = theory.bernoulli_jacobian_density(1.0, 1.0, 1, "gaussian", n_points=400)
    expected = np.sqrt(s.x * (4 - s.x)) / (2 * np.pi * s.x)
    np.testing.assert_allclose(s.density, expected, rtol=1e-6, atol=1e-9)
    assert s.atom_at_zero == 0.0


@pytest.mark.parametrize("depth", [2, 8, 32])
def test_linear_gaussian_density_has_fuss_catalan_moments(depth):
    """Products of L square Gaussian matrices: m_k = C((L+1)k, k)/(Lk + 1)."""
    s = theory.bernoulli_jacobian_density(1.0, 1.0, depth, "gaussian", n_points=4000)
    for k in (1, 2, 3):
        fuss_catalan = comb((depth + 1) * k, k) / (depth * k + 1)
        assert theory.density_moment(s, k) == pytest.approx(fuss_catalan, rel=1e-5)


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("p,depth", [(0.5, 4), (0.5, 16), (0.8, 8), (0.3, 3)])
def test_two_point_density_against_the_moment_formula(weights, p, depth):
    """The density (solved from the S-transform's inverse) has mean 1 and the variance the
    moment formula gives (its first S-transform coefficients): two routes, one answer."""
    s = theory.bernoulli_jacobian_density(p, 1.0, depth, weights, n_points=4000)
    slope = 1 / p - 1 + theory.WEIGHT_VARIANCE[weights]  # μ_2/μ_1² − 1 = 1/p − 1
    assert s.atom_at_zero == pytest.approx(1 - p)
    assert theory.density_moment(s, 1) == pytest.approx(1.0, rel=1e-5)
    assert theory.density_moment(s, 2) - 1 == pytest.approx(depth * slope, rel=1e-5)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ConfigError, match="weights: unknown value 'unitary'"):
        theory.jacobian_spectrum_moments("tanh", 1.0, 0.0, 4, "unitary")
    with pytest.raises(ConfigError, match="depth: must be an integer >= 1"):
        theory.jacobian_spectrum_moments("tanh", 1.0, 0.0, 0)
    with pytest.raises(ConfigError, match="p: must be in"):
        theory.bernoulli_jacobian_density(0.0, 1.0, 4)
    with pytest.raises(ConfigError, match="q: φ' vanishes"):
        theory.jacobian_spectrum_moments("relu", 2.0, 0.0, 4, q=0.0)
