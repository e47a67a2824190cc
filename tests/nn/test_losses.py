"""The "linear" loss ⟨y, t⟩: an output cotangent independent of the network.

References: the closed form of the top layer's back-propagated signal, and mean-field theory
(for ReLU, E‖δ_l‖² = (σ_w²/2) E‖δ_{l+1}‖² exactly when the output cotangent does not depend
on the forward pass — Hanin 2018 — which the MSE residual y − t violates).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy import MLPSpec, Sweep, gradient_norms, sample_params
from gradstudy.engine import run_sweep_arrays
from gradstudy.errors import ConfigError


def test_linear_loss_top_layer_closed_form():
    """δ_L = (W_out t_b / B) ⊙ φ'(h_L) per example: ‖δ_L‖ by hand (float64)."""
    spec = MLPSpec(width=8, depth=3, activation="tanh", sigma_w=1.3, dtype="float64")
    with jax.enable_x64(True):
        params = sample_params(spec, jax.random.PRNGKey(0))
        x = jax.random.normal(jax.random.PRNGKey(1), (5, 8), jnp.float64)
        t = jax.random.normal(jax.random.PRNGKey(2), (5, 10), jnp.float64)
        out = gradient_norms(spec, params, x, t, (3,), loss="linear")
        h = x @ params["input_layer"]["dense"]["kernel"] + params["input_layer"]["dense"]["bias"]
        for layer in range(2):
            w = params["hidden"]["dense"]["kernel"][layer]
            h = jnp.tanh(h) @ w + params["hidden"]["dense"]["bias"][layer]
        w_out = params["readout"]["dense"]["kernel"]
        delta = (t @ w_out.T) / 5 * (1 - jnp.tanh(h) ** 2)
        np.testing.assert_allclose(out["backprop_norm"][0, 2], jnp.linalg.norm(delta), rtol=1e-12)
        mse = gradient_norms(spec, params, x, t, (3,))
        assert abs(float(mse["backprop_norm"][0, 2]) - float(jnp.linalg.norm(delta))) > 1e-3


def test_relu_linear_loss_matches_mean_field_mse_does_not():
    """ReLU, He init (χ = 1), width 128, depth 16, 64 seeds: with the independent cotangent,
    ½ log10 mean(‖δ_1‖²/‖δ_L‖²) is 0 within 3 standard errors; with MSE it is above by the
    readout-residual correlation (> 3 SE)."""
    spec = MLPSpec(width=128, depth=16, activation="relu", init="he_normal", dtype="float64")
    result = {}
    for loss in ("linear", "mse"):
        out = run_sweep_arrays(Sweep(points=[spec], depths=(16,), seeds=64, batch=8,
                                     loss=loss), progress=False)
        bp = out["backprop_norm"][0, :, 0]
        r = (bp[:, 0] / bp[:, -1]) ** 2
        excess = 0.5 * np.log10(r.mean())
        se = 0.5 * r.std(ddof=1) / np.sqrt(r.size) / r.mean() / np.log(10)
        result[loss] = (excess, se)
    excess, se = result["linear"]
    assert abs(excess) < 3 * se, result
    excess, se = result["mse"]
    assert excess > 3 * se, result


def test_unknown_loss_is_refused():
    with pytest.raises(ConfigError, match="^loss: unknown value 'l1'; allowed: mse, linear"):
        Sweep(points=[MLPSpec(width=4, depth=2)], depths=(2,), loss="l1")
