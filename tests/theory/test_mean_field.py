"""Tests of gradstudy.theory against independent references.

References are closed forms, exact Gaussian moments, or adaptive scipy quadrature
(``scipy.integrate.quad``) with scipy root finding; the module under test is never used
to produce its own reference values. Everything runs in float64 (``jax.enable_x64``
context per test) except the explicit float32/dtype tests.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import integrate, optimize

from gradstudy import theory
from gradstudy.errors import ConfigError
from gradstudy.nn import _activations as activations

SQRT_2PI = math.sqrt(2.0 * math.pi)
LEAKY = functools.partial(jax.nn.leaky_relu, negative_slope=0.2)


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------ independent references
def expect(f):
    """E_{z ~ N(0,1)}[f(z)] by adaptive quadrature."""

    def integrand(z):
        return f(z) * math.exp(-0.5 * z * z) / SQRT_2PI

    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=0.0, epsrel=1e-12, limit=200)
    return value


def sech(x):
    e = math.exp(-abs(x))
    return 2.0 * e / (1.0 + e * e)


def tanh_length(q, sw2, sb2):
    return sw2 * expect(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + sb2


def tanh_chi1(q, sw2):
    return sw2 * expect(lambda z: sech(math.sqrt(q) * z) ** 4)


def tanh_q_star(sw2, sb2):
    """Largest root of q = L(q) (the attracting one for q_init = 1)."""
    return optimize.brentq(
        lambda q: tanh_length(q, sw2, sb2) - q, 1e-6, sw2 + sb2, xtol=1e-14, rtol=1e-14
    )


def tanh_critical(sb2):
    return optimize.brentq(
        lambda s: tanh_chi1(tanh_q_star(s, sb2), s) - 1.0,
        1.0,
        3.0,
        xtol=1e-13,
        rtol=1e-13,
    )


# ------------------------------------------------------------------------ quadrature
def test_gauss_hermite_moments_exact_up_to_degree():
    n = 20
    z, w = (np.asarray(a) for a in theory.gauss_hermite(n))
    assert z.shape == w.shape == (n,)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    for k in range(n):  # z^(2k) has degree 2k <= 2n - 1: exact
        double_factorial = math.prod(range(1, 2 * k, 2))
        assert np.sum(w * z ** (2 * k)) == pytest.approx(double_factorial, rel=1e-11)
        assert abs(np.sum(w * z ** (2 * k + 1))) < 1e-10 * max(1, double_factorial)
    # ... and no further: for z^(2n) the n-node rule's remainder is n! (2n)!/(2n)! = n!.
    deficit = math.prod(range(1, 2 * n, 2)) - np.sum(w * z ** (2 * n))
    assert deficit == pytest.approx(math.factorial(n), rel=1e-6)


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0, 4.0])
def test_gauss_hermite_characteristic_function(a):
    z, w = theory.gauss_hermite(64)
    assert float(jnp.sum(w * jnp.cos(a * z))) == pytest.approx(math.exp(-a * a / 2), abs=1e-14)


def test_gauss_hermite_rejects_bad_degree():
    # (numpy's hermegauss overflows above ~350 nodes; that check is not run here because
    # hermegauss(400) alone takes ~2 s.)
    with pytest.raises(ValueError):
        theory.gauss_hermite(0)


def test_gaussian_expectation_broadcasts_over_q():
    q = jnp.array([[0.1, 1.0], [2.0, 4.0]])
    got = theory.gaussian_expectation(jnp.cos, q)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, np.exp(-np.asarray(q) / 2), rtol=1e-13)
    np.testing.assert_allclose(
        theory.gaussian_expectation(lambda h: h**4, q),
        3 * np.asarray(q) ** 2,
        rtol=1e-13,
    )


# ------------------------------------------------------------------------ length map
PARAMS = [(0.3, 0.7, 0.0), (1.0, 1.5, 0.05), (2.5, 2.0, 0.3)]


@pytest.mark.parametrize(("q", "sw2", "sb2"), PARAMS)
def test_length_map_linear_relu_leaky_closed_forms(q, sw2, sb2):
    # Quadrature vs hand-written closed forms. ReLU² and leaky-ReLU² are x² on each
    # half-line and the Gauss–Hermite nodes are symmetric with none at 0 (even
    # degree), so these are exact up to rounding.
    linear = theory.length_map(lambda h: h, q, sw2, sb2)
    assert float(linear) == pytest.approx(sw2 * q + sb2, rel=1e-13)
    relu = theory.length_map(jax.nn.relu, q, sw2, sb2)
    assert float(relu) == pytest.approx(sw2 * q / 2 + sb2, rel=1e-13)
    leaky = theory.length_map(LEAKY, q, sw2, sb2)
    assert float(leaky) == pytest.approx(sw2 * q * 1.04 / 2 + sb2, rel=1e-13)
    # Module closed forms vs adaptive quadrature.
    assert theory.linear_length_map(q, sw2, sb2) == pytest.approx(
        sw2 * expect(lambda z: q * z * z) + sb2, rel=1e-10
    )
    assert theory.relu_length_map(q, sw2, sb2) == pytest.approx(
        sw2 * expect(lambda z: max(math.sqrt(q) * z, 0.0) ** 2) + sb2, rel=1e-10
    )
    leaky_ref = expect(lambda z: (math.sqrt(q) * z * (1.0 if z > 0 else 0.2)) ** 2)
    assert theory.leaky_relu_length_map(q, sw2, sb2, 0.2) == pytest.approx(
        sw2 * leaky_ref + sb2, rel=1e-10
    )


@pytest.mark.parametrize(("q", "sw2", "sb2"), [(0.1, 1.0, 0.0), (0.5, 1.5, 0.05), (1.0, 2.0, 0.3)])
def test_tanh_length_map_vs_scipy(q, sw2, sb2):
    got = theory.length_map(jnp.tanh, q, sw2, sb2)
    assert float(got) == pytest.approx(tanh_length(q, sw2, sb2), rel=1e-8)


def test_q_trajectory_and_backprop_factors():
    n = 4
    qs = theory.q_trajectory(jnp.tanh, 1.0, 1.5, 0.05, n)
    ref = [1.0]
    for _ in range(n):
        ref.append(tanh_length(ref[-1], 1.5, 0.05))
    np.testing.assert_allclose(qs, ref, rtol=1e-8)
    factors = theory.backprop_factor_trajectory(jnp.tanh, 1.0, 1.5, 0.05, n)
    # chi1 at q = 1 has a 2e-7 quadrature error at degree 64 (module docstring).
    np.testing.assert_allclose(factors, [tanh_chi1(q, 1.5) for q in ref], rtol=1e-6)


# ------------------------------------------------------------------------------ chi1
@pytest.mark.parametrize("q", [0.2, 1.0, 3.0])
def test_chi1_closed_forms(q):
    # φ' is piecewise constant: exact by node symmetry (even degree), see above.
    assert float(theory.chi1(lambda h: h, q, 1.7)) == pytest.approx(1.7, rel=1e-13)
    assert float(theory.chi1(jax.nn.relu, q, 1.7)) == pytest.approx(0.85, rel=1e-13)
    assert float(theory.chi1(LEAKY, q, 1.7)) == pytest.approx(1.7 * 1.04 / 2, rel=1e-13)
    assert theory.linear_chi1(1.7) == pytest.approx(1.7 * expect(lambda z: 1.0), rel=1e-10)
    relu_ref = expect(lambda z: 1.0 if z > 0 else 0.0)
    assert theory.relu_chi1(1.7) == pytest.approx(1.7 * relu_ref, rel=1e-10)
    leaky_ref = expect(lambda z: 1.0 if z > 0 else 0.04)
    assert theory.leaky_relu_chi1(1.7, 0.2) == pytest.approx(1.7 * leaky_ref, rel=1e-10)


@pytest.mark.parametrize(("q", "rel"), [(0.1, 1e-8), (0.5, 1e-8), (1.0, 1e-6)])
def test_tanh_chi1_vs_scipy(q, rel):
    # rel: measured errors of degree 64 are 5e-11 (q = 0.5) and 2e-7 (q = 1).
    assert float(theory.chi1(jnp.tanh, q, 1.3)) == pytest.approx(tanh_chi1(q, 1.3), rel=rel)


# -------------------------------------------------------------- fixed points, phases
@pytest.mark.parametrize("sw2", [0.5, 0.9])
def test_tanh_zero_bias_ordered_fixed_point_is_zero(sw2):
    assert float(theory.fixed_point_q(jnp.tanh, sw2, 0.0)) < 1e-12


def test_tanh_zero_bias_chaotic_fixed_point():
    q_star = theory.fixed_point_q(jnp.tanh, 1.5, 0.0)
    assert float(q_star) == pytest.approx(tanh_q_star(1.5, 0.0), rel=1e-9)
    assert float(q_star) > 0.1


def test_critical_sigma_w2_tanh_zero_bias():
    crit = theory.critical_sigma_w2(jnp.tanh, 0.0)
    assert float(crit) == pytest.approx(1.0, abs=1e-3)


def test_critical_sigma_w2_tanh_bias_vs_brentq():
    crit = theory.critical_sigma_w2(jnp.tanh, 0.05)
    ref = tanh_critical(0.05)
    assert float(crit) == pytest.approx(ref, rel=1e-7)
    # χ₁ at the module's own fixed point, compared with the definition of criticality.
    q_star = float(theory.fixed_point_q(jnp.tanh, float(crit), 0.05))
    assert float(theory.chi1(jnp.tanh, q_star, float(crit))) == pytest.approx(1.0, abs=1e-9)
    # Implicit derivative d σ_w²* / d σ_b² vs a central difference of the reference.
    h = 1e-4
    fd = (tanh_critical(0.05 + h) - tanh_critical(0.05 - h)) / (2 * h)
    grad = jax.grad(lambda b: theory.critical_sigma_w2(jnp.tanh, b))(0.05)
    assert float(grad) == pytest.approx(fd, rel=1e-5)


# --------------------------------------------------------------- correlations, depth
@pytest.mark.parametrize("q", [0.3, 1.0])
def test_chi_c_at_c_equal_one_is_chi1_and_at_zero_factorises(q):
    assert float(theory.chi_c(jnp.tanh, q, 1.0, 1.7)) == pytest.approx(tanh_chi1(q, 1.7), rel=1e-6)
    # (the 2-D rule uses coarser panels than the 1-D one: they agree to ~1e-13, not 1e-15)
    np.testing.assert_allclose(
        theory.chi_c(jnp.tanh, q, 1.0, 1.7), theory.chi1(jnp.tanh, q, 1.7), rtol=1e-11
    )
    # c = 0: u_a, u_b independent, χ_c = σ_w² E[φ'(√q z)]².
    mean_slope = expect(lambda z: sech(math.sqrt(q) * z) ** 2)
    assert float(theory.chi_c(jnp.tanh, q, 0.0, 1.7)) == pytest.approx(
        1.7 * mean_slope**2, rel=1e-8
    )
    assert float(theory.correlation_map(jnp.tanh, q, 1.0, 1.7, 0.05)) == pytest.approx(1.0)
    assert abs(float(theory.correlation_map(jnp.tanh, q, 0.0, 1.7, 0.0))) < 1e-14


def test_depth_scales_ordered_phase():
    sw2, sb2 = 1.2, 0.05  # ordered: critical σ_w² is 1.76 at σ_b² = 0.05
    point = theory.mean_field(jnp.tanh, sw2, sb2)
    q_ref = tanh_q_star(sw2, sb2)
    chi1_ref = tanh_chi1(q_ref, sw2)
    assert float(point.q_star) == pytest.approx(q_ref, rel=1e-9)
    assert float(point.chi1) == pytest.approx(chi1_ref, rel=1e-9)
    assert float(point.c_star) == 1.0
    assert float(point.xi_c) == pytest.approx(-1 / math.log(chi1_ref), rel=1e-8)
    assert float(theory.depth_scale_c(jnp.tanh, float(point.q_star), 1.0, sw2)) == pytest.approx(
        -1 / math.log(chi1_ref), rel=1e-8
    )
    # ξ_q: the rate is the slope of the length map at q*; finite-difference reference.
    h = 1e-4
    slope = (tanh_length(q_ref + h, sw2, sb2) - tanh_length(q_ref - h, sw2, sb2)) / (2 * h)
    assert float(point.xi_q) == pytest.approx(-1 / math.log(slope), rel=1e-6)


def test_depth_scales_tanh_zero_bias_closed_forms():
    # Ordered, q* = 0: χ₁ = σ_w² φ'(0)² = σ_w², ξ_q = ξ_c = -1/log σ_w².
    point = theory.mean_field(jnp.tanh, 0.5, 0.0)
    assert float(point.q_star) == 0.0
    assert float(point.chi1) == pytest.approx(0.5, rel=1e-13)
    assert float(point.xi_c) == pytest.approx(1 / math.log(2), rel=1e-12)
    assert float(point.xi_q) == pytest.approx(1 / math.log(2), rel=1e-12)
    grad = jax.grad(lambda s: theory.mean_field(jnp.tanh, s, 0.0).xi_c)(0.5)
    assert float(grad) == pytest.approx(1 / (0.5 * math.log(0.5) ** 2), rel=1e-10)
    # Chaotic: odd φ and σ_b² = 0 give c* = 0, so χ_c(c*) = σ_w² E[φ'(√q* z)]².
    point = theory.mean_field(jnp.tanh, 2.0, 0.0)
    q_ref = tanh_q_star(2.0, 0.0)
    assert float(point.chi1) > 1.0
    assert abs(float(point.c_star)) < 1e-12
    mean_slope = expect(lambda z: sech(math.sqrt(q_ref) * z) ** 2)
    assert float(point.xi_c) == pytest.approx(-1 / math.log(2.0 * mean_slope**2), rel=1e-8)


def test_xi_c_diverges_at_criticality():
    crit = float(theory.critical_sigma_w2(jnp.tanh, 0.05))
    sw2 = [1.2, crit - 1e-3, crit + 1e-3, 2.5]
    # (Scalar calls reuse one compiled mean_field; vmap is tested on chi1 below.)
    point = jax.tree.map(
        lambda *xs: np.stack(xs), *[theory.mean_field(jnp.tanh, s, 0.05) for s in sw2]
    )
    xi_c = np.asarray(point.xi_c)
    assert xi_c[1] > 100 and xi_c[2] > 100
    assert xi_c[0] < 100 and xi_c[3] < 100
    np.testing.assert_array_equal(np.asarray(point.chi1) > 1, [False, False, True, True])
    assert point.c_star[0] == point.c_star[1] == 1.0
    assert point.c_star[3] < point.c_star[2] < 1.0
    chi1_ref = [tanh_chi1(tanh_q_star(s, 0.05), s) for s in (1.2, 2.5)]
    # q* = 1.2 at σ_w² = 2.5: degree-64 quadrature error of chi1 there is ~4e-7.
    np.testing.assert_allclose(np.asarray(point.chi1)[[0, 3]], chi1_ref, rtol=1e-6)


@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.5, 0.9])
def test_relu_correlation_map(c):
    q, sw2, sb2 = 1.3, 1.7, 0.1
    s = math.sqrt(1 - c * c)

    def inner(z1):  # E_z2[relu(√q (c z1 + s z2))] = m Φ(m/σ) + σ ϕ(m/σ)
        m, sd = math.sqrt(q) * c * z1, math.sqrt(q) * s
        x = m / sd
        return m * 0.5 * math.erfc(-x / math.sqrt(2)) + sd * math.exp(-0.5 * x * x) / SQRT_2PI

    cov = expect(lambda z1: max(math.sqrt(q) * z1, 0.0) * inner(z1))
    ref = (sw2 * cov + sb2) / (sw2 * q / 2 + sb2)
    assert float(theory.relu_correlation_map(c, q, sw2, sb2)) == pytest.approx(ref, rel=1e-9)
    # The kink-aware 2-D rule (Gauss–Hermite was off by up to 4e-3 here).
    quad = theory.correlation_map(jax.nn.relu, q, c, sw2, sb2)
    assert float(quad) == pytest.approx(ref, rel=1e-10)
    assert float(theory.relu_correlation_map(1.0, q, sw2, sb2)) == pytest.approx(1.0)
    # Price's theorem: dc'/dc = σ_w² q E[relu'(u_a) relu'(u_b)] / q', = χ₁ q / q' at c=1.
    slope = jax.grad(theory.relu_correlation_map)(1.0, q, sw2, sb2)
    assert float(slope) == pytest.approx(sw2 / 2 * q / (sw2 * q / 2 + sb2), rel=1e-12)


# ------------------------------------------------------------------ JAX transforms
def test_jit_vmap_grad():
    sw2 = jnp.array([0.8, 1.3, 2.0])
    got = jax.jit(jax.vmap(lambda s: theory.chi1(jnp.tanh, 0.5, s)))(sw2)
    np.testing.assert_allclose(got, [tanh_chi1(0.5, float(s)) for s in sw2], rtol=1e-8)

    @jax.jit
    def chi1_at_fixed_point(s):  # depends on σ_w² directly and through q*(σ_w²)
        return theory.chi1(jnp.tanh, theory.fixed_point_q(jnp.tanh, s, 0.05), s)

    check_grads(chi1_at_fixed_point, (1.3,), order=1, modes=("rev",))


def test_float32():
    with jax.enable_x64(False):
        crit = theory.critical_sigma_w2(jnp.tanh, jnp.array([0.0, 0.05], jnp.float32))
        assert crit.dtype == jnp.float32
        # 1.7609546 is tanh_critical(0.05), the scipy reference of the float64 test.
        np.testing.assert_allclose(crit, [1.0, 1.7609546], atol=1e-3)


def test_critical_sigma_w2_nan_without_transition():
    """sigmoid's χ₁(q*) stays far below 1 on [0.5, 4] (|σ'| ≤ 1/4): searched there alone
    (``widen=False``) there is no critical point, and the bisection must not return an
    endpoint but NaN with a one-line reason; tanh inside the bracket is unaffected."""
    with pytest.warns(RuntimeWarning, match=r"stays ≤ 1 \(ordered\) over σ_w² in \[0.5, 4\]"):
        assert bool(jnp.isnan(theory.critical_sigma_w2(jax.nn.sigmoid, 0.0, widen=False)))
    q_star = theory.fixed_point_q(jax.nn.sigmoid, 4.0, 0.0)
    assert float(theory.chi1(jax.nn.sigmoid, q_star, 4.0)) < 0.5
    assert abs(float(theory.critical_sigma_w2(jnp.tanh, 0.0)) - 1.0) < 1e-3


def test_critical_sigma_w2_constant_activation_has_none():
    """χ₁ ≡ 0: no transition at any σ_w²; NaN and a warning naming the searched range."""
    with pytest.warns(RuntimeWarning, match=r"no order-to-chaos transition.*stays ≤ 1"):
        crit = theory.critical_sigma_w2(lambda x: 0.0 * x, 0.1)
    assert bool(jnp.isnan(crit))


# ------------------------------------------------- piecewise-smooth activations vs scipy
SELU_SCALE, SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


def _sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


# name: (φ, φ', kinks), written out independently of gradstudy.nn
REFERENCE_ACTIVATIONS = {
    "softsign": (lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2, (0.0,)),
    "hard_tanh": (lambda x: min(max(x, -1.0), 1.0), lambda x: float(abs(x) < 1), (-1.0, 1.0)),
    "relu6": (lambda x: min(max(x, 0.0), 6.0), lambda x: float(0 < x < 6), (0.0, 6.0)),
    "elu": (lambda x: x if x > 0 else math.expm1(x),
            lambda x: 1.0 if x > 0 else math.exp(x), (0.0,)),
    "selu": (lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * math.expm1(x)),
             lambda x: SELU_SCALE * (1.0 if x > 0 else SELU_ALPHA * math.exp(x)), (0.0,)),
    "gelu": (lambda x: x * _normal_cdf(x),
             lambda x: _normal_cdf(x) + x * math.exp(-x * x / 2) / SQRT_2PI, ()),
    "silu": (lambda x: x * _sigmoid(x),
             lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))), ()),
    "leaky_relu_0.2": (lambda x: x if x >= 0 else 0.2 * x,
                       lambda x: 1.0 if x > 0 else 0.2, (0.0,)),
    "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x), ()),
}


def expect_kinked(g, q, kinks):
    """E[g(√q z)] by adaptive quadrature split at the kinks (scipy's ``points=``)."""
    s = math.sqrt(q)
    points = sorted(k / s for k in kinks if abs(k / s) < 30)
    value, _ = integrate.quad(lambda z: g(s * z) * math.exp(-0.5 * z * z) / SQRT_2PI, -30, 30,
                              points=points or None, epsabs=0.0, epsrel=1e-13, limit=200)
    return value


def ref_q_star(name, sw2, sb2):
    phi, _, kinks = REFERENCE_ACTIVATIONS[name]

    def residual(q):
        return sw2 * expect_kinked(lambda x: phi(x) ** 2, q, kinks) + sb2 - q

    hi = 1.0
    while residual(hi) > 0:
        hi *= 2
    return optimize.brentq(residual, 1e-12, hi, xtol=1e-15, rtol=1e-14)


def ref_chi1(name, sw2, sb2):
    q = ref_q_star(name, sw2, sb2)
    _, dphi, kinks = REFERENCE_ACTIVATIONS[name]
    return q, sw2 * expect_kinked(lambda x: dphi(x) ** 2, q, kinks)


# (name, [(σ_w², σ_b²) for q*/χ₁], [(σ_b², bracket of the critical σ_w²)]); the brackets
# hold one sign change of χ₁(q*) - 1 at finite q* (measured with this reference).
KINKED_CASES = [
    ("softsign", [(3.0, 0.05), (1.2, 0.3)], [(0.02, (0.5, 4.0))]),
    ("hard_tanh", [(1.5, 0.05), (3.0, 0.3)], [(0.02, (0.5, 4.0)), (0.3, (0.5, 4.0))]),
    ("relu6", [(1.5, 0.05), (3.0, 0.3)], [(0.02, (0.5, 4.0)), (0.3, (0.5, 4.0))]),
    ("elu", [(1.0, 0.05), (1.8, 0.3)], [(0.02, (0.5, 1.5))]),
    ("selu", [(0.8, 0.05), (1.5, 0.3)], [(0.02, (0.5, 1.0))]),
    ("gelu", [(1.0, 0.05), (1.9, 0.3)], [(0.3, (1.9, 1.99))]),
    ("silu", [(1.0, 0.05), (1.9, 0.3)], []),
    ("leaky_relu_0.2", [(1.0, 0.05), (1.5, 0.3)], []),
    ("erf", [(1.5, 0.05), (3.0, 0.3)], [(0.02, (0.5, 4.0)), (0.3, (0.5, 4.0))]),
]


@pytest.mark.parametrize(("name", "points", "criticals"), KINKED_CASES,
                         ids=[c[0] for c in KINKED_CASES])
def test_kinked_activations_vs_scipy(name, points, criticals):
    """q*, χ₁ and the critical σ_w² within 1e-6 (issue 5 §1.2: Gauss–Hermite gave softsign
    χ₁ = 0.9455 against 0.9822 at (3.0, 0.05) and a critical σ_w² of 2.861 against 2.597).
    Measured agreement is ~1e-12 or better."""
    sw2 = np.array([p[0] for p in points])
    sb2 = np.array([p[1] for p in points])
    q_star = theory.fixed_point_q(name, sw2, sb2)
    chi = theory.chi1(name, q_star, sw2)
    for i, (w, b) in enumerate(points):
        q_ref, chi_ref = ref_chi1(name, w, b)
        assert float(q_star[i]) == pytest.approx(q_ref, rel=1e-6)
        assert float(chi[i]) == pytest.approx(chi_ref, rel=1e-6)
    if criticals:
        b, lo, hi = (np.array(v) for v in zip(*[(b, lo, hi) for b, (lo, hi) in criticals]))
        crit = theory.critical_sigma_w2(name, b, lo, hi)
        for i, (b, (lo, hi)) in enumerate(criticals):
            ref = optimize.brentq(lambda w, b=b: ref_chi1(name, w, b)[1] - 1.0, lo, hi,
                                  xtol=1e-13, rtol=1e-13)
            assert float(crit[i]) == pytest.approx(ref, rel=1e-6)


def test_leaky_relu_critical_point_closed_form():
    # χ₁ = σ_w² (1 + a²)/2 for every q: critical at 2/(1 + a²) whatever σ_b², with q* = ∞
    # (the map diverges) on the chaotic side.
    crit = theory.critical_sigma_w2("leaky_relu_0.2", jnp.array([0.02, 0.3]))
    np.testing.assert_allclose(crit, 2 / 1.04, rtol=1e-12)
    assert float(theory.fixed_point_q("leaky_relu_0.2", 2.5, 0.1)) == np.inf
    assert float(theory.fixed_point_q("leaky_relu_0.2", 1.5, 0.1)) == pytest.approx(
        0.1 / (1 - 1.5 * 1.04 / 2), rel=1e-12)


def test_hard_tanh_derivatives_include_kink_boundary_terms():
    """d/dq of χ₁ and the depth scale ξ_q both come from the kinks of hard tanh (φ' jumps,
    φ'' is 0 between them): a rule that ignored the moving breakpoints, or φ'' (the old
    ξ_q formula), gets 0 / the wrong rate."""
    q, sw2, sb2 = 0.7, 1.6, 0.05
    # χ₁(q) = σ_w² P(|z| < 1/√q) = σ_w² erf(1/√(2q)); its q-derivative in closed form
    slope = -sw2 * 2 / math.sqrt(math.pi) * math.exp(-1 / (2 * q)) * (2 * q) ** -1.5
    got = jax.grad(lambda q: theory.chi1("hard_tanh", q, sw2))(q)
    assert float(got) == pytest.approx(slope, rel=1e-9)
    phi, _, kinks = REFERENCE_ACTIVATIONS["hard_tanh"]

    def length(q):
        return sw2 * expect_kinked(lambda x: phi(x) ** 2, q, kinks) + sb2

    h = 1e-4
    rate = (length(q + h) - length(q - h)) / (2 * h)
    assert float(theory.depth_scale_q("hard_tanh", q, sw2)) == pytest.approx(
        -1 / math.log(rate), rel=1e-7)


def test_correlation_map_kinked_vs_scipy():
    # 2-D: E[φ(u_a) φ(u_b)] as an iterated scipy integral, softsign and hard tanh
    q, sw2, sb2 = 1.3, 1.7, 0.1
    for name in ("softsign", "hard_tanh"):
        phi, dphi, kinks = REFERENCE_ACTIVATIONS[name]
        for c in (-0.6, 0.3, 0.95):
            s, r = math.sqrt(q), math.sqrt(1 - c * c)

            def inner(z1, g):
                m, sd = s * c * z1, s * r
                pts = sorted((k - m) / sd for k in kinks if abs((k - m) / sd) < 30)
                return integrate.quad(lambda z2: g(m + sd * z2) * math.exp(-z2 * z2 / 2)
                                      / SQRT_2PI, -30, 30, points=pts or None,
                                      epsabs=1e-14, epsrel=1e-12, limit=200)[0]

            def outer(f):
                return integrate.quad(lambda z1: f(s * z1) * inner(z1, f)
                                      * math.exp(-z1 * z1 / 2) / SQRT_2PI, -12, 12,
                                      points=sorted({k / s for k in kinks}
                                                    | {k / (s * c) for k in kinks}) or None,
                                      epsabs=1e-13, epsrel=1e-11, limit=200)[0]

            q_next = sw2 * expect_kinked(lambda x: phi(x) ** 2, q, kinks) + sb2
            ref = (sw2 * outer(phi) + sb2) / q_next
            got = theory.correlation_map(name, q, c, sw2, sb2)
            assert float(got) == pytest.approx(ref, rel=1e-8), (name, c)
            got_chi_c = theory.chi_c(name, q, c, sw2)
            assert float(got_chi_c) == pytest.approx(sw2 * outer(dphi), rel=1e-8), (name, c)


@pytest.mark.parametrize("name", sorted(REFERENCE_ACTIVATIONS))
def test_error_estimate_is_an_honest_bound(name):
    """|value - scipy| <= estimate, and the estimate is small (<= 1e-6 relative)."""
    phi, dphi, kinks = REFERENCE_ACTIVATIONS[name]
    jphi = activations.get_activation(name)
    qs = np.array([0.01, 0.5, 2.0, 10.0, 60.0])
    for integrand, ref_integrand in ((lambda h: jphi(h) ** 2, lambda x: phi(x) ** 2),
                                     (lambda h: jax.grad(jphi)(h) ** 2, None)):
        if ref_integrand is None:
            integrand = jax.vmap(jax.vmap(jax.vmap(lambda h: jax.grad(jphi)(h) ** 2)))
            ref_integrand = lambda x: dphi(x) ** 2  # noqa: E731
        value, error = theory.gaussian_expectation(integrand, qs, return_error=True,
                                                   kinks=activations.activation_kinks(name))
        ref = np.array([expect_kinked(ref_integrand, q, kinks) for q in qs])
        true_error = np.abs(np.asarray(value) - ref)
        assert np.all(true_error <= np.maximum(np.asarray(error), 4e-16 * np.abs(ref)))
        assert np.all(np.asarray(error) <= 1e-6 * np.abs(ref))


def test_error_estimate_flags_an_unresolved_integrand():
    # cos(40 x) at q = 1 oscillates faster than the panels resolve: the estimate must say
    # so (E[cos(40 z)] = exp(-800) ≈ 0).
    value, error = theory.gaussian_expectation(lambda h: jnp.cos(40 * h), 1.0,
                                               return_error=True, kinks=())
    assert float(error) >= abs(float(value))
    assert float(error) > 1e-6


def test_mean_field_error_estimates():
    est = theory.mean_field_error("softsign", 3.0, 0.02)
    q_star = theory.fixed_point_q("softsign", 3.0, 0.02)
    q_ref, chi_ref = ref_chi1("softsign", 3.0, 0.02)
    assert abs(float(q_star) - q_ref) <= float(est.q_star) <= 1e-7 * q_ref
    assert abs(float(theory.chi1("softsign", q_star, 3.0)) - chi_ref) <= float(est.chi1) <= 1e-7
    assert 0 < float(est.critical_sigma_w2) <= 1e-6


# ------------------------------------------------------------------- kinks, names, dtype
def test_found_kinks_match_declared():
    for name in activations.activation_names():
        fn = activations.get_activation(name)
        assert activations.find_kinks(fn) == activations.activation_kinks(name), name
    assert activations.find_kinks(lambda x: jnp.maximum(x, 0.3)) == (0.3,)
    assert activations.find_kinks(lambda x: jnp.where(x > -2.5, x, 0.0) ** 3) == (-2.5,)
    # a steep but smooth function is not a kink
    assert activations.find_kinks(lambda x: jnp.tanh(20 * x)) == ()


def test_register_activation_with_kinks_and_auto_detection():
    def kinked(x):
        return jnp.minimum(jnp.abs(x - 0.5), 2.0)

    activations.register_activation("test_kinked", kinked, kinks=[2.5, 0.5, -1.5])
    assert activations.activation_kinks("test_kinked") == (-1.5, 0.5, 2.5)
    assert activations.activation_kinks(kinked) == (-1.5, 0.5, 2.5)

    def found(x):
        return jnp.minimum(jnp.abs(x - 0.5), 2.0)

    assert activations.activation_kinks(found) == (-1.5, 0.5, 2.5)
    with pytest.raises(ConfigError, match="kinks"):
        activations.register_activation("bad", kinked, kinks=[float("nan")])
    with pytest.raises(ConfigError, match="kinks"):
        activations.register_activation("bad", kinked, kinks="0")
    with pytest.raises(ConfigError, match="negative_slope"):
        activations.leaky_relu_with_slope(float("inf"))


def test_names_and_dtype():
    by_name = theory.fixed_point_q("tanh", 1.5, 0.05)
    by_fn = theory.fixed_point_q(jnp.tanh, 1.5, 0.05)
    np.testing.assert_array_equal(by_name, by_fn)
    assert float(theory.chi1("softsign", 1.0, 1.0)) == pytest.approx(
        expect_kinked(lambda x: 1 / (1 + abs(x)) ** 4, 1.0, (0.0,)), rel=1e-12)
    with pytest.raises(ConfigError, match="activation"):
        theory.chi1("no_such_activation", 1.0, 1.0)
    with pytest.raises(ConfigError, match="dtype"):
        theory.chi1("tanh", 1.0, 1.0, dtype="int8")
    with jax.enable_x64(False):
        assert theory.chi1("tanh", 1.0, 1.0).dtype == jnp.float32
        got = theory.critical_sigma_w2("softsign", 0.02, dtype="float64")
        assert got.dtype == jnp.float64
        ref = optimize.brentq(lambda w: ref_chi1("softsign", w, 0.02)[1] - 1.0, 2.0, 3.0,
                              xtol=1e-13)
        assert float(got) == pytest.approx(ref, rel=1e-10)
        assert theory.fixed_point_q("tanh", 1.5, 0.05, dtype="float64").dtype == jnp.float64
        with pytest.raises(ConfigError, match="jax_enable_x64"):
            jax.jit(lambda w: theory.chi1("tanh", 1.0, w, dtype="float64"))(1.0)
    assert theory.chi1("tanh", 1.0, 1.0, dtype="float32").dtype == jnp.float32


def _bump(x):
    return x / (1 + abs(x)) ** 2


def _bump_slope(x):
    return (1 - abs(x)) / (1 + abs(x)) ** 3


# activations whose transition lies outside the default bracket [0.5, 4]: found by widening
OUTSIDE_BRACKET = [
    ("bump", lambda x: x / (1 + jnp.abs(x)) ** 2, (_bump, _bump_slope, (0.0,)), 0.1, 5.55),
    ("sigmoid", jax.nn.sigmoid, (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), ()),
     0.0, 103.0),
]


@pytest.mark.parametrize(("name", "phi", "reference", "sigma_b2", "approx"), OUTSIDE_BRACKET,
                         ids=[c[0] for c in OUTSIDE_BRACKET])
def test_critical_sigma_w2_outside_default_bracket(name, phi, reference, sigma_b2, approx):
    """x/(1+|x|)² at σ_b² = 0.1 has its transition at σ_w² ≈ 5.55 (issue 16), sigmoid at
    σ_b² = 0 at ≈ 103: both outside [0.5, 4], where the search used to return NaN. Checked
    against brentq on an independent scipy χ₁(q*) - 1, bracketed by hand."""
    ref_phi, ref_slope, kinks = reference
    REFERENCE_ACTIVATIONS[name] = reference
    try:
        def excess(w):
            q = ref_q_star(name, w, sigma_b2)
            return w * expect_kinked(lambda x: ref_slope(x) ** 2, q, kinks) - 1.0

        ref = optimize.brentq(excess, 0.5 * approx, 2 * approx, xtol=1e-12, rtol=1e-12)
    finally:
        del REFERENCE_ACTIVATIONS[name]
    assert ref == pytest.approx(approx, rel=0.01)
    crit = theory.critical_sigma_w2(phi, sigma_b2, kinks=kinks)
    assert float(crit) == pytest.approx(ref, rel=1e-6)
    # a wrong starting bracket on either side is widened to the same answer
    assert float(theory.critical_sigma_w2(phi, sigma_b2, 2 * approx, 3 * approx,
                                          kinks=kinks)) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize(("name", "slope"), [("relu", 0.0), ("leaky_relu", 0.01),
                                             ("leaky_relu_0.2", 0.2)])
def test_critical_sigma_w2_piecewise_linear_closed_form(name, slope):
    """χ₁ = σ_w²(1 + α²)/2 for any q > 0, so the transition is at 2/(1 + α²), also at
    σ_b² = 0 where q* → 0 in the ordered phase (χ₁ is the limit q → 0⁺ there; evaluated at
    the kink itself, leaky ReLU's search landed on 1.166)."""
    crit = theory.critical_sigma_w2(name, jnp.array([0.0, 0.05]))
    np.testing.assert_allclose(crit, 2 / (1 + slope**2), rtol=1e-5)
