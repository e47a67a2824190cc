"""Mean-field reference for a recurrent step: the per-step rate √χ₁ of an untied layer.

A vanilla recurrent step h_t = φ(W h_(t−1) + U x_t) with W = ρQ and inputs of variance
``input_variance`` looks, to mean-field theory, like one layer of a deep network with
σ_w² = ρ² and σ_b² = the input's variance (the input term is independent of the state and
adds its variance, as a bias would).  At the layer's fixed point q* the squared gradient
norm is multiplied by χ₁ per layer, so the gradient norm by √χ₁ per step.

This is a *reference*, not a prediction for recurrent networks: their weights are tied
across time and the norm of ∂s_T/∂s_t that matters for exploding gradients is the largest
singular value, neither of which mean field describes.

References:
    Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli (2016), Exponential expressivity in deep
    neural networks through transient chaos.
    Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), Deep information propagation.
"""

from __future__ import annotations

import numpy as np

from gradstudy.theory._mean_field import chi1, fixed_point_q


def mean_field_rate(rhos, input_variance: float = 1.0, activation: str = "tanh"
                    ) -> np.ndarray:
    """√χ₁(q*) of a layer with σ_w² = ρ² and σ_b² = ``input_variance``, in float64.

    Args:
        rhos: recurrent scales ρ (any shape).
        input_variance: variance the input adds to each pre-activation (σ_b²).
        activation: a registered activation name (``"tanh"`` for the tanh RNN).

    Returns:
        float64 array of the shape of ``rhos``: √(ρ² E[φ'(√q* z)²]) with q* the fixed point
        of q = ρ² E[φ(√q z)²] + σ_b² (:func:`gradstudy.theory.fixed_point_q`,
        :func:`gradstudy.theory.chi1`).

    References:
        Poole et al. (2016) (the length map and q*); Schoenholz et al. (2017) (χ₁).
    """
    rho2 = np.asarray(rhos, float) ** 2
    q = fixed_point_q(activation, rho2, input_variance, dtype="float64")
    return np.sqrt(np.asarray(chi1(activation, q, rho2, dtype="float64")))
