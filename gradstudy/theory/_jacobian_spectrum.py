"""The spectrum of a deep network's input–output Jacobian, from free probability.

For a fully connected network ``h_{l+1} = W_{l+1} φ(h_l) + b_{l+1}`` at the fixed point
``q*`` of the length map, the Jacobian of ``depth`` layers is
``J = W_L D_{L-1} ⋯ W_2 D_1`` with ``D_l = diag φ'(h_l)``.  As the width grows at fixed
depth, the ``W_l W_lᵀ`` and ``D_l²`` become asymptotically free, so the S-transform of the
spectrum of ``JJᵀ`` (squared singular values ``λ``) is the product of theirs (Pennington,
Schoenholz & Ganguli 2017, Eq. 9; 2018, Eq. 8)::

    S_{JJᵀ}(z) = [S_{D²}(z) · S_{WWᵀ}(z)]^L.

Moments.  Write a distribution's moment series ``ψ(z) = Σ_k m_k z^k`` and ``S(z) =
χ(z)(1 + z)/z`` with ``χ = ψ⁻¹``; then ``S(z) = (1/m_1)(1 − v z + O(z²))`` with the
*normalised variance* ``v = m_2/m_1² − 1``.  A product of S-transforms therefore multiplies
the means and *adds* the normalised variances, exactly.  With ``μ_k = E[φ'(√q* z)^{2k}]``
(``z ~ N(0, 1)``) and ``s_W`` = 1 for Gaussian and 0 for orthogonal weights (the normalised
variance of Marchenko–Pastur at aspect ratio 1, and of a point mass)::

    mean λ            = (σ_w² μ_1)^L = χ₁^L
    var λ / mean²     = L (μ_2/μ_1² − 1 + s_W)

which is Pennington et al. (2017) Eq. 14–15 (their ``σ²_{JJᵀ} = L(μ_2/μ_1² − 1 − s_1)``
with ``s_1 = −1`` for Gaussian and 0 for orthogonal weights, at χ₁ = 1).  Dynamical isometry
(all singular values near 1 at any depth) needs orthogonal weights *and* ``μ_2 ≈ μ_1²``:
φ' nearly constant over the pre-activations, which tanh and hard tanh reach as ``q* → 0``
and ReLU (``φ'² ∈ {0, 1}``: ``μ_2/μ_1² − 1 = 1``) never does.

Density.  Where ``φ'²`` takes two values, 0 and 1 with probability ``p`` (linear: p = 1;
ReLU: ½; hard tanh: ``P(|h| < 1)``), ``S_{D²}(z) = (1 + z)/(p + z)`` in closed form and the
density follows from ``x = F(ψ) := 1/χ_{JJᵀ}(ψ)`` solved for complex ``ψ``; the Stieltjes
transform is ``G(x) = (1 + ψ)/x`` and ``ρ(x) = −Im G(x + i0)/π``
(:func:`bernoulli_jacobian_density`).  The rank of ``J`` is that of its sparsest ``D``, so
the spectrum has an atom of mass ``1 − p`` at 0.

References:
    J. Pennington, S. S. Schoenholz, S. Ganguli. "Resurrecting the sigmoid in deep learning
    through dynamical isometry: theory and practice." NeurIPS 2017 (Eq. 9: S-transform of
    JJᵀ; Eq. 14–15: its mean and variance; Section 3: the S-transforms of Gaussian and
    orthogonal weights and of ReLU and hard-tanh derivatives).
    J. Pennington, S. S. Schoenholz, S. Ganguli. "The emergence of spectral universality in
    deep networks." AISTATS 2018 (Eq. 8 and Section 3: the same composition for any
    activation, and the moments in terms of μ_k and s_k).
    R. Speicher, J. Mingo. "Free probability and random matrices." Springer 2017 (the
    S-transform and its multiplicativity for free variables).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from gradstudy.errors import ConfigError
from gradstudy.nn._activations import activation_kinks, get_activation
from gradstudy.theory._mean_field import _derivative, fixed_point_q
from gradstudy.theory._quadrature import gaussian_expectation

WEIGHT_VARIANCE = {"gaussian": 1.0, "orthogonal": 0.0}
"""Normalised variance ``m_2/m_1² − 1`` of the spectrum of ``W Wᵀ`` for square weights:
Marchenko–Pastur at aspect ratio 1 (``m_2 = 2 m_1²``) and a point mass (orthogonal)."""


class JacobianMoments(NamedTuple):
    """Mean-field moments of the squared singular values ``λ`` of a depth-``L`` Jacobian."""

    q_star: float
    """Pre-activation variance the layers are evaluated at (the fixed point by default)."""
    mu1: float
    """``E[φ'(√q z)²]``."""
    mu2: float
    """``E[φ'(√q z)⁴]``."""
    chi1: float
    """``σ_w² μ_1``: the mean of λ per layer."""
    mean: float
    """``χ₁^L``: the mean of λ."""
    normalized_variance: float
    """``L (μ_2/μ_1² − 1 + s_W)``: var λ / mean²."""
    variance: float
    """``mean² · normalized_variance``: the variance of λ."""
    layer_slope: float
    """``μ_2/μ_1² − 1 + s_W``: the growth of ``normalized_variance`` per layer."""


@functools.cache
def _derivative_powers(fn):
    """``(φ'², φ'⁴)`` as two fixed function objects (static jit arguments: one compile)."""
    d = _derivative(fn)
    return (lambda x: d(x) ** 2), (lambda x: d(x) ** 4)


def derivative_moments(activation, q: float) -> tuple[float, float]:
    """``(μ_1, μ_2) = (E[φ'(√q z)²], E[φ'(√q z)⁴])``, ``z ~ N(0, 1)``, in float64.

    Args:
        activation: a registered activation name or an elementwise JAX function.
        q: the pre-activation variance (> 0, or 0 for the value of φ' at 0).

    Returns:
        The two moments as floats (kink-aware Gauss–Kronrod quadrature,
        :func:`gradstudy.theory.gaussian_expectation`).

    References:
        Pennington et al. (2017), Eq. 13 (their μ_k).
    """
    fn = get_activation(activation)
    kinks = activation_kinks(fn)
    square, fourth = _derivative_powers(fn)
    mu1 = gaussian_expectation(square, q, kinks=kinks, dtype="float64")
    mu2 = gaussian_expectation(fourth, q, kinks=kinks, dtype="float64")
    return float(mu1), float(mu2)


def jacobian_spectrum_moments(activation, sigma_w2: float, sigma_b2: float, depth: int,
                              weights: str = "gaussian", q: float | None = None
                              ) -> JacobianMoments:
    """Mean and variance of the squared singular values of a ``depth``-layer Jacobian.

    ``J = W_L D_{L−1} ⋯ W_2 D_1`` (or ``D_L W_L ⋯ D_1 W_1``: the same spectrum in the
    large-width limit) with ``L = depth`` factors ``W D``, evaluated at the pre-activation
    variance ``q`` (default: the fixed point ``q*`` of the length map, where the papers
    evaluate it).  The weights' spectrum enters only through ``σ_w²`` (the mean of
    ``W Wᵀ``) and ``s_W`` = :data:`WEIGHT_VARIANCE` (its normalised variance).

    Args:
        activation: a registered activation name or an elementwise JAX function.
        sigma_w2, sigma_b2: the weight and bias variances (``W ~ σ_w²/fan_in``).
        depth: number of layers ``L`` in the product (>= 1).
        weights: ``"gaussian"`` or ``"orthogonal"``.
        q: evaluate every ``D_l`` at this variance instead of at ``q*``.  Pass it where the
            fixed point is not unique: for ReLU at ``σ_w² = 2`` and linear networks at
            ``σ_w² = 1`` (``σ_b = 0``) every ``q`` is one, and positive homogeneity makes
            the moments independent of ``q``.

    Returns:
        :class:`JacobianMoments` (floats).

    Raises:
        ConfigError: an unknown ``weights`` or a depth below 1.

    References:
        Pennington et al. (2017), Eq. 14–15; Pennington et al. (2018), Section 3.
    """
    if weights not in WEIGHT_VARIANCE:
        raise ConfigError(f"weights: unknown value {weights!r}; allowed: "
                          f"{', '.join(WEIGHT_VARIANCE)}")
    if int(depth) != depth or depth < 1:
        raise ConfigError(f"depth: must be an integer >= 1, got {depth!r}")
    if q is None:
        q = float(fixed_point_q(activation, sigma_w2, sigma_b2, dtype="float64"))
    mu1, mu2 = derivative_moments(activation, q)
    if not mu1 > 0:
        raise ConfigError(f"q: φ' vanishes almost surely at q = {q:.3g} (μ_1 = {mu1:.3g}); "
                          "pass the pre-activation variance as q")
    chi = sigma_w2 * mu1
    slope = mu2 / mu1**2 - 1.0 + WEIGHT_VARIANCE[weights]
    mean = chi ** depth
    return JacobianMoments(q_star=float(q), mu1=mu1, mu2=mu2, chi1=chi, mean=mean,
                           normalized_variance=depth * slope,
                           variance=mean**2 * depth * slope, layer_slope=slope)


# ------------------------------------------------------------------------------- density
class SpectralDensity(NamedTuple):
    """A spectral distribution: a density on ``x`` and an atom at 0."""

    x: np.ndarray
    """Increasing points of the continuous part's support."""
    density: np.ndarray
    """The density ``ρ(x)`` at ``x``."""
    atom_at_zero: float
    """The mass at λ = 0 (``1 − p``)."""


def _log_f(psi, exponents, chi_l):
    """``log F(ψ) = L log χ + Σ_j e_j log(1 + ψ/c_j) − log ψ`` (principal logs)."""
    out = -np.log(psi) + np.log(chi_l)
    for c, e in exponents:
        out = out + e * np.log1p(psi / c)
    return out


def bernoulli_jacobian_density(p: float, chi1: float, depth: int, weights: str = "gaussian",
                               n_points: int = 2000) -> SpectralDensity:
    """Density of the squared singular values of ``J`` when ``φ'² ∈ {0, 1}``.

    With ``P(φ'² = 1) = p`` (linear: 1; ReLU: ½; hard tanh: ``P(|h| < 1)``) and
    ``σ_w² = χ₁/p``, the per-layer S-transforms are ``S_{D²}(z) = (1 + z)/(p + z)`` and
    ``S_{WWᵀ}(z) = 1/(σ_w²(1 + z))`` (Gaussian) or ``1/σ_w²`` (orthogonal), so
    ``x = F(ψ) = χ₁^L (1 + ψ/p)^L (1 + ψ)^a / ψ`` with ``a = 1`` (Gaussian) or ``1 − L``
    (orthogonal).  On the support, ``ψ = r e^{iθ}`` (upper half-plane; ``ρ`` is symmetric
    under conjugation) solves ``arg F(ψ) = 0``: for each ``θ`` in (0, π) the radius is found
    by bisection, and ``ρ(x) = Im ψ / (π x)`` (``G(x) = (1 + ψ)/x``, ``ρ = −Im G/π`` on the
    branch with ``Im ψ < 0``).  ``θ → 0`` is the upper edge (the real critical point of
    ``F``), ``θ → π`` the lower one.

    Args:
        p: probability that ``φ'² = 1`` (0 < p <= 1).
        chi1: ``σ_w² p``, 1 at criticality.
        depth: number of layers ``L``.
        weights: ``"gaussian"`` or ``"orthogonal"``.
        n_points: number of angles ``θ`` (points of the returned curve).

    Returns:
        :class:`SpectralDensity` with the atom ``1 − p`` at 0 (linear orthogonal
        networks, whose spectrum is a point mass at ``χ₁^L``, return an empty curve).

    References:
        Pennington et al. (2017), Section 3 (S-transforms of Gaussian/orthogonal weights
        and of ReLU / hard-tanh derivatives) and Eq. 9; the inversion ``G = (1 + ψ)/x`` is
        the standard one (Mingo & Speicher 2017, Ch. 3).
    """
    if weights not in WEIGHT_VARIANCE:
        raise ConfigError(f"weights: unknown value {weights!r}; allowed: "
                          f"{', '.join(WEIGHT_VARIANCE)}")
    if not 0.0 < p <= 1.0:
        raise ConfigError(f"p: must be in (0, 1], got {p!r}")
    if weights == "orthogonal" and depth < 2 and p < 1.0:
        raise ConfigError("depth: one orthogonal layer has λ = σ_w² φ'² ∈ {0, σ_w²}, two "
                          "atoms and no density; use depth >= 2")
    a = 1 if weights == "gaussian" else 1 - depth
    exponents = [(p, depth), (1.0, a)] if p < 1.0 else [(1.0, depth + a)]
    if all(e == 0 for _, e in exponents):  # linear and orthogonal: a point mass
        return SpectralDensity(np.zeros(0), np.zeros(0), 0.0)
    theta = np.linspace(0.0, np.pi, n_points + 2)[1:-1]
    # arg F(r e^{iθ}) on a log grid of radii; the root is the first sign change from below
    radii = np.logspace(-8, 8, 801)
    psi = radii[None, :] * np.exp(1j * theta[:, None])
    phase = np.imag(_log_f(psi, exponents, chi1 ** depth))
    below = phase[:, :-1] < 0
    crossing = below & (phase[:, 1:] >= 0)
    has = crossing.any(axis=1)
    first = np.argmax(crossing, axis=1)
    lo, hi = radii[first], radii[first + 1]
    for _ in range(80):  # bisection in log r
        mid = np.sqrt(lo * hi)
        ph = np.imag(_log_f(mid * np.exp(1j * theta), exponents, chi1 ** depth))
        lo = np.where(ph < 0, mid, lo)
        hi = np.where(ph < 0, hi, mid)
    psi = np.sqrt(lo * hi) * np.exp(1j * theta)
    x = np.real(np.exp(_log_f(psi, exponents, chi1 ** depth)))
    density = np.imag(psi) / (np.pi * x)
    keep = has & np.isfinite(x) & (x > 0)
    order = np.argsort(x[keep])
    return SpectralDensity(x[keep][order], density[keep][order], 1.0 - p)


def density_moment(spectrum: SpectralDensity, k: int) -> float:
    """``∫ x^k ρ(x) dx`` over the continuous part, ``k >= 1`` (trapezoid rule on the points
    of the curve; the mass itself, ``1 − atom_at_zero``, is exact, whereas ``ρ`` of deep
    Gaussian products diverges like ``x^{−L/(L+1)}`` at 0, which a trapezoid cannot sum)."""
    if int(k) != k or k < 1:
        raise ConfigError(f"k: must be an integer >= 1, got {k!r}")
    return float(np.trapezoid(spectrum.x ** k * spectrum.density, spectrum.x))
