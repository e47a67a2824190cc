"""Curvature of a loss at a point: the top Hessian eigenvalue by power iteration on
Hessian-vector products (forward-over-reverse), never forming the Hessian.

Gradient descent with step size η on the quadratic model of the loss at w multiplies the
component along the Hessian eigenvector of λ by (1 − ηλ): it diverges when η > 2/λ_max.

References:
    Pearlmutter (1994), Fast exact multiplication by the Hessian.
    LeCun, Simard & Pearlmutter (1993), Automatic learning rate maximization by on-line
    estimation of the Hessian's eigenvectors (η < 2/λ_max).
    Cohen et al. (2021), Gradient descent on neural networks typically occurs at the edge
    of stability.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gradstudy._validate import check_int


def hvp(loss, params, vector):
    """H(params)·vector for a scalar ``loss(params)`` (pytrees of the same structure)."""
    return jax.jvp(jax.grad(loss), (params,), (vector,))[1]


def top_hessian_eigenvalue(loss, params, key: jax.Array, iterations: int = 100):
    """The largest-magnitude eigenvalue of the Hessian of ``loss`` at ``params`` and its
    eigenvector (power iteration from a random start, ``iterations`` HVPs in one
    ``lax.fori_loop``; jit/vmap-safe).

    Returns:
        ``(eigenvalue, residual)``: the Rayleigh quotient vᵀHv and ‖Hv − λv‖ of the final
        unit vector v (small when converged).
    """
    iterations = check_int("iterations", iterations, 1, 10**6)
    flat, unravel = ravel_pytree(params)

    def matvec(v):
        return ravel_pytree(hvp(loss, params, unravel(v)))[0]

    v = jax.random.normal(key, flat.shape, flat.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        w = matvec(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, iterations, body, v)
    hv = matvec(v)
    eigenvalue = jnp.vdot(v, hv)
    return eigenvalue, jnp.linalg.norm(hv - eigenvalue * v)
