"""The CNN isometry probe against an independent reference: every conv layer written out as
a dense (length·C × length·C) circular matrix in float64 NumPy, the Jacobian as their
explicit product with the tanh derivatives, the back-propagated vectors as Jᵀu."""

import jax
import numpy as np
import pytest

from gradstudy.engine import cnn_isometry, seed_keys
from gradstudy.errors import ConfigError
from gradstudy.families.cnn import CNNSpec, isometry_probes, probe_draws


def _dense_conv(kernel, length, padding):
    """The (length·C_in, length·C_out) matrix M with y = x M (x, y flattened position-major):
    y_p = Σ_j x_(p+j−P) W_j, circular or zero beyond the ends."""
    k, c_in, c_out = kernel.shape
    half = (k - 1) // 2
    m = np.zeros((length * c_in, length * c_out))
    for p in range(length):
        for j in range(k):
            src = p + j - half
            if padding == "circular":
                src %= length
            elif not 0 <= src < length:
                continue
            m[src * c_in:(src + 1) * c_in, p * c_out:(p + 1) * c_out] += kernel[j]
    return m


def _reference(spec, kernels, biases, h0, u):
    """‖δ_l‖² (l = 0..L) and the Jacobians ∂h_d/∂h_0 (d = 1..L), float64."""
    kernels, biases = np.asarray(kernels, float), np.asarray(biases, float)
    h, jac, jacobians, layer_maps = np.asarray(h0, float).reshape(-1), None, [], []
    for w, b in zip(kernels, biases):
        m = _dense_conv(w, spec.length, spec.padding)
        z = h @ m + np.tile(b, spec.length)
        layer = m * (1 - np.tanh(z) ** 2)[None, :]  # ∂h_l/∂h_(l−1) as a right factor
        layer_maps.append(layer)
        jac = layer if jac is None else jac @ layer
        jacobians.append(jac.T)  # ∂h_d/∂h_0 with outputs as rows
        h = np.tanh(z)
    delta = np.asarray(u, float).reshape(-1)
    norms = [delta @ delta]
    for layer in reversed(layer_maps):
        delta = layer @ delta
        norms.append(delta @ delta)
    return np.asarray(norms[::-1]), jacobians


@pytest.mark.parametrize("init", ["delta_orthogonal", "gaussian"])
@pytest.mark.parametrize("padding", ["circular", "same"])
def test_probe_matches_dense_float64(init, padding):
    spec = CNNSpec(depth=5, channels=3, kernel_size=3, length=5, activation="tanh",
                   init=init, sigma_w=1.3, padding=padding)
    depths = (1, 3, 5)
    out = jax.device_get(isometry_probes(spec, 2, 0.2, 0.7, base_seed=3,
                                         jacobian_depths=depths))
    for s, key in enumerate(seed_keys(3, 2)):
        kernels, biases, h0, u = probe_draws(spec, key, 0.2, 0.7)
        assert np.allclose(np.mean(np.asarray(h0) ** 2, axis=-1), 0.7, rtol=1e-5)
        norms, jacobians = _reference(spec, kernels, biases, h0, u)
        np.testing.assert_allclose(out["backprop_sq"][s], norms, rtol=2e-4)
        for i, d in enumerate(depths):
            sv2 = np.sort(np.linalg.svd(jacobians[d - 1], compute_uv=False) ** 2)
            np.testing.assert_allclose(out["sv2"][s, i], sv2, rtol=2e-4, atol=1e-6)


def test_kernels_are_the_family_init():
    """Delta-orthogonal kernels: only the centre tap, σ_w times an orthogonal matrix."""
    spec = CNNSpec(depth=3, channels=4, kernel_size=3, length=4, activation="tanh",
                   init="delta_orthogonal", sigma_w=1.5, padding="circular")
    kernels = np.asarray(probe_draws(spec, jax.random.PRNGKey(0), 0.0, 1.0)[0])
    assert np.all(kernels[:, [0, 2]] == 0)
    for w in kernels[:, 1]:
        np.testing.assert_allclose(w @ w.T, 1.5**2 * np.eye(4), atol=1e-5)


def test_cached_dataset_and_refusals(tmp_path):
    spec = CNNSpec(depth=4, channels=2, kernel_size=3, length=3, activation="tanh",
                   init="gaussian", padding="circular")
    ds = cnn_isometry(spec, 0.1, 0.5, seeds=2, jacobian_depths=(2, 4), cache_dir=tmp_path)
    again = cnn_isometry(spec, 0.1, 0.5, seeds=2, jacobian_depths=(2, 4), cache_dir=tmp_path)
    assert ds.backprop_sq.dims == ("seed", "layer") and ds.sizes["layer"] == 5
    assert ds.sv2.shape == (2, 2, 6)
    np.testing.assert_array_equal(ds.sv2.values, again.sv2.values)
    assert len(list(tmp_path.glob("cnn_isometry-*.nc"))) == 1
    with pytest.raises(ConfigError, match="jacobian_depths"):
        cnn_isometry(spec, 0.1, 0.5, seeds=2, jacobian_depths=(5,))
    with pytest.raises(ConfigError, match="plain"):
        cnn_isometry(spec.replace(block="residual"), 0.1, 0.5, seeds=2)
