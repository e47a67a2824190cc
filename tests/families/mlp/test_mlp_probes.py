"""Tests of gradstudy.families.mlp against independent references.

* ``gradient_norms`` (segment-wise vmapped VJPs, Gram identity, max-abs scaled norms) is
  compared with plain ``jax.grad`` of the full depth-d MLP loss (``models.MLP`` +
  ``mse_loss``, parameters sliced to depth d), in float64, to rtol 1e-9.
* ``jax.grad`` of that loss is itself checked against finite differences
  (``jax.test_util.check_grads``), and ``backprop_norm`` against a hand-written central
  difference of the loss along the back-propagated direction.
* The underflow-safe norms are compared with a float64 reference on a float32 network whose
  gradients are ~1e-25 (their squares underflow float32).
* ``backprop_histograms`` against ``numpy.histogram``; ``layer_jacobian_singular_values``
  against ``numpy.linalg.svd`` of closed-form / hand-written Jacobians.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gradstudy import MLP, MLPSpec, apply_gains, gradient_norms, init_params
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import (
    backprop_histograms,
    layer_jacobian_singular_values,
    zero_perturbation,
)
from gradstudy.nn import BN_EPS, mse_loss

BATCH = 4
DEPTHS = (1, 3, 5)
KEYS = ("weight_grad_norm", "bias_grad_norm", "backprop_norm", "loss", "input_grad_norm",
        "readout_grad_norm")

CONFIGS = {
    "tanh": dict(width=6, activation="tanh", sigma_w=1.2, sigma_b=0.0),
    "layernorm": dict(width=6, activation="tanh", norm="layernorm", sigma_w=1.1, sigma_b=0.2),
    "batchnorm_residual_in3": dict(width=5, in_dim=3, activation="relu", norm="batchnorm",
                                   residual_alpha=0.7, sigma_w=1.3, sigma_b=0.1),
    # relu with σ_b > 0, residual branch without normalisation, in_dim != width
    "relu_bias_residual_in3": dict(width=6, in_dim=3, activation="relu", residual_alpha=0.5,
                                   sigma_w=1.5, sigma_b=0.3),
    # width < batch: the hidden layers' ‖∂L/∂W‖ by forming aᵀg, the input layer's (in_dim
    # ≥ batch) by the Gram identity (the configs above: the other way round)
    "narrow_layernorm_in5": dict(width=3, in_dim=5, activation="tanh", norm="layernorm",
                                 sigma_w=1.4, sigma_b=0.1),
}


def _perturb_norm_params(params):
    """Norm scale/offset away from 1/0, so the comparison exercises them."""
    return jax.tree_util.tree_map_with_path(
        lambda path, a: a + 0.05 * (1 + jnp.arange(a.size, dtype=a.dtype).reshape(a.shape))
        if "norm" in str(path) else a, params)


def _make_problem(spec, key):
    """Gain-applied parameters (norm params perturbed), inputs and targets from ``key``."""
    k_p, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    params = _perturb_norm_params(
        apply_gains(init_params(spec, k_p), spec.sigma_w, spec.sigma_b))
    x = jax.random.normal(k_x, (BATCH, spec.input_dim), dtype)
    t = jax.random.normal(k_t, (BATCH, spec.out_dim), dtype)
    return params, x, t


def _slice_params(params, d):
    """The depth-d network: first d layers of the stack, the shared readout."""
    out = {"input_layer": params["input_layer"], "readout": params["readout"]}
    if d > 1:
        out["hidden"] = jax.tree.map(lambda p: p[: d - 1], params["hidden"])
    return out


def _full_loss(spec, d):
    """L(params_d, perturbations, x, t) of the depth-d MLP, straight through models.MLP."""
    spec_d = spec.replace(depth=d)

    def loss(params_d, pert, x, t):
        y, _ = MLP(spec_d).apply({"params": params_d}, x, pert)
        return mse_loss(y, t)

    return loss


def _reference_grads(spec, params, x, t, depths):
    """Traceable: loss and gradients of each full depth-d loss (jax.grad, nothing else),
    plus the forward statistics of the deepest network."""
    out, stats = [], None
    for d in depths:
        pert = zero_perturbation(BATCH, spec.width, x.dtype, d)
        spec_d = spec.replace(depth=d)

        def loss_and_stats(params_d, pert, x, spec_d=spec_d):
            y, st = MLP(spec_d).apply({"params": params_d}, x, pert)
            return mse_loss(y, t), st

        (loss, stats), grads = jax.value_and_grad(loss_and_stats, argnums=(0, 1, 2),
                                                  has_aux=True)(_slice_params(params, d), pert, x)
        out.append((loss, grads))
    return out, stats


def _reference_norms(spec, raw, depths):
    """Per-layer norms (NaN beyond depth d) of the raw reference gradients, in NumPy."""
    L = max(depths)
    out = {k: np.full((len(depths), L), np.nan) for k in KEYS[:3]}
    out.update({k: np.zeros(len(depths)) for k in KEYS[3:]})
    out["backprop"] = np.full((len(depths), L, BATCH, spec.width), np.nan)
    for i, (d, (loss, (gp, gpert, gx))) in enumerate(zip(depths, raw)):
        assert np.asarray(gx).dtype == np.float64
        kernels = [gp["input_layer"]["dense"]["kernel"]]
        biases = [gp["input_layer"]["dense"]["bias"]]
        if d > 1:
            kernels += list(gp["hidden"]["dense"]["kernel"])
            biases += list(gp["hidden"]["dense"]["bias"])
        out["weight_grad_norm"][i, :d] = [np.linalg.norm(k) for k in kernels]
        out["bias_grad_norm"][i, :d] = [np.linalg.norm(b) for b in biases]
        dh = np.asarray(gpert["h"])
        out["backprop"][i, :d] = dh
        out["backprop_norm"][i, :d] = np.sqrt((dh**2).sum(axis=(1, 2)))
        out["loss"][i] = loss
        out["input_grad_norm"][i] = np.linalg.norm(gx)
        out["readout_grad_norm"][i] = np.sqrt(sum(np.sum(np.square(g))
                                                  for g in jax.tree.leaves(gp["readout"])))
    return out


def _to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a).astype(jnp.float64), tree)


@functools.lru_cache(maxsize=None)
def _case(name):
    """(spec, params, x, t, measured, reference, forward stats): float64, one jitted program."""
    spec = MLPSpec(depth=max(DEPTHS), out_dim=2, dtype="float64", **CONFIGS[name])

    @jax.jit
    def program(key):
        params, x, t = _make_problem(spec, key)
        got = gradient_norms(spec, params, x, t, DEPTHS, keep_backprop=True)
        raw, stats = _reference_grads(spec, params, x, t, DEPTHS)
        return (params, x, t), got, raw, stats

    with jax.enable_x64(True):
        (params, x, t), got, raw, stats = jax.device_get(program(jax.random.PRNGKey(0)))
    return spec, params, x, t, got, _reference_norms(spec, raw, DEPTHS), stats


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request):
    return (request.param,) + _case(request.param)


def test_gradient_norms_match_direct_grad(case):
    name, spec, _, _, _, got, ref, _ = case
    for key in KEYS + ("backprop",):
        assert got[key].dtype == np.float64, key
        assert got[key].shape == ref[key].shape, key
        if key == "bias_grad_norm" and spec.norm == "batchnorm":
            # batch statistics remove a per-feature shift: ∂L/∂b_l = 0 exactly (theory), so
            # both sides are rounding noise; compare them with 0 on the weights' scale
            scale = np.nanmax(ref["weight_grad_norm"])
            assert np.nanmax(got[key]) < 1e-12 * scale
            assert np.nanmax(ref[key]) < 1e-12 * scale
            assert np.array_equal(np.isnan(got[key]), np.isnan(ref[key]))
            continue
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-9, atol=0, equal_nan=True,
                                   err_msg=f"{name}: {key}")
    # the comparison is not vacuous: every measured entry within depth is finite and > 0
    for key in ("weight_grad_norm", "backprop_norm"):
        for i, d in enumerate(DEPTHS):
            assert np.all(np.isfinite(got[key][i, :d])) and np.all(got[key][i, :d] > 0), key


def test_nan_beyond_each_depth(case):
    got = case[5]
    for key in KEYS[:3]:
        assert got[key].shape == (len(DEPTHS), max(DEPTHS))
        for i, d in enumerate(DEPTHS):
            assert np.all(np.isnan(got[key][i, d:])), (key, d)
            assert not np.any(np.isnan(got[key][i, :d])), (key, d)
    for key in KEYS[3:]:
        assert got[key].shape == (len(DEPTHS),) and np.all(np.isfinite(got[key]))
    assert np.all(np.isnan(got["backprop"][0, 1:]))


def test_forward_statistics(case):
    got, stats = case[5], case[7]
    assert got["preact_q"].shape == (max(DEPTHS),)
    np.testing.assert_allclose(got["preact_mean"], stats["preact_mean"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["preact_q"], stats["preact_q"], rtol=1e-10)


@pytest.mark.parametrize("name", ["batchnorm_residual_in3"])
def test_reference_grad_matches_finite_differences(name):
    """jax.grad of the MLP loss (the reference above) against float64 finite differences."""
    spec, params, x, t = _case(name)[:4]
    d = 3
    with jax.enable_x64(True):
        pert = zero_perturbation(BATCH, spec.width, jnp.float64, d)
        loss = jax.jit(_full_loss(spec, d))
        check_grads(lambda p, q, x: loss(p, q, x, t), (_slice_params(params, d), pert, x),
                    order=1, modes=("rev",), eps=1e-6, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("name", ["tanh", "layernorm"])
def test_backprop_norm_is_directional_derivative(name):
    """‖∂L/∂h_l‖ = d/dε L(h_l + ε u) with u = δ_l/‖δ_l‖, by a central difference."""
    spec, params, x, t, got = _case(name)[:5]
    d, i = DEPTHS[-1], len(DEPTHS) - 1
    eps = 1e-5
    dirs = got["backprop"][i] / got["backprop_norm"][i][:, None, None]
    perts = np.zeros((d, 2, d, BATCH, spec.width))
    for l in range(d):
        perts[l, 0, l] = eps * dirs[l]
        perts[l, 1, l] = -eps * dirs[l]
    perts = perts.reshape(2 * d, d, BATCH, spec.width)
    with jax.enable_x64(True):
        loss = jax.jit(jax.vmap(_full_loss(spec, d), in_axes=(None, 0, None, None)))
        values = np.asarray(loss(_slice_params(params, d),
                                 {"h": perts, "dense": np.zeros_like(perts)}, x, t))
    fd = (values[0::2] - values[1::2]) / (2 * eps)
    np.testing.assert_allclose(fd, got["backprop_norm"][i], rtol=1e-7)


def test_depths_validation():
    spec = MLPSpec(width=4, depth=3, out_dim=1)
    x, t = jnp.ones((2, 4)), jnp.ones((2, 1))
    for bad in [(0, 2), (4,), ()]:
        with pytest.raises(ConfigError, match="^depths: "):
            gradient_norms(spec, {}, x, t, bad)


# ------------------------------------------------------------------- underflow safety
SPEC32 = MLPSpec(width=8, depth=4, out_dim=2, activation="tanh", sigma_w=1.3, sigma_b=0.2)
DEPTHS32 = (2, 4)


@functools.lru_cache(maxsize=None)
def _programs32():
    """Jitted (problem, float32 gradient_norms, float64 jax.grad reference) for SPEC32,
    compiled once and shared by the underflow tests."""
    spec64 = SPEC32.replace(dtype="float64")
    problem = jax.jit(lambda key: _make_problem(SPEC32, key))
    measure = jax.jit(lambda p, x, t: gradient_norms(SPEC32, p, x, t, DEPTHS32,
                                                     keep_backprop=True))
    reference = jax.jit(lambda p, x, t: _reference_grads(spec64, p, x, t, DEPTHS32)[0])
    return problem, measure, reference


def _tiny_problem(seed, readout_scale=1e-25, zero_readout_bias=False, target_scale=1.0):
    problem, measure, reference = _programs32()
    params, x, t = jax.device_get(problem(jax.random.PRNGKey(seed)))
    params["readout"]["dense"]["kernel"] = params["readout"]["dense"]["kernel"] * np.float32(
        readout_scale)
    if zero_readout_bias:
        params["readout"]["dense"]["bias"] = np.zeros_like(params["readout"]["dense"]["bias"])
    t = (t * np.float32(target_scale)).astype(np.float32)
    got = jax.device_get(measure(params, x, t))
    with jax.enable_x64(True):
        raw = jax.device_get(reference(*_to64((params, x, t))))
    return got, _reference_norms(SPEC32.replace(dtype="float64"), raw, DEPTHS32)


def test_norms_do_not_underflow_in_float32():
    """Gradients ~1e-25: squares (1e-50) underflow float32; the norms must not."""
    got, ref = _tiny_problem(2)
    assert got["backprop_norm"].dtype == np.float32
    # the regime is what it should be: tiny but normal float32 numbers whose squares vanish
    delta = got["backprop"][1, 0]
    assert 1e-30 < np.abs(delta).max() < 1e-20
    assert np.sqrt(np.sum(delta.astype(np.float32) ** 2)) == 0.0
    for key in ("backprop_norm", "weight_grad_norm", "bias_grad_norm", "input_grad_norm"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, equal_nan=True, err_msg=key)
        assert np.all(np.nan_to_num(got[key], nan=1.0) > 0), key


def test_readout_grad_norm_does_not_underflow_in_float32():
    # y ≈ 1e-25 and targets ≈ 1e-25: ∂L/∂W_out and ∂L/∂b_out are ~1e-25
    got, ref = _tiny_problem(5, zero_readout_bias=True, target_scale=1e-25)
    assert np.all((1e-30 < ref["readout_grad_norm"]) & (ref["readout_grad_norm"] < 1e-20))
    np.testing.assert_allclose(got["readout_grad_norm"], ref["readout_grad_norm"], rtol=1e-4)


# ------------------------------------------------------------------------- histograms
def test_backprop_histograms_match_numpy():
    rng = np.random.default_rng(0)
    data = (1.5 * rng.standard_normal((2, 3, 4, 5))).astype(np.float32)  # some fall outside
    edges = np.linspace(-2, 2, 9).astype(np.float32)
    counts = np.asarray(backprop_histograms(jnp.asarray(data), jnp.asarray(edges)))
    assert counts.shape == (2, 3, 8)
    expected = np.array([[np.histogram(data[i, j].ravel(), edges)[0] for j in range(3)]
                         for i in range(2)])
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() < data.size  # values outside [edges[0], edges[-1]] are not counted


def test_backprop_histograms_uneven_edges():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 7, 11)).astype(np.float32)
    edges = np.array([-3.0, -1.0, -0.1, 0.0, 0.05, 2.0], np.float32)
    counts = np.asarray(backprop_histograms(jnp.asarray(data), jnp.asarray(edges)))
    expected = np.array([np.histogram(d.ravel(), edges)[0] for d in data])
    np.testing.assert_array_equal(counts, expected)


def test_backprop_histograms_values_on_edges():
    """Bins [e_i, e_{i+1}), the last one closed, as numpy.histogram; NaN is not counted."""
    edges = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
    data = np.array([-1, -0.5, 0, 0.5, 1.0, 1.5, -1.5, 0.25], np.float32).reshape(1, 2, 4)
    counts = np.asarray(backprop_histograms(jnp.asarray(data), jnp.asarray(edges)))
    np.testing.assert_array_equal(counts[0], np.histogram(data.ravel(), edges)[0])
    np.testing.assert_array_equal(counts[0], [1, 1, 2, 2])  # by hand
    with_nan = data.copy()
    with_nan[0, 0, 0] = np.nan
    counts = np.asarray(backprop_histograms(jnp.asarray(with_nan), jnp.asarray(edges)))
    np.testing.assert_array_equal(counts[0], [0, 1, 2, 2])


# ------------------------------------------------------------------- layer Jacobians
def _jacobian_svals(name):
    """layer_jacobian_singular_values on a probe case's network (params, x, svals)."""
    spec, params, x = _case(name)[:3]
    with jax.enable_x64(True):
        sv = jax.jit(lambda p, x: layer_jacobian_singular_values(spec, p, x))(params, x)
    return spec, params, x, np.asarray(sv)


@pytest.mark.parametrize("name", ["tanh", "relu_bias_residual_in3"])
def test_layer_jacobian_singular_values_closed_form(name):
    """J_l = ∂h_l/∂h_{l-1} = [I +] α·W_lᵀ diag(φ'(h_{l-1})), from a NumPy forward pass."""
    spec, p, x, sv = _jacobian_svals(name)
    L, w = spec.depth, spec.width
    assert sv.shape == (L - 1, BATCH, w)
    phi, dphi = {"tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
                 "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0)}[spec.activation]
    alpha = spec.residual_alpha
    h = x @ p["input_layer"]["dense"]["kernel"] + p["input_layer"]["dense"]["bias"]
    for l in range(L - 1):
        k, b = p["hidden"]["dense"]["kernel"][l], p["hidden"]["dense"]["bias"][l]
        for n in range(BATCH):
            jac = k.T * dphi(h[n])[None, :]
            if alpha is not None:
                jac = np.eye(w) + alpha * jac
            np.testing.assert_allclose(sv[l, n], np.linalg.svd(jac, compute_uv=False),
                                       rtol=1e-10, atol=1e-14)
        z = phi(h) @ k + b
        h = z if alpha is None else h + alpha * z
    assert np.all(np.diff(sv, axis=-1) <= 0)  # descending


def test_layer_jacobian_singular_values_layernorm():
    """LayerNorm: jax.jacrev of a hand-written layer, NumPy SVD."""
    spec, params, x, sv = _jacobian_svals("layernorm")

    def norm(z, p):
        zn = (z - z.mean()) / jnp.sqrt(z.var() + BN_EPS)
        return zn * p["norm"]["scale"] + p["norm"]["offset"]

    def layer(h, p):
        return norm(jnp.tanh(h) @ p["dense"]["kernel"] + p["dense"]["bias"], p)

    @jax.jit
    def jacobians(params, xb):
        p0 = params["input_layer"]
        h = norm(xb @ p0["dense"]["kernel"] + p0["dense"]["bias"], p0)
        out = []
        for l in range(spec.depth - 1):
            pl = jax.tree.map(lambda a, l=l: a[l], params["hidden"])
            out.append(jax.jacrev(layer)(h, pl))
            h = layer(h, pl)
        return jnp.stack(out)

    with jax.enable_x64(True):
        jac = np.asarray(jax.vmap(jacobians, in_axes=(None, 0))(params, x))  # (B, L-1, w, w)
    for l in range(spec.depth - 1):
        for b in range(BATCH):
            np.testing.assert_allclose(sv[l, b], np.linalg.svd(jac[b, l], compute_uv=False),
                                       rtol=1e-9, atol=1e-13)


def test_layer_jacobian_rejects_batchnorm_and_depth_one():
    with pytest.raises(ValueError, match="batchnorm"):
        layer_jacobian_singular_values(MLPSpec(width=4, depth=2, norm="batchnorm"), {},
                                       jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="depth"):
        layer_jacobian_singular_values(MLPSpec(width=4, depth=1), {}, jnp.ones((2, 4)))
