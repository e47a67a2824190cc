"""Rates through time, from what a sweep of the recurrent family records.

A sweep (:data:`gradstudy.families.rnn.THROUGH_TIME`) records ``jacobian_norm``
‖∂s_T/∂s_t‖₂ along the lag k = T − t (k = 0..T, ``jacobian_norm[..., 0] = 1``) and the
largest singular value λ₁ = ‖W‖₂ of the recurrent kernels (``recurrent_top_singular``).
For a vanilla cell ∂s_T/∂s_t = Π_τ diag φ'(z_τ) W, so ‖∂s_T/∂s_t‖₂ ≤ (γ λ₁)^k with
γ = sup|φ'| (1 for tanh and ReLU): these functions turn the records into the per-step rate
and the ratio to that bound.  Plain NumPy on arrays (an ``xarray.DataArray`` works too), so
a study computes its claims from a loaded sweep without recompiling anything.

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks (Sec. 2.1: the bound and the conditions for vanishing and exploding).
"""

from __future__ import annotations

import numpy as np


def per_step_rate(jacobian_norm) -> np.ndarray:
    """The per-step rate (‖∂s_T/∂s_0‖₂)^(1/T) of every network.

    Args:
        jacobian_norm: (..., lag) ‖∂s_T/∂s_t‖₂ over the T + 1 lags k = 0..T (a sweep's
            ``jacobian_norm``, e.g. of dims (point, seed, lag)).

    Returns:
        (...) the geometric mean factor per step over the whole sequence: > 1 exploding,
        < 1 vanishing.
    """
    jac = np.asarray(jacobian_norm)
    return jac[..., -1] ** (1.0 / (jac.shape[-1] - 1))


def pascanu_bound_ratio(jacobian_norm, recurrent_top_singular) -> np.ndarray:
    """‖∂s_T/∂s_t‖₂ / λ₁^k at every lag k: at most 1 for a vanilla cell with γ = 1.

    Args:
        jacobian_norm: (..., lag) ‖∂s_T/∂s_t‖₂ over the lags k = 0..T.
        recurrent_top_singular: (...) λ₁ = ‖W‖₂ of each network.

    Returns:
        (..., lag) the ratio to Pascanu et al.'s bound (γ λ₁)^k with γ = 1 (tanh, ReLU,
        linear cells).

    References:
        Pascanu, Mikolov & Bengio (2013), Sec. 2.1.
    """
    jac = np.asarray(jacobian_norm)
    lam = np.asarray(recurrent_top_singular)[..., None]
    return jac / lam ** np.arange(jac.shape[-1])
