"""Measured through time: ‖∂L/∂s_t‖ at every step, ‖∂s_T/∂s_t‖₂, and the recurrent
kernels' spectra, for one recurrent network (:func:`through_time`).

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradstudy._numerics import safe_norm
from gradstudy._validate import (
    check_choice,
    check_int,
)
from gradstudy.families.rnn._model import RecurrentNet, _paths, leaf_kind, recurrent_kernels
from gradstudy.families.rnn._spec import RNNSpec
from gradstudy.nn._losses import LOSS_FUNCTIONS, PROBE_LOSSES


# --------------------------------------------------------------------------------- probes
def spectral_norm(m: jax.Array) -> jax.Array:
    """Largest singular value of each matrix (..., a, b), computed on m / max|m| so that
    neither tiny nor huge entries under- or overflow; 0 for a zero matrix."""
    scale = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe = jnp.where((scale > 0) & jnp.isfinite(scale), scale, jnp.ones_like(scale))
    top = jnp.linalg.svd(m / safe[..., None, None], compute_uv=False)[..., 0]
    return jnp.where(scale > 0, top * safe, jnp.where(jnp.isfinite(scale), 0.0, jnp.nan))


def spectral_radius(w: jax.Array, squarings: int = 40) -> jax.Array:
    """max |λ| of a square matrix by Gelfand's formula ρ(W) = lim ‖W^k‖^(1/k), k = 2^m.

    W is squared m times with renormalisation, A_0 = W/‖W‖, A_(j+1) = A_j²/‖A_j²‖, so
    log ‖W^(2^m)‖ / 2^m = log ‖W‖ + Σ_j 2^−(j+1) log ‖A_j²‖ (Frobenius norms) without
    overflow; the truncation error, O(log(cond)/2^m), is far below rounding at m = 40.
    Matrix products only: jit- and vmap-safe on every backend (``jnp.linalg.eigvals`` is
    not implemented on every accelerator).  0 for a nilpotent matrix.
    """
    norm0 = safe_norm(w)

    def body(j, state):
        a, log_rate, zero = state
        sq = a @ a
        n = jnp.sqrt(jnp.sum(jnp.square(sq)))
        zero = zero | (n == 0)
        n_safe = jnp.where(n > 0, n, 1.0)
        weight = jnp.exp2(-(j + 1.0)).astype(w.dtype)
        return sq / n_safe, log_rate + weight * jnp.log(n_safe), zero

    a0 = w / jnp.where(norm0 > 0, norm0, 1.0)
    _, log_rate, zero = jax.lax.fori_loop(0, squarings, body,
                                          (a0, jnp.zeros((), w.dtype), norm0 == 0))
    return jnp.where(zero, 0.0, norm0 * jnp.exp(log_rate))


def state_jacobians(spec: RNNSpec, params: dict, x: jax.Array) -> jax.Array:
    """State-to-state Jacobians of every example: ``J[k, s] = ∂s_T/∂s_(T−k)``.

    Row i of every example's Jacobian at every time is one VJP of the final state with the
    cotangent e_i (the examples are independent); the ``state_size`` VJPs are vmapped.

    Args:
        spec: the network.
        params: its parameters.
        x: (n, T, in_dim) inputs.

    Returns:
        (T+1, n, state, state) Jacobians along the lag k = T − t (k = 0 is the identity).
        Memory O(T·n·state²).
    """
    n, T, size = x.shape[0], x.shape[1], spec.state_size
    dtype = jnp.dtype(spec.dtype)
    net = RecurrentNet(spec)

    def final(taps):
        return net.apply({"params": params}, x, taps, final_state=True)

    _, vjp = jax.vjp(final, jnp.zeros((T + 1, n, size), dtype))
    rows = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, (n, size)))[0])(jnp.eye(size, dtype=dtype))
    return jnp.transpose(rows, (1, 2, 0, 3))[::-1]  # (lag, example, i, j)


THROUGH_TIME = {
    "state_grad_norm": (("lag",), "‖∂L/∂s_t‖ over batch and state, lag k = T − t "
                                  "(k = T is the initial state)"),
    "jacobian_norm": (("lag",), "‖∂s_T/∂s_t‖₂ (largest singular value), mean over the first "
                                "jacobian_samples examples, lag k = T − t"),
    "input_weight_grad_norm": ((), "‖∂L/∂U‖_F over the input kernels (all gates)"),
    "recurrent_weight_grad_norm": ((), "‖∂L/∂W‖_F over the recurrent kernels (all gates)"),
    "bias_grad_norm": ((), "‖∂L/∂b‖ over the cell's biases"),
    "readout_grad_norm": ((), "‖∂L/∂(readout kernel, bias)‖"),
    "recurrent_top_singular": ((), "λ₁ = ‖W‖₂ (largest over the gates' W)"),
    "recurrent_spectral_radius": ((), "max|eig W| of a vanilla cell (NaN for gated cells)"),
    "loss": ((), "loss at initialization"),
}


def through_time(spec: RNNSpec, params: dict, x: jax.Array, targets: jax.Array,
                 loss: str = "mse", jacobian_samples: int = 4) -> dict:
    """How the gradient flows back through time in one network on one batch.

    With states s_t (t = 0..T, s_0 = 0) and lag k = T − t:

    * ``state_grad_norm[k]`` = ‖∂L/∂s_t‖_F over batch and state (one ``jax.grad`` with
      respect to the taps);
    * ``jacobian_norm[k]`` = ‖∂s_T/∂s_t‖₂, the largest singular value of the
      (state × state) Jacobian, averaged over the first ``jacobian_samples`` examples
      (``jacobian_norm[0]`` = 1).  For vanilla cells
      ∂s_T/∂s_t = Π_τ diag φ'(z_τ) W, so ‖·‖₂ ≤ (γ λ₁)^k (Pascanu et al. 2013);
    * gradient norms of the parameters by kind (input / recurrent kernels, cell biases,
      readout);
    * ``recurrent_top_singular`` λ₁ = ‖W‖₂ (the largest over the gates) and, for vanilla
      cells, ``recurrent_spectral_radius`` (:func:`spectral_radius`; NaN for gated cells);
    * ``loss``.

    Pure and jit/vmap-safe (``jacobian_samples`` and ``loss`` are static).

    Args:
        spec: the network.
        params: its parameters (scaled: :func:`sample_params`).
        x: (batch, T, in_dim) inputs.
        targets: (batch, out_dim), or (batch, T, out_dim) for ``readout="sequence"``.
        loss: "mse" or "linear" (:data:`gradstudy.nn.PROBE_LOSSES`).
        jacobian_samples: examples whose Jacobians are measured (at most the batch).

    Returns:
        dict of arrays, named and shaped as :data:`THROUGH_TIME` (``lag`` has T+1 entries).

    References:
        Pascanu, Mikolov & Bengio (2013); Le, Jaitly & Hinton (2015); Hochreiter &
        Schmidhuber (1997); Cho et al. (2014).
    """
    loss = check_choice("loss", loss, PROBE_LOSSES)
    jacobian_samples = check_int("jacobian_samples", jacobian_samples)
    batch, T = x.shape[0], x.shape[1]
    dtype = jnp.dtype(spec.dtype)
    net = RecurrentNet(spec)
    loss_fn = LOSS_FUNCTIONS[loss]

    def objective(params, taps):
        return loss_fn(net.apply({"params": params}, x, taps), targets)

    taps = jnp.zeros((T + 1, batch, spec.state_size), dtype)
    value, (g_params, g_taps) = jax.value_and_grad(objective, argnums=(0, 1))(params, taps)
    out = {"state_grad_norm": jax.vmap(safe_norm)(g_taps)[::-1]}
    jac = state_jacobians(spec, params, x[:min(jacobian_samples, batch)])
    out["jacobian_norm"] = jnp.mean(spectral_norm(jac), axis=1)
    by_kind: dict[str, list] = {}
    for name, g in _paths(g_params).items():
        by_kind.setdefault(leaf_kind(name), []).append(safe_norm(g))
    for kind, key in (("input", "input_weight_grad_norm"),
                      ("recurrent", "recurrent_weight_grad_norm"),
                      ("bias", "bias_grad_norm"), ("readout", "readout_grad_norm")):
        out[key] = safe_norm(jnp.stack(by_kind[kind]))
    ws = recurrent_kernels(params)
    out["recurrent_top_singular"] = jnp.max(spectral_norm(jnp.stack(ws)))
    out["recurrent_spectral_radius"] = (spectral_radius(ws[0]) if spec.kind == "elman"
                                        else jnp.asarray(jnp.nan, dtype))
    out["loss"] = value
    return out
