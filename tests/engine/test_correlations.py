"""input_correlations (the cosine similarity of input pairs' pre-activations per layer,
per seed, cached) against a float64 NumPy forward pass of the same networks, seed by seed
in a Python loop; its inputs, its cache and its non-finite values."""

import jax
import numpy as np
import pytest

import gradstudy.engine._correlations as correlations
from gradstudy import MLPSpec
from gradstudy.engine import (
    correlated_pairs,
    input_correlations,
    measured_input_correlations,
    seed_keys,
)
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import sample_params

C0 = (-0.4, 0.0, 0.7)
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}


def _numpy_reference(spec, key, c0, pairs, input_q):
    """Per layer: cosine of each pair's h_l and each input's ‖h_l‖²/width, float64."""
    k_params, k_x = jax.random.split(key)
    params = jax.tree.map(lambda a: np.asarray(a, float), sample_params(spec, k_params))
    x = np.asarray(correlated_pairs(k_x, spec.input_dim, c0, input_q, pairs=pairs), float)
    phi = ACTIVATIONS[spec.activation]
    h = x @ params["input_layer"]["dense"]["kernel"] + params["input_layer"]["dense"]["bias"]
    layers = [h]
    for layer in range(spec.depth - 1):
        z = (phi(h) @ params["hidden"]["dense"]["kernel"][layer]
             + params["hidden"]["dense"]["bias"][layer])
        h = z if spec.residual_alpha is None else h + spec.residual_alpha * z
        layers.append(h)
    cosines, squares = [], []
    for h in layers:
        a, b = h[0::2], h[1::2]
        cosines.append(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
        squares.append(np.stack([np.mean(a**2, 1), np.mean(b**2, 1)], -1))
    shape = (spec.depth, len(c0), pairs)
    return np.reshape(cosines, shape), np.reshape(squares, shape + (2,))


@pytest.mark.parametrize("spec", [
    MLPSpec(width=24, depth=4, in_dim=10, activation="tanh", sigma_w=1.6, sigma_b=0.2),
    MLPSpec(width=16, depth=5, activation="relu", init="he_normal"),
    MLPSpec(width=16, depth=3, activation="relu", init="he_normal", residual_alpha=0.5),
])
def test_input_correlations_match_numpy_per_seed(spec, tmp_path):
    seeds, pairs, base, input_q = 3, 2, 5, 0.6
    ds = input_correlations(spec, C0, seeds, base_seed=base, input_q=input_q, pairs=pairs,
                            cache_dir=tmp_path)
    assert ds.cosine.dims == ("seed", "layer", "c0", "pair")
    assert ds.mean_square.dims == ("seed", "layer", "c0", "pair", "input")
    assert list(ds.layer.values) == list(range(1, spec.depth + 1))
    for s, key in enumerate(seed_keys(base, seeds)):
        cosine, square = _numpy_reference(spec, key, C0, pairs, input_q)
        np.testing.assert_allclose(ds.cosine.values[s], cosine, atol=2e-5)
        np.testing.assert_allclose(ds.mean_square.values[s], square, rtol=2e-5)
    # exactly the measurement: the cache adds nothing to the numbers
    cosine, square = measured_input_correlations(spec, C0, seeds, base, input_q, pairs)
    np.testing.assert_array_equal(ds.cosine.values, cosine)
    np.testing.assert_array_equal(ds.mean_square.values, square)


def test_seeds_in_several_chunks_equal_one_chunk(monkeypatch):
    spec = MLPSpec(width=8, depth=3, activation="tanh")
    whole = measured_input_correlations(spec, C0, 5)
    monkeypatch.setattr(correlations, "CHUNK_BYTES", correlations.network_bytes(spec) * 2)
    chunked = measured_input_correlations(spec, C0, 5)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_network_bytes_counts_every_parameter():
    spec = MLPSpec(width=8, depth=3, in_dim=5, out_dim=4)
    params = sample_params(spec, jax.random.PRNGKey(0))
    assert correlations.network_bytes(spec) == sum(a.nbytes for a in jax.tree.leaves(params))


def test_correlated_pairs_are_exact():
    x = np.asarray(correlated_pairs(jax.random.PRNGKey(3), 64, C0, 2.5, pairs=3), float)
    assert x.shape == (2 * 3 * len(C0), 64)
    a, b = x[0::2], x[1::2]
    np.testing.assert_allclose(np.mean(x**2, 1), 2.5, rtol=1e-5)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cos, np.repeat(C0, 3), atol=1e-6)


def test_overflow_is_recorded_not_raised():
    spec = MLPSpec(width=16, depth=40, activation="relu", sigma_w=40.0)  # χ₁ = 800 per layer
    cosine, square = measured_input_correlations(spec, (0.0,), 2)
    assert np.all(np.isfinite(cosine[:, :3])) and not np.all(np.isfinite(square[:, -1]))
    assert not np.any(np.isfinite(cosine[:, -1]))


def test_cached_by_what_changes_it(tmp_path, monkeypatch):
    calls = []

    def fake(spec, c0, seeds, base_seed, input_q, pairs):
        calls.append((spec, c0, seeds, base_seed, input_q, pairs))
        shape = (seeds, spec.depth, len(c0), pairs)
        return np.full(shape, input_q), np.full(shape + (2,), float(base_seed))

    monkeypatch.setattr(correlations, "measured_input_correlations", fake)
    spec = MLPSpec(width=8, depth=3, activation="tanh")
    first = input_correlations(spec, C0, 2, cache_dir=tmp_path)
    again = input_correlations(spec, C0, 2, cache_dir=tmp_path)
    assert len(calls) == 1 and first.equals(again)
    for changed in ({"input_q": 2.0}, {"pairs": 3}, {"base_seed": 1}):
        input_correlations(spec, C0, 2, cache_dir=tmp_path, **changed)
    input_correlations(spec, (0.0,), 2, cache_dir=tmp_path)
    input_correlations(spec.replace(sigma_w=1.1), C0, 2, cache_dir=tmp_path)
    assert len(calls) == 6


@pytest.mark.parametrize("kwargs,match", [
    ({"spec": MLPSpec(width=8, depth=3, norm="batchnorm")}, "batchnorm"),
    ({"spec": "mlp"}, "MLPSpec"),
    ({"correlations": (1.5,)}, "correlations"),
    ({"correlations": ()}, "correlations"),
    ({"seeds": 0}, "seeds"),
    ({"pairs": 0}, "pairs"),
    ({"input_q": 0.0}, "input_q"),
])
def test_refuses_bad_arguments(kwargs, match):
    args = {"spec": MLPSpec(width=8, depth=3), "correlations": C0, "seeds": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        input_correlations(**args)
