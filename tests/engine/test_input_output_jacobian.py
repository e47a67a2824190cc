"""jacobian_spectrum (squared singular values of ∂h_(d+1)/∂h_1 at several depths, cached)
against a NumPy float64 product of the same networks' layer Jacobians, per seed; its cache
keys; its refusals; and LayerNorm/residual layers against jax.jacfwd of the whole map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradstudy.engine._spectra as spectra
from gradstudy import MLPSpec
from gradstudy.engine import jacobian_spectrum
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import (
    InputLayer,
    hidden_stack,
    jacobian_squared_singular_values,
    sample_network,
    zero_perturbation,
)

SPEC = MLPSpec(width=6, depth=2, activation="tanh", init="orthogonal", sigma_w=1.3,
               sigma_b=0.2)
DEPTHS = (1, 3, 4)


def _numpy_reference(spec, key, batch, input_std, depths):
    """λ of W_(d+1) D_d ⋯ W_2 D_1 (D_l = diag tanh'(h_l)) per example, in float64."""
    params, x, _ = (jax.tree.map(np.asarray, a)
                    for a in sample_network(spec, key, batch, input_std))
    h = (np.asarray(x, float) @ params["input_layer"]["dense"]["kernel"]
         + params["input_layer"]["dense"]["bias"])
    jac = np.broadcast_to(np.eye(spec.width), (batch, spec.width, spec.width))
    out = []
    for layer in range(max(depths)):
        k = params["hidden"]["dense"]["kernel"][layer].astype(float)
        b = params["hidden"]["dense"]["bias"][layer].astype(float)
        d = 1 - np.tanh(h) ** 2  # (batch, width)
        jac = np.einsum("ji,bj,bjk->bik", k, d, jac)  # h_next = tanh(h) @ k + b
        h = np.tanh(h) @ k + b
        if layer + 1 in depths:
            out.append(np.linalg.svd(jac, compute_uv=False) ** 2)
    return np.stack(out)


def test_jacobian_spectrum_matches_numpy_per_seed(tmp_path):
    seeds, batch, base, input_std = 3, 2, 5, 0.7
    ds = jacobian_spectrum(SPEC, DEPTHS, seeds, batch, input_std, base_seed=base,
                           cache_dir=tmp_path)
    lam = ds["lambda"]
    assert lam.dims == ("seed", "depth", "example", "index") and lam.dtype == np.float64
    assert list(ds.depth.values) == list(DEPTHS)
    spec = SPEC.replace(depth=max(DEPTHS) + 1)
    for s in range(seeds):
        key = jax.random.fold_in(jax.random.PRNGKey(base), s)
        expected = _numpy_reference(spec, key, batch, input_std, DEPTHS)
        np.testing.assert_allclose(lam.values[s], expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("changes", [dict(norm="layernorm"), dict(residual_alpha=0.5)])
def test_layers_are_differentiated_as_built(changes):
    """LayerNorm and residual layers: the carried product equals jax.jacfwd of h_1 ↦ h_(d+1)
    through the model's own layers (float64)."""
    with jax.enable_x64(True):
        spec = MLPSpec(width=5, depth=4, activation="tanh", dtype="float64", **changes)
        params, x, _ = sample_network(spec, jax.random.PRNGKey(0), 2)
        lam = jacobian_squared_singular_values(spec, params, x, (1, 3))
        one = zero_perturbation(1, spec.width, jnp.float64, 3, dense=False)
        h1, _ = InputLayer(spec).apply({"params": params["input_layer"]}, x,
                                       zero_perturbation(2, spec.width, jnp.float64,
                                                         dense=False))
        for i, d in enumerate((1, 3)):
            layers = jax.tree.map(lambda a, d=d: a[:d], params["hidden"])
            one = zero_perturbation(1, spec.width, jnp.float64, d, dense=False)

            def f(h, layers=layers, d=d, one=one):
                return hidden_stack(spec, d).apply({"params": layers}, h[None], one)[0][0]

            for n in range(2):
                jac = jax.jacfwd(f)(h1[n])
                expected = np.linalg.svd(np.asarray(jac), compute_uv=False) ** 2
                np.testing.assert_allclose(lam[i, n], expected, rtol=1e-10, atol=1e-12)


def test_jacobian_spectrum_is_cached_by_what_changes_it(tmp_path, monkeypatch):
    calls = []

    def fake(spec, depths, batch, input_std, kernel_scales, sigma_b, keys):
        calls.append(1)
        return np.ones((len(keys), len(depths), batch, spec.width))

    monkeypatch.setattr(spectra, "_measure_jacobian_spectra", fake)
    jacobian_spectrum(SPEC, DEPTHS, 2, cache_dir=tmp_path)
    jacobian_spectrum(SPEC, DEPTHS, 2, cache_dir=tmp_path)
    assert len(calls) == 1
    for changed in [dict(spec=SPEC.replace(sigma_w=1.2)), dict(spec=SPEC.replace(sigma_b=0.1)),
                    dict(depths=(1, 3)), dict(seeds=3), dict(batch=2), dict(input_std=0.5),
                    dict(base_seed=1), dict(spec=SPEC.replace(init="gaussian"))]:
        jacobian_spectrum(**{**dict(spec=SPEC, depths=DEPTHS, seeds=2), **changed},
                          cache_dir=tmp_path)
    assert len(calls) == 9
    assert len(list(tmp_path.glob("jacobian_spectrum-*.nc"))) == 9


def test_refusals_are_one_line():
    with pytest.raises(ConfigError, match="spec: must be an MLPSpec"):
        jacobian_spectrum("mlp", DEPTHS, 2)
    with pytest.raises(ConfigError, match="seeds: .* the budget is"):
        jacobian_spectrum(MLPSpec(width=2048), (1000,), 512)
    with pytest.raises(ConfigError, match="depths: must be increasing"):
        jacobian_squared_singular_values(SPEC.replace(depth=5), {}, jnp.zeros((1, 6)), (3, 2))
    with pytest.raises(ConfigError, match="needs spec.depth >= 5"):
        jacobian_squared_singular_values(SPEC.replace(depth=4), {}, jnp.zeros((1, 6)), (4,))
