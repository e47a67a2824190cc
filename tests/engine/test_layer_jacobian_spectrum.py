"""layer_jacobian_spectrum (the layer Jacobians' mean singular value per seed, cached)
against a NumPy forward pass of the same networks, per seed, and its cache."""

import jax
import numpy as np
import pytest

import gradstudy.engine._spectra as spectra
from gradstudy import MLPSpec, RNNSpec
from gradstudy.engine import layer_jacobian_spectrum
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import measured_jacobian_mean_singular_values, sample_network

SPEC = MLPSpec(width=5, depth=3, activation="tanh", sigma_w=1.4, sigma_b=0.3)


def _numpy_reference(spec, seed_key, batch):
    """Mean singular value of J_l = W_lᵀ diag(tanh'(h_(l−1))), l = 2..depth, in float64."""
    params, x, _ = (jax.tree.map(np.asarray, a) for a in sample_network(spec, seed_key, batch))
    h = (np.asarray(x, float) @ params["input_layer"]["dense"]["kernel"]
         + params["input_layer"]["dense"]["bias"])
    svals = []
    for layer in range(spec.depth - 1):
        k = params["hidden"]["dense"]["kernel"][layer].astype(float)
        b = params["hidden"]["dense"]["bias"][layer].astype(float)
        svals += [np.linalg.svd(k.T * (1 - np.tanh(h[n]) ** 2)[None, :], compute_uv=False)
                  for n in range(batch)]
        h = np.tanh(h) @ k + b
    return np.mean(svals)


def test_layer_jacobian_spectrum_matches_numpy_per_seed(tmp_path):
    seeds, batch, base = 3, 2, 7
    ds = layer_jacobian_spectrum(SPEC, seeds, batch, base_seed=base, cache_dir=tmp_path)
    got = ds.mean_singular_value.values
    assert ds.mean_singular_value.dims == ("seed",) and got.dtype == np.float64
    for s in range(seeds):
        key = jax.random.fold_in(jax.random.PRNGKey(base), s)
        assert got[s] == pytest.approx(_numpy_reference(SPEC, key, batch), rel=1e-5)
    # exactly the family's measurement: the cache adds nothing to the numbers
    np.testing.assert_array_equal(
        got, measured_jacobian_mean_singular_values(SPEC, seeds, batch, base_seed=base))


def test_layer_jacobian_spectrum_is_cached_by_what_changes_it(tmp_path, monkeypatch):
    calls = []

    def fake(spec, seeds, batch, base_seed):  # the cache's keys, not the numbers
        calls.append((spec, seeds, batch, base_seed))
        return np.arange(seeds, dtype=float) + spec.sigma_w + 10 * batch + 100 * base_seed

    monkeypatch.setattr(spectra, "measured_jacobian_mean_singular_values", fake)
    first = layer_jacobian_spectrum(SPEC, 2, 2, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("jacobians-*.nc"))
    assert len(files) == 1
    again = layer_jacobian_spectrum(SPEC, 2, 2, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.mean_singular_value.values,
                                  first.mean_singular_value.values)
    assert sorted(tmp_path.glob("jacobians-*.nc")) == files and len(calls) == 1
    for changed in [dict(spec=SPEC.replace(sigma_w=1.3)), dict(seeds=3), dict(batch=3),
                    dict(base_seed=1)]:
        args = {**dict(spec=SPEC, seeds=2, batch=2), **changed}
        layer_jacobian_spectrum(**args, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("jacobians-*.nc"))) == 5 and len(calls) == 5


def test_layer_jacobian_spectrum_needs_an_mlp():
    with pytest.raises(ConfigError, match="MLPSpec"):
        layer_jacobian_spectrum(RNNSpec(cell="tanh", hidden=4, length=3), 2, 2)
