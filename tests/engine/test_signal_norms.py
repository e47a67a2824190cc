"""signal_log_norms: against a per-seed NumPy loop in float64 (forward and hand-written
backward), against a batch-1 sweep of the same seeds, dead layers as −inf, and the cache."""

import jax
import numpy as np
import pytest

from gradstudy import MLPSpec
from gradstudy._seeds import seed_keys
from gradstudy.engine import Sweep, run_cached
from gradstudy.engine._signal_norms import (
    chunk_size,
    log_sq_norm,
    measured_signal_log_norms,
    signal_log_norms,
)
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import sample_network

SPEC = MLPSpec(width=6, depth=4, in_dim=5, out_dim=3, activation="relu", init="he_normal",
               sigma_b=0.3, dtype="float64")


def _reference(spec, key, batch):
    """One network in NumPy: forward x_l = relu(h_l), backward of the mean ⟨y, t⟩."""
    params, x, t = (np.asarray(a) if not isinstance(a, dict) else a
                    for a in sample_network(spec, key, batch))
    x = np.asarray(x, float)
    layers = [params["input_layer"]["dense"]]
    hidden = params["hidden"]["dense"]
    layers += [{k: np.asarray(v[i]) for k, v in hidden.items()} for i in range(spec.depth - 1)]
    hs, a = [], x
    for p in layers:
        h = a @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
        hs.append(h)
        a = np.maximum(h, 0)
    out = np.asarray(params["readout"]["dense"]["kernel"])
    ct = (np.asarray(t) @ out.T) / batch  # ∂(mean ⟨y, t⟩)/∂relu(h_L)
    deltas = []
    for l in reversed(range(spec.depth)):
        delta = ct * (hs[l] > 0)
        deltas.append(delta)
        ct = delta @ np.asarray(layers[l]["kernel"]).T
    deltas = [ct] + deltas[::-1]  # ∂L/∂x first
    forward = [np.sum(x**2, 1)] + [np.sum(np.maximum(h, 0) ** 2, 1) for h in hs]
    backward = [np.sum(d**2, 1) for d in deltas]
    return np.log(np.stack(forward, 1)), np.log(np.stack(backward, 1))


def test_matches_a_per_seed_numpy_loop():
    seeds, batch = 5, 3
    forward, backward = measured_signal_log_norms(SPEC, seeds, batch, base_seed=7)
    assert forward.shape == backward.shape == (seeds, batch, SPEC.depth + 1)
    with jax.enable_x64(True):
        refs = [_reference(SPEC, key, batch) for key in seed_keys(7, seeds)]
    for s, (ref_f, ref_b) in enumerate(refs):
        np.testing.assert_allclose(forward[s], ref_f, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(backward[s], ref_b, rtol=1e-10, atol=1e-10)


def test_backward_equals_a_batch_one_sweep_of_the_same_seeds():
    spec = MLPSpec(width=8, depth=5, in_dim=8, activation="relu", init="he_normal",
                   dtype="float64")
    ds = run_cached(Sweep(points=[spec], depths=(5,), seeds=6, batch=1, loss="linear"),
                    None, progress=False)
    _, backward = measured_signal_log_norms(spec, 6, 1)
    sweep = 2 * np.log(ds.backprop_norm.values[0, :, 0, :])  # (seed, layer 1..5)
    np.testing.assert_allclose(backward[:, 0, 1:], sweep, rtol=1e-9, atol=1e-9)
    # the forward pre-activation second moment of the sweep is ‖h_l‖²/n; relu(h) ≤ h² sum
    q = ds.preact_q.values[0]  # (seed, layer)
    forward, _ = measured_signal_log_norms(spec, 6, 1)
    assert np.all(forward[:, 0, 1:] <= np.log(q * spec.width) + 1e-9)


def test_chunks_do_not_change_the_numbers(monkeypatch):
    import gradstudy.engine._signal_norms as module

    whole = measured_signal_log_norms(SPEC, 7, 2)
    monkeypatch.setattr(module, "CHUNK_BYTES", 1)  # one network per chunk
    assert chunk_size(SPEC, 7, 2) == 1
    chunked = measured_signal_log_norms(SPEC, 7, 2)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_log_sq_norm_zero_tiny_and_infinite():
    v = np.array([[0.0, 0.0], [1e-30, 0.0], [3.0, 4.0], [np.inf, 1.0]], np.float32)
    out = np.asarray(log_sq_norm(v))
    assert out[0] == -np.inf
    assert out[1] == pytest.approx(2 * np.log(1e-30), rel=1e-6)  # no underflow of squares
    assert out[2] == pytest.approx(np.log(25.0), rel=1e-6)
    assert out[3] == np.inf


def test_dead_network_is_minus_inf_not_an_error():
    # width 1: each layer is dead with probability 1/2; some of 16 networks die
    spec = MLPSpec(width=1, depth=6, in_dim=1, activation="relu", init="he_normal",
                   dtype="float64")
    forward, backward = measured_signal_log_norms(spec, 16, 1)
    dead = np.isneginf(forward[:, 0, -1])
    assert dead.any() and not dead.all()
    assert np.all(np.isneginf(backward[dead, 0, 1:]))


def test_cached_and_validated(tmp_path):
    ds = signal_log_norms(SPEC, 3, 2, cache_dir=tmp_path)
    again = signal_log_norms(SPEC, 3, 2, cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.forward_log_sq_norm.values,
                                  again.forward_log_sq_norm.values)
    assert ds.forward_log_sq_norm.dims == ("seed", "example", "layer")
    assert len(list(tmp_path.glob("signal_norms-*.nc"))) == 1
    with pytest.raises(ConfigError):
        signal_log_norms(SPEC.replace(norm="layernorm"), 3)
    with pytest.raises(ConfigError):
        signal_log_norms(SPEC, 3, loss="hinge")
