"""Why a value is not a normal number: underflow, overflow, non-finite forward pass.

References are float64 runs of the same networks (where float32 underflows or overflows,
float64 does not) and the forward statistics themselves.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy import MLPSpec, Sweep, gradient_norms, sample_params, status
from gradstudy.engine import run_cached, run_sweep_arrays
from gradstudy.errors import ConfigError

GRADS = ("weight_grad_norm", "bias_grad_norm", "backprop_norm")


def _probe(spec, depths, batch=4, seed=0, in_float64=False):
    """gradient_norms of a float32 network; ``in_float64``: the same weights and data (cast)
    computed in float64, the reference where float32 under- or overflows."""
    k_p, k_x, k_t = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = sample_params(spec, k_p)
    x = jax.random.normal(k_x, (batch, spec.input_dim))
    t = jax.random.normal(k_t, (batch, spec.out_dim))
    if not in_float64:
        return jax.device_get(gradient_norms(spec, params, x, t, depths))
    with jax.enable_x64(True):
        params, x, t = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, x, t))
        return jax.device_get(gradient_norms(spec.replace(dtype="float64"), params, x, t,
                                             depths))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_overflowed_forward_pass_gives_nan_not_zero(activation):
    """The issue's case: relu, Gaussian σ_w=3, float32, depth 200. q_l grows ×4.5 a layer and
    overflows near layer 58; relu'(inf) = 0 used to turn the NaN cotangent into exact zeros
    at all layers. Now every gradient of a network whose forward pass overflowed is NaN with
    status FORWARD_NONFINITE, and the shallow network (depth 10) is finite and agrees with
    float64."""
    spec = MLPSpec(width=16, depth=200, activation=activation, sigma_w=3.0, dtype="float32")
    out = _probe(spec, (10, 200))
    q = out["preact_q"]
    first_bad = int(np.argmax(~np.isfinite(q)))
    assert 30 < first_bad < 120 and not np.isfinite(q[-1])
    for name in GRADS:
        assert np.all(np.isnan(out[name][1])), name
        assert np.all(out[name + "_status"][1] == status.FORWARD_NONFINITE), name
        assert np.all(out[name + "_status"][0, :10] == status.FINITE), name
        assert np.all(out[name + "_status"][0, 10:] == status.ABSENT), name
    for name in ("input_grad_norm", "readout_grad_norm"):
        assert np.isnan(out[name][1]) and out[name + "_status"][1] == status.FORWARD_NONFINITE
    assert out["loss_status"][1] == status.FORWARD_NONFINITE
    # forward statistics: finite up to the overflow; then q_l = mean(h²) overflows while h_l
    # is still finite ("overflow"), and once h itself is inf every later layer is
    # "forward_nonfinite"
    codes = out["preact_q_status"]
    assert np.all(codes[:first_bad] == status.FINITE)
    assert codes[first_bad] == status.OVERFLOW
    assert set(codes[first_bad:]) == {status.OVERFLOW, status.FORWARD_NONFINITE}
    assert np.all(np.diff(codes[first_bad:]) >= 0)
    ref = _probe(spec, (10, 200), in_float64=True)
    for name in GRADS:
        np.testing.assert_allclose(out[name][0, :10], ref[name][0, :10], rtol=2e-4)


def test_underflow_is_zero_with_finite_forward_pass():
    """tanh at σ_w = 0.3: ‖δ_l‖ shrinks ×~0.3 a layer and flushes to 0 in float32 well before
    layer 1 of a depth-120 net, while the forward pass stays finite: status UNDERFLOW; the
    float64 values there are tiny but non-zero (so 0 is underflow, not an exact zero)."""
    spec = MLPSpec(width=16, depth=120, activation="tanh", sigma_w=0.3, dtype="float32")
    out = _probe(spec, (120,))
    bp, codes = out["backprop_norm"][0], out["backprop_norm_status"][0]
    assert np.all(np.isfinite(out["preact_q"]))
    zero = bp == 0
    assert zero.any() and not zero[-1]
    np.testing.assert_array_equal(codes[zero], status.UNDERFLOW)
    np.testing.assert_array_equal(codes[~zero], status.FINITE)
    ref = _probe(spec, (120,), in_float64=True)["backprop_norm"][0]
    assert np.all(ref[zero] > 0) and np.all(ref[zero] < np.finfo(np.float32).tiny * 64)


def test_backward_overflow_with_finite_forward_pass():
    """φ = sin at σ_w = 100: the forward pass is bounded (|h| ≲ a few σ_w) while
    χ = σ_w² E[cos²] ≈ σ_w²/2 = 5000 per layer makes ‖δ_l‖ overflow float32 within ~20
    layers: status OVERFLOW, not FORWARD_NONFINITE."""
    spec = MLPSpec(width=16, depth=40, activation=jnp.sin, sigma_w=100.0, dtype="float32")
    out = _probe(spec, (40,))
    assert np.all(np.isfinite(out["preact_q"]))
    bp, codes = out["backprop_norm"][0], out["backprop_norm_status"][0]
    bad = ~np.isfinite(bp)
    assert bad.any() and not bad[-1]
    np.testing.assert_array_equal(codes[bad], status.OVERFLOW)
    np.testing.assert_array_equal(codes[~bad], status.FINITE)


def test_status_is_stored_in_the_netcdf(tmp_path):
    spec = MLPSpec(width=32, depth=200, activation="relu", sigma_w=3.0, dtype="float32")
    ds = run_cached(Sweep(points=[spec], depths=(4, 200), seeds=2, batch=4), tmp_path,
                    progress=False)
    var = ds["backprop_norm_status"]
    assert var.dims == ds["backprop_norm"].dims
    assert ds["backprop_norm"].attrs["ancillary_variables"] == "backprop_norm_status"
    assert list(var.attrs["flag_values"]) == sorted(status.CODES)
    assert var.attrs["flag_meanings"].split() == [status.CODES[k] for k in sorted(status.CODES)]
    # depth 200: q_l grows ×4.5 a layer, so h_l itself overflows float32 near layer 118
    codes = var.values[0, :, 1]
    assert np.all(codes == status.FORWARD_NONFINITE)
    assert np.all(var.values[0, :, 0, :4] == status.FINITE)
    assert np.all(var.values[0, :, 0, 4:] == status.ABSENT)


def test_float64_spec_without_x64_is_refused():
    spec = MLPSpec(width=4, depth=2, dtype="float64")
    with pytest.raises(ConfigError, match="^dtype: .*jax_enable_x64"):
        sample_params(spec, jax.random.PRNGKey(0))
    with jax.enable_x64(True):
        params = sample_params(spec, jax.random.PRNGKey(0))
        x = jnp.ones((2, 4), jnp.float64)
        out = gradient_norms(spec, params, x, jnp.zeros((2, 10), jnp.float64), (2,))
    assert params["hidden"]["dense"]["kernel"].dtype == jnp.float64
    assert out["backprop_norm"].dtype == jnp.float64
    with pytest.raises(ConfigError, match="^dtype: "):
        gradient_norms(spec, params, x, jnp.zeros((2, 10)), (2,))


def test_sweep_records_float64_without_global_x64():
    """A sweep enables x64 itself for float64 points: values below float32's range survive."""
    spec = MLPSpec(width=8, depth=120, activation="tanh", sigma_w=0.3, dtype="float64")
    out = run_sweep_arrays(Sweep(points=[spec], depths=(120,), seeds=2, batch=4),
                           progress=False)
    assert out["backprop_norm"].dtype == np.float64
    assert np.all(out["backprop_norm"] > 0)
    assert np.min(out["backprop_norm"]) < 1e-45


def test_dead_relu_layer_is_no_path_not_underflow():
    """All ReLUs of layer 3 dead (bias −1e3): every δ_l, l ≤ 3, is exactly 0 by structure and
    ∂L/∂W_4 = 0 because its inputs are 0 — status NO_PATH, not UNDERFLOW; the layers above
    are finite, and the float64 reference is exactly 0 too."""
    spec = MLPSpec(width=8, depth=6, activation="relu", init="he_normal", sigma_b=0.5,
                   dtype="float32")
    params = sample_params(spec, jax.random.PRNGKey(0))
    bias = params["hidden"]["dense"]["bias"]  # layers 2..6; index 1 is layer 3
    params["hidden"]["dense"]["bias"] = bias.at[1].set(-1e3)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    t = jax.random.normal(jax.random.PRNGKey(2), (4, 10))
    out = jax.device_get(gradient_norms(spec, params, x, t, (6,)))
    bp, codes = out["backprop_norm"][0], out["backprop_norm_status"][0]
    np.testing.assert_array_equal(bp[:3], 0.0)
    np.testing.assert_array_equal(codes[:3], status.NO_PATH)
    np.testing.assert_array_equal(codes[3:], status.FINITE)
    wcodes = out["weight_grad_norm_status"][0]
    np.testing.assert_array_equal(wcodes[:4], status.NO_PATH)  # layer 4: inputs relu(h_3) = 0
    np.testing.assert_array_equal(wcodes[4:], status.FINITE)


def test_forward_underflow_is_underflow_not_no_path():
    """float32 ReLU, σ_w = 0.1: q_l shrinks by σ_w²/2 = 0.005 a layer, so the pre-activations
    underflow to exact zeros after ≈ 17 layers and relu'(0) = 0 stops every gradient below.
    That is underflow (float64 gives finite numbers for the same network), not a structural
    zero: once recorded as NO_PATH ("all ReLUs dead"), which hid the float64 hint."""
    spec = MLPSpec(width=16, depth=40, activation="relu", sigma_w=0.1, dtype="float32")
    params = sample_params(spec, jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 16))
    t = jax.random.normal(jax.random.PRNGKey(2), (4, 10))
    out = jax.device_get(gradient_norms(spec, params, x, t, (40,)))
    preact_zero = out["preact_q"] == 0  # (layer,): the forward pass underflowed on the way
    assert preact_zero[-1] and not preact_zero[0]
    bp, codes = out["backprop_norm"][0], out["backprop_norm_status"][0]
    assert np.all(bp == 0)
    np.testing.assert_array_equal(codes, status.UNDERFLOW)
    wcodes = out["weight_grad_norm_status"][0]
    assert not np.any(wcodes == status.NO_PATH), wcodes
    with jax.enable_x64(True):
        spec64 = spec.replace(dtype="float64")
        params64 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
        out64 = jax.device_get(gradient_norms(spec64, params64, jnp.asarray(x, jnp.float64),
                                              jnp.asarray(t, jnp.float64), (40,)))
    assert np.all(out64["backprop_norm"][0] > 0)
    np.testing.assert_array_equal(out64["backprop_norm_status"][0], status.FINITE)


def test_progress_bar_names_the_study_and_program(tmp_path, capsys):
    """With progress on (what `make figures` does), the bar says which study and which
    program it is computing; a failure here once broke every default paper run."""
    spec = MLPSpec(width=8, depth=3, activation="tanh")
    run_cached(Sweep(points=[spec, spec.replace(sigma_w=2.0)], depths=(3,), seeds=2, batch=4),
               tmp_path, progress=True, progress_label="my_study [sweep]")
    err = capsys.readouterr().err
    assert "my_study [sweep]: program 1/1 (tanh, width 8, depth 3, float32" in err
