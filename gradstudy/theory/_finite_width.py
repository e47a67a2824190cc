"""Finite-width fluctuations of ReLU networks at He initialisation: the law of the log of
squared norms of activations and of back-propagated gradients (Hanin 2018; Hanin & Nica
2019).

Mean field is the infinite-width limit: there ‖x_l‖²/‖x_(l−1)‖² = 1 exactly for ReLU with
W ~ N(0, 2/fan_in) and σ_b = 0.  At finite width the ratio of one layer, given x_(l−1), is

    R_l = ‖x_l‖² / ‖x_(l−1)‖² = (2/n_(l−1)) Σ_i 1{g_i > 0} g_i²,   g ~ N(0, I_(n_l)),

because h_l = W_l x_(l−1) ~ N(0, (2/n_(l−1)) ‖x_(l−1)‖² I) whatever the direction of x_(l−1)
(Gaussian weights are rotation invariant).  So R_l = (2/n_(l−1)) χ²_k with k ~
Binomial(n_l, ½) the number of active units, its law does not depend on x_(l−1), and the R_l
of different layers are independent: log(‖x_L‖²/‖x_0‖²) = Σ_l log R_l is a sum of
independent terms.  Exactly (log χ²_k = log 2 + log Γ(k/2, 1), whose j-th cumulant is the
polygamma ψ^(j−1)(k/2)):

    E log R_l   = E_k[ψ(k/2)] + log 2 + log(2/n_(l−1)),
    Var log R_l = E_k[ψ'(k/2)] + Var_k[ψ(k/2)],

and k = 0 (every unit of layer l off, probability 2^(−n_l)) is a dead network: R_l = 0,
log R_l = −∞.  The moments here are those of the networks that are alive (every k ≥ 1,
the binomial conditioned on k ≥ 1, layer by layer: the layers are independent), and the
probability of a dead network is returned with them.

To first order in 1/n: E R_l = n_l/n_(l−1) and Var R_l / (E R_l)² = 5/n_l (E[1{g>0} g⁴] =
3/2, so Var(1{g>0} g²) = 3/2 − 1/4 = 5/4 per unit), hence by the delta method

    Var log(‖x_L‖²/‖x_0‖²) ≈ 5β,   E log(‖x_L‖²/‖x_0‖²) ≈ Σ_l log(n_l/n_(l−1)) − 5β/2,

with β = Σ_(l=1..L) 1/n_l (Hanin 2018 shows that the fluctuations of squared gradients are
exponential in this β; Hanin & Nica 2019 show that the log of the norm of such a product
applied to a fixed vector is asymptotically Gaussian, with mean and variance proportional
to β in the regime depth ∝ width).  The constant 5 is derived here, as above, not quoted.

Back-propagation with an output cotangent independent of the network
(δ_(l−1) = D_(l−1) W_lᵀ δ_l, D the ReLU mask) has the same per-layer law with the widths
read backwards: ‖δ_(l−1)‖²/‖δ_l‖² = (2/n_(l−1)) χ²_k, k ~ Binomial(n_(l−1), ½), independent
across layers.  For a Jacobian–vector product J v this follows from the rotation argument
above applied to the pair (x, v): given the on-units of a layer, each contributes an
independent χ²_1 whatever the angle between v and x.  For the vector–Jacobian product we
have no proof in this form (the weights of a layer also set its mask); we checked it by
Monte Carlo of NumPy networks (``tests/theory/test_finite_width.py``: width 4, 3 backward
layers, 2·10⁵ networks: mean, variance and skewness of the backward log-ratio within their
standard errors), and the study checks it at widths 8–64.

References:
    B. Hanin. "Which neural net architectures give rise to exploding and vanishing
    gradients?" NeurIPS 2018 (the fluctuations of squared input–output Jacobian entries of a
    ReLU net grow exponentially in β = Σ_j 1/n_j; main theorem).

    B. Hanin, M. Nica. "Products of many large random matrices and gradients in deep neural
    networks." Communications in Mathematical Physics 376 (2020), 287–322 (arXiv 2018;
    main theorem: log ‖M_N ⋯ M_1 u‖ asymptotically Gaussian with mean and variance set by
    β, with a Kolmogorov–Smirnov bound; applied to ReLU-network gradients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import polygamma
from scipy.stats import binom

__all__ = [
    "LogNormMoments",
    "finite_width_beta",
    "relu_layer_log_ratio_moments",
    "relu_log_norm_moments",
    "relu_log_norm_moments_first_order",
    "relu_backward_log_norm_moments",
    "sample_relu_log_norm",
]

FIRST_ORDER_VARIANCE = 5.0  # Var(1{g>0} g²)·4 = (3/2 − 1/4)·4 per unit: Var log ≈ 5/n


@dataclass(frozen=True)
class LogNormMoments:
    """Moments of a log of squared norm ratios over the networks that are alive.

    Attributes:
        mean: E log ratio.
        var: Var log ratio.
        skewness: third standardised cumulant (0 for a log-normal ratio).
        excess_kurtosis: fourth standardised cumulant (0 for a log-normal ratio).
        p_dead: probability that some layer has every unit off (the ratio is 0).
    """

    mean: float
    var: float
    skewness: float
    excess_kurtosis: float
    p_dead: float

    @property
    def std(self) -> float:
        return float(np.sqrt(self.var))


def finite_width_beta(widths: Sequence[int]) -> float:
    """β = Σ_(l=1..L) 1/n_l of ``widths`` = (n_0, n_1, …, n_L) (the input width n_0 left
    out), Hanin's (2018) measure of how far a network is from its infinite-width limit."""
    widths = _check_widths(widths)
    return float(np.sum(1.0 / np.asarray(widths[1:], float)))


def _check_widths(widths) -> tuple[int, ...]:
    widths = tuple(int(n) for n in widths)
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths: need (n_0, …, n_L) with L >= 1 and every n >= 1, "
                         f"got {widths}")
    return widths


def _layer_cumulants(fan_in: int, units: int) -> tuple[np.ndarray, float]:
    """First four cumulants of log((2/fan_in) χ²_k), k ~ Binomial(units, ½) | k ≥ 1, and
    P(k = 0).  Given k the cumulants are ψ^(j−1)(k/2) (+ log 4/fan_in for the first);
    mixed over k through the raw moments."""
    k = np.arange(1, units + 1)
    p = binom.pmf(k, units, 0.5)
    p_dead = 0.5 ** units
    p = p / p.sum()
    c1 = polygamma(0, k / 2) + np.log(4.0 / fan_in)
    c2, c3, c4 = (polygamma(j, k / 2) for j in (1, 2, 3))
    # raw moments given k from the cumulants
    m1 = c1
    m2 = c2 + c1**2
    m3 = c3 + 3 * c2 * c1 + c1**3
    m4 = c4 + 4 * c3 * c1 + 3 * c2**2 + 6 * c2 * c1**2 + c1**4
    r1, r2, r3, r4 = (float(np.sum(p * m)) for m in (m1, m2, m3, m4))
    k2 = r2 - r1**2
    k3 = r3 - 3 * r2 * r1 + 2 * r1**3
    k4 = r4 - 4 * r3 * r1 - 3 * r2**2 + 12 * r2 * r1**2 - 6 * r1**4
    return np.array([r1, k2, k3, k4]), p_dead


def _moments(cumulants: np.ndarray, alive: float) -> LogNormMoments:
    mean, var, k3, k4 = cumulants
    return LogNormMoments(float(mean), float(var), float(k3 / var**1.5), float(k4 / var**2),
                          float(1.0 - alive))


def relu_layer_log_ratio_moments(fan_in: int, units: int) -> LogNormMoments:
    """Exact law of the log of one ReLU layer's squared-norm ratio, (2/fan_in) χ²_k with
    k ~ Binomial(units, ½) (k = 0 excluded and returned as ``p_dead`` = 2^(−units)).

    Forward: ``fan_in`` = n_(l−1), ``units`` = n_l; backward: both n_(l−1).

    References:
        Hanin (2018); Hanin & Nica (2019) (the per-layer factor of a ReLU net, described in
        the module docstring).
    """
    cumulants, p_dead = _layer_cumulants(int(fan_in), int(units))
    return _moments(cumulants, 1.0 - p_dead)


def relu_log_norm_moments(widths: Sequence[int]) -> LogNormMoments:
    """Exact law of log(‖x_L‖²/‖x_0‖²) of a ReLU net with W_l ~ N(0, 2/n_(l−1)), σ_b = 0.

    x_0 is the input (any fixed vector), x_l = relu(W_l x_(l−1)); the L layer factors are
    independent, so their cumulants add.

    Args:
        widths: (n_0, n_1, …, n_L): the input width and the L layer widths.

    Returns:
        :class:`LogNormMoments` of the networks that are alive, and the probability
        1 − Π_l (1 − 2^(−n_l)) of a dead one.

    References:
        Hanin (2018), Hanin & Nica (2019): module docstring.
    """
    widths = _check_widths(widths)
    total, alive = np.zeros(4), 1.0
    for fan_in, units in zip(widths[:-1], widths[1:]):
        cumulants, p_dead = _layer_cumulants(fan_in, units)
        total += cumulants
        alive *= 1.0 - p_dead
    return _moments(total, alive)


def relu_backward_log_norm_moments(widths: Sequence[int]) -> LogNormMoments:
    """Exact law of log(‖δ_a‖²/‖δ_b‖²), δ_l = ∂L/∂h_l, over the layers a < b of a ReLU net
    with an output cotangent independent of the network.

    Args:
        widths: (n_a, n_(a+1), …, n_b): the widths of the layers the gradient passes; each
            step δ_(l−1) = D_(l−1) W_lᵀ δ_l contributes (2/n_(l−1)) χ²_k, k ~
            Binomial(n_(l−1), ½), so only n_a … n_(b−1) enter.

    Returns:
        :class:`LogNormMoments` (``p_dead`` from the masks D_a … D_(b−1)).

    References:
        Hanin & Nica (2019): module docstring (checked here by Monte Carlo).
    """
    widths = _check_widths(widths)
    total, alive = np.zeros(4), 1.0
    for n in widths[:-1]:
        cumulants, p_dead = _layer_cumulants(n, n)
        total += cumulants
        alive *= 1.0 - p_dead
    return _moments(total, alive)


def relu_log_norm_moments_first_order(widths: Sequence[int]) -> tuple[float, float]:
    """First-order (in 1/n) mean and variance of log(‖x_L‖²/‖x_0‖²):
    (Σ_l log(n_l/n_(l−1)) − 5β/2, 5β), β = :func:`finite_width_beta`.

    For equal widths, (−5β/2, 5β); the same for the backward ratio with β over the widths
    the gradient arrives at.

    References:
        Hanin (2018); Hanin & Nica (2019) (module docstring; the constant 5 derived there).
    """
    widths = _check_widths(widths)
    beta = finite_width_beta(widths)
    drift = float(np.log(widths[-1] / widths[0]))
    return drift - FIRST_ORDER_VARIANCE * beta / 2, FIRST_ORDER_VARIANCE * beta


def sample_relu_log_norm(widths: Sequence[int], draws: int, seed: int = 0,
                         backward: bool = False) -> np.ndarray:
    """Draws of the exact law of :func:`relu_log_norm_moments` (or, ``backward=True``,
    :func:`relu_backward_log_norm_moments`) over the networks that are alive: per layer
    k ~ Binomial(units, ½) given k ≥ 1, then log((2/fan_in) χ²_k).  No matrix is drawn: a
    sample of the prediction, for tail fractions that the moments do not give.

    Args:
        widths: as the moments function it samples.
        draws: number of samples.
        seed: NumPy generator seed.
        backward: the backward law (units = fan_in = n_a … n_(b−1)).

    Returns:
        (draws,) float64 log ratios.

    References:
        Hanin & Nica (2019): module docstring.
    """
    widths = _check_widths(widths)
    rng = np.random.default_rng(seed)
    pairs = ([(n, n) for n in widths[:-1]] if backward
             else list(zip(widths[:-1], widths[1:])))
    total = np.zeros(int(draws))
    for fan_in, units in pairs:
        counts = rng.binomial(units, 0.5, size=total.size)
        dead = counts == 0
        while dead.any():  # k ≥ 1: redraw the dead layers (probability 2^−units each)
            counts[dead] = rng.binomial(units, 0.5, size=int(dead.sum()))
            dead = counts == 0
        total += np.log(2.0 / fan_in) + np.log(rng.chisquare(counts))
    return total
