"""Tests of gradstudy.families.mlp, gradstudy.nn, gradstudy.nn and MLPSpec.

References are independent of the code under test: a NumPy forward pass written from the
equations in the MLPSpec docstring, closed-form initializer variances and bounds, and
orthogonality W Wᵀ = I.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradstudy
from gradstudy import (
    MLP,
    MLPSpec,
    apply_gains,
    get_initializer,
    init_params,
    register_initializer,
)
from gradstudy.errors import ConfigError
from gradstudy.nn import BN_EPS, _activations as activations_mod, _initializers as initializers_mod

N = 512  # side of the sampled matrices for the variance checks
# fan_in · Var W at unit gain, from the papers (Glorot & Bengio 2010; He et al. 2015;
# LeCun et al. 1998; Saxe et al. 2014), for a (fan_in, fan_out) kernel.
CLOSED_FORM_VARIANCE = {
    "gaussian": lambda fi, fo: 1.0,
    "lecun_normal": lambda fi, fo: 1.0,
    "standard_uniform": lambda fi, fo: 1.0 / 3.0,
    "glorot_uniform": lambda fi, fo: 2.0 * fi / (fi + fo),
    "glorot_normal": lambda fi, fo: 2.0 * fi / (fi + fo),
    "xavier_uniform": lambda fi, fo: 2.0 * fi / (fi + fo),
    "xavier_normal": lambda fi, fo: 2.0 * fi / (fi + fo),
    "he_normal": lambda fi, fo: 2.0,
    "kaiming_normal": lambda fi, fo: 2.0,
    "orthogonal": lambda fi, fo: fi / max(fi, fo),
    "delta_orthogonal": lambda fi, fo: fi / max(fi, fo),  # 2-D: an orthogonal matrix
}
# sampling error of n·Var from 512·256 or more entries is < 0.5 % (1 sd); 3 % is > 6 sd
VAR_RTOL = 0.03


@pytest.fixture
def isolated_registries(monkeypatch):
    """Let a test register activations/initializers without leaking them to other tests."""
    monkeypatch.setattr(initializers_mod, "_INITS", dict(initializers_mod._INITS))
    monkeypatch.setattr(activations_mod, "_ACTIVATIONS", dict(activations_mod._ACTIVATIONS))


# ------------------------------------------------------------ NumPy reference forward
def _layernorm(z):
    return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + BN_EPS)


def _batchnorm(z):
    return (z - z.mean(0, keepdims=True)) / np.sqrt(z.var(0, keepdims=True) + BN_EPS)


def numpy_forward(spec, params, x, phi):
    """y and the pre-activations h_1..h_depth, from the equations (float64 NumPy)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.asarray(x, np.float64)

    def norm(z, np_params):
        if spec.norm == "none":
            return z
        zn = _layernorm(z) if spec.norm == "layernorm" else _batchnorm(z)
        return zn * np_params["norm"]["scale"] + np_params["norm"]["offset"]

    il = p["input_layer"]
    h = norm(x @ il["dense"]["kernel"] + il["dense"]["bias"], il)
    hs = [h]
    for l in range(spec.depth - 1):
        layer = jax.tree.map(lambda a, l=l: a[l], p["hidden"])
        z = norm(phi(h) @ layer["dense"]["kernel"] + layer["dense"]["bias"], layer)
        h = z if spec.residual_alpha is None else h + spec.residual_alpha * z
        hs.append(h)
    ro = p["readout"]["dense"]
    return phi(h) @ ro["kernel"] + ro["bias"], np.stack(hs)


# ------------------------------------------------------------------ shapes and params
def _init_and_apply(spec, seed, x, perturb_norm=False):
    """Unit-gain params, gain-applied params and the forward pass, in one jitted program."""

    @jax.jit
    def f(key, x):
        unit = init_params(spec, key)
        params = apply_gains(unit, spec.sigma_w, spec.sigma_b)
        if perturb_norm:  # norm scale/offset away from 1/0 so the reference exercises them
            params = jax.tree_util.tree_map_with_path(
                lambda path, a: a + 0.1 * jnp.arange(a.size, dtype=a.dtype).reshape(a.shape)
                if "norm" in str(path) else a, params)
        y, stats = MLP(spec).apply({"params": params}, x)
        return unit, params, y, stats

    return jax.device_get(f(jax.random.PRNGKey(seed), x))


@pytest.fixture(scope="module")
def ln_case():
    """relu, layernorm, residual branch, in_dim != width, float64."""
    spec = MLPSpec(width=6, depth=4, in_dim=5, out_dim=3, activation="relu", norm="layernorm",
                   residual_alpha=0.5, sigma_w=1.3, sigma_b=0.3, dtype="float64")
    with jax.enable_x64(True):
        x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (7, 5), jnp.float64))
        unit, params, y, stats = _init_and_apply(spec, 3, x, perturb_norm=True)
    return spec, unit, params, x, y, stats


def test_mlp_shapes_and_layer_axis(ln_case):
    spec, unit, params, x, y, stats = ln_case
    assert unit["input_layer"]["dense"]["kernel"].shape == (5, 6)
    assert unit["input_layer"]["dense"]["bias"].shape == (6,)
    # layers 2..depth are stacked on a leading layer axis of length depth - 1
    assert unit["hidden"]["dense"]["kernel"].shape == (3, 6, 6)
    assert unit["hidden"]["dense"]["bias"].shape == (3, 6)
    assert unit["hidden"]["norm"]["scale"].shape == (3, 6)
    assert unit["hidden"]["norm"]["offset"].shape == (3, 6)
    assert unit["input_layer"]["norm"]["scale"].shape == (6,)
    assert unit["readout"]["dense"]["kernel"].shape == (6, 3)
    assert set(unit["readout"]) == {"dense"}
    assert unit["hidden"]["dense"]["kernel"].dtype == np.float64
    # independent parameters per layer: no two stacked kernels are equal
    k = unit["hidden"]["dense"]["kernel"]
    assert all(not np.allclose(k[i], k[j]) for i in range(3) for j in range(i + 1, 3))
    # norms start at unit scale and zero offset
    np.testing.assert_array_equal(unit["hidden"]["norm"]["scale"], 1.0)
    np.testing.assert_array_equal(unit["hidden"]["norm"]["offset"], 0.0)
    assert y.shape == (7, 3) and y.dtype == np.float64
    assert stats["preact_mean"].shape == (4,) and stats["preact_q"].shape == (4,)


def _check_forward(spec, params, x, y, stats, phi):
    y_ref, hs = numpy_forward(spec, params, x, phi)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(stats["preact_mean"], hs.mean(axis=(1, 2)), rtol=1e-11,
                               atol=1e-13)
    np.testing.assert_allclose(stats["preact_q"], (hs**2).mean(axis=(1, 2)), rtol=1e-11)


def test_forward_matches_numpy_reference_layernorm_residual(ln_case):
    spec, _, params, x, y, stats = ln_case
    _check_forward(spec, params, x, y, stats, lambda z: np.maximum(z, 0))


def test_depth_one_batchnorm_forward():
    spec = MLPSpec(width=16, depth=1, in_dim=3, out_dim=2, activation="sigmoid",
                   norm="batchnorm", sigma_w=2.0, sigma_b=0.5, dtype="float64")
    with jax.enable_x64(True):
        x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float64))
        unit, params, y, stats = _init_and_apply(spec, 0, x, perturb_norm=True)
    assert set(unit) == {"input_layer", "readout"}  # no hidden stack at depth 1
    assert stats["preact_q"].shape == (1,)
    _check_forward(spec, params, x, y, stats, lambda z: 1 / (1 + np.exp(-z)))


def test_apply_gains_scales_kernels_and_biases_only(ln_case):
    params = ln_case[1]
    # make norm parameters distinguishable from both 0 and 1 so scaling would show
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: a + 0.37 if "norm" in str(path) else a, params)
    sw, sb = 2.5, 0.125
    with jax.enable_x64(True):  # float64 parameters
        scaled = jax.device_get(apply_gains(params, sw, sb))
        # one kernel scale per part: input layer, hidden stack, readout
        per_part = jax.device_get(apply_gains(params, (2.0, 3.0, 5.0), sb))
        # gains may be traced (the sweep vmaps over them)
        vm = jax.vmap(lambda s: apply_gains(params, s, 2 * s)["hidden"]["dense"]["bias"])(
            jnp.array([1.0, 3.0]))
    for part, k in zip(("input_layer", "hidden", "readout"), (2.0, 3.0, 5.0)):
        np.testing.assert_array_equal(scaled[part]["dense"]["kernel"],
                                      params[part]["dense"]["kernel"] * sw)
        np.testing.assert_array_equal(scaled[part]["dense"]["bias"],
                                      params[part]["dense"]["bias"] * sb)
        np.testing.assert_array_equal(per_part[part]["dense"]["kernel"],
                                      params[part]["dense"]["kernel"] * k)
        assert scaled[part]["dense"]["kernel"].dtype == np.float64
    for part in ("input_layer", "hidden"):
        for leaf in ("scale", "offset"):
            np.testing.assert_array_equal(scaled[part]["norm"][leaf], params[part]["norm"][leaf])
            np.testing.assert_array_equal(per_part[part]["norm"][leaf],
                                          params[part]["norm"][leaf])
    np.testing.assert_allclose(vm[1], 6.0 * params["hidden"]["dense"]["bias"], rtol=1e-14)


def test_unit_gain_biases_are_standard_normal():
    # biases are sampled at unit variance (apply_gains multiplies by σ_b)
    spec = MLPSpec(width=4096, depth=1, in_dim=1, out_dim=1)
    b = np.asarray(init_params(spec, jax.random.PRNGKey(0))["input_layer"]["dense"]["bias"])
    assert abs(b.mean()) < 5 / math.sqrt(b.size)
    assert b.var() == pytest.approx(1.0, rel=0.15)  # sd of the estimate: 2.2 %


# ------------------------------------------------------------------------ initializers
@functools.lru_cache(maxsize=None)
def _sample(name, shape, seed=7):
    w = get_initializer(name).sample(jax.random.PRNGKey(seed), shape, jnp.float32)
    assert w.shape == shape and w.dtype == jnp.float32
    return np.asarray(w, np.float64)


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_VARIANCE))
@pytest.mark.parametrize("shape", [(N, N), (N, N // 2), (N // 2, N)], ids=["sq", "tall", "wide"])
def test_initializer_variance_factor(name, shape):
    fi, fo = shape
    fam = get_initializer(name)
    w = _sample(name, shape)
    measured = fi * w.var()
    assert abs(w.mean()) < 5 * math.sqrt(w.var() / w.size)
    assert fam.variance_factor(fi, fo) == pytest.approx(CLOSED_FORM_VARIANCE[name](fi, fo),
                                                        rel=1e-12)
    assert measured == pytest.approx(CLOSED_FORM_VARIANCE[name](fi, fo), rel=VAR_RTOL)


def test_registered_names_all_have_a_closed_form():
    # a new built-in initializer must get a closed-form reference above
    assert set(gradstudy.nn.initializer_names()) == set(CLOSED_FORM_VARIANCE)


@pytest.mark.parametrize("shape", [(N, N), (N, N // 2), (N // 2, N)], ids=["sq", "tall", "wide"])
def test_orthogonal_is_semi_orthogonal(shape):
    w = _sample("orthogonal", shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-5)


@pytest.mark.parametrize("name,bound", [
    ("standard_uniform", lambda fi, fo: 1 / math.sqrt(fi)),
    ("glorot_uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
])
def test_uniform_bounds(name, bound):
    fi, fo = N, N // 2
    w = np.abs(_sample(name, (fi, fo)))
    lim = bound(fi, fo)
    assert w.max() <= lim * (1 + 1e-7)
    # uniform on [-lim, lim]: the max of 131072 |draws| is within 0.1 % of lim
    assert w.max() >= 0.999 * lim
    # and |W|/lim is U[0, 1]: mean 1/2
    assert (w / lim).mean() == pytest.approx(0.5, abs=0.005)


def test_sigma_w2_is_gain_squared_times_variance_factor():
    spec = MLPSpec(width=N, depth=2, init="he_normal", sigma_w=1.5)
    assert spec.sigma_w2() == pytest.approx(1.5**2 * 2.0, rel=1e-12)
    spec = MLPSpec(width=N, depth=2, init="glorot_uniform", sigma_w=2.0)
    assert spec.sigma_w2(N, 3 * N) == pytest.approx(4.0 * 2 * N / (4 * N), rel=1e-12)


KERNEL_STD = {  # unit-gain entry std of a (fan_in, fan_out) kernel, from the papers
    "gaussian": lambda fi, fo: 1 / math.sqrt(fi),
    "he_normal": lambda fi, fo: math.sqrt(2 / fi),
    "glorot_uniform": lambda fi, fo: math.sqrt(2 / (fi + fo)),
    "standard_uniform": lambda fi, fo: 1 / math.sqrt(3 * fi),
}


@pytest.mark.parametrize("name", sorted(KERNEL_STD))
def test_kernel_scales_and_shared_programs(name):
    spec = MLPSpec(width=8, depth=3, in_dim=3, out_dim=2, init=name, sigma_w=1.5, sigma_b=0.2)
    std = KERNEL_STD[name]
    expected = (1.5 * std(3, 8), 1.5 * std(8, 8), 1.5 * std(8, 2))
    assert spec.kernel_scales() == pytest.approx(expected, rel=1e-12)
    # scaled families of one distribution share a compiled program (static_key)
    same_dist = "glorot_uniform" if "uniform" in name else "gaussian"
    assert spec.static_key() == spec.replace(init=same_dist, sigma_w=0.3, sigma_b=0.0).static_key()
    other_dist = "gaussian" if "uniform" in name else "glorot_uniform"
    assert spec.static_key() != spec.replace(init=other_dist).static_key()


def test_kernel_scales_unscaled_family():
    spec = MLPSpec(width=8, depth=3, in_dim=3, out_dim=2, init="orthogonal", sigma_w=1.5)
    assert spec.kernel_scales() == (1.5, 1.5, 1.5)
    assert spec.static_key().init == "orthogonal"


@pytest.mark.parametrize("name", sorted(KERNEL_STD) + ["orthogonal"])
def test_sample_params_equals_init_then_gains(name):
    """Sweeps draw unit samples and scale them (static_key × kernel_scales); that must be the
    network ``init_params`` + ``apply_gains(σ_w, σ_b)`` gives, draw for draw."""
    spec = MLPSpec(width=8, depth=1, in_dim=3, out_dim=5, init=name, sigma_w=1.7, sigma_b=0.4)
    key = jax.random.PRNGKey(11)
    a = jax.device_get(gradstudy.sample_params(spec, key))
    b = jax.device_get(apply_gains(init_params(spec, key), spec.sigma_w, spec.sigma_b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    # and the entries have the papers' std times σ_w (512 draws per kernel: loose)
    if name in KERNEL_STD:
        k = a["input_layer"]["dense"]["kernel"]
        assert k.std() == pytest.approx(1.7 * KERNEL_STD[name](3, 8), rel=0.35)


# ------------------------------------------------- user initializers and activations
def _sqrt3_uniform(key, shape, dtype=jnp.float32):
    """U[±√3/√fan_in]: Var W = 1/fan_in, so fan_in · Var W = 1."""
    lim = math.sqrt(3.0 / shape[-2])
    return jax.random.uniform(key, shape, dtype, -lim, lim)


def _softsign(x):
    return x / (1 + jnp.abs(x))


def test_user_initializer_and_activation_plug_in(isolated_registries):
    register_initializer("test_sqrt3_uniform", _sqrt3_uniform)  # factor measured by sampling
    register_initializer("test_sqrt3_uniform_exact", _sqrt3_uniform, lambda fi, fo: 1.0)
    fam = get_initializer("test_sqrt3_uniform")
    assert fam.sample is _sqrt3_uniform
    assert fam.variance_factor(N, N) == pytest.approx(1.0, rel=VAR_RTOL)
    assert get_initializer("test_sqrt3_uniform_exact").variance_factor(3, 5) == 1.0
    assert "test_sqrt3_uniform" in gradstudy.nn.initializer_names()

    spec = MLPSpec(width=8, depth=3, in_dim=4, out_dim=2, init="test_sqrt3_uniform",
                   activation=_softsign, sigma_w=1.7, sigma_b=0.3, dtype="float64")
    assert spec.describe()["activation"].startswith("_softsign#")  # name + code hash
    assert spec.sigma_w2(N, N) == pytest.approx(1.7**2, rel=VAR_RTOL)
    with jax.enable_x64(True):
        x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 4), jnp.float64))
        unit, params, y, stats = _init_and_apply(spec, 0, x)
    k = unit["hidden"]["dense"]["kernel"]
    assert np.abs(k).max() <= math.sqrt(3 / 8) * (1 + 1e-12)
    assert np.abs(k).max() >= 0.8 * math.sqrt(3 / 8)  # the user's bound, not a default one
    # plain (no norm, no residual) stack with the user's activation
    _check_forward(spec, params, x, y, stats, lambda z: z / (1 + np.abs(z)))

    # a callable init (not registered) works too
    spec2 = MLPSpec(width=8, depth=1, in_dim=300, out_dim=2, init=_sqrt3_uniform)
    assert spec2.describe()["init"].startswith("_sqrt3_uniform#")
    k2 = np.abs(np.asarray(init_params(spec2, jax.random.PRNGKey(0))["input_layer"]["dense"]
                           ["kernel"]))
    assert 0.95 * math.sqrt(3 / 300) <= k2.max() <= math.sqrt(3 / 300) * (1 + 1e-6)


def test_register_scaled_initializer(isolated_registries):
    initializers_mod.register_scaled_initializer("test_normal_1p5", "normal",
                                                 lambda fi, fo: 1.5)
    fam = get_initializer("test_normal_1p5")
    w = np.asarray(fam.sample(jax.random.PRNGKey(0), (N, N // 2)), np.float64)
    assert N * w.var() == pytest.approx(1.5, rel=VAR_RTOL)
    assert fam.std(N, N) == pytest.approx(math.sqrt(1.5 / N), rel=1e-12)
    spec = MLPSpec(width=8, depth=2, init="test_normal_1p5")
    assert spec.static_key() == spec.replace(init="he_normal").static_key()
    assert spec.sigma_w2() == pytest.approx(1.5, rel=1e-12)
    with pytest.raises(ConfigError, match="^unit: .*allowed: normal, uniform"):
        initializers_mod.register_scaled_initializer("test_bad", "cauchy", lambda fi, fo: 1.0)


def test_registered_activation_by_name(isolated_registries):
    gradstudy.register_activation("test_softsign", _softsign)
    spec = MLPSpec(width=4, depth=2, out_dim=1, activation="test_softsign")
    assert spec.describe()["activation"] == "test_softsign"
    with pytest.raises(TypeError):
        gradstudy.register_activation("test_bad", 3.0)
    with pytest.raises(TypeError):
        register_initializer("test_bad", "not callable")


# --------------------------------------------------------------------------- validation
BAD_FIELDS = [
    ("width", 0, None),
    ("depth", -1, None),
    ("activation", "foo", "tanh"),
    ("init", "bar", "gaussian"),
    ("norm", "x", "layernorm"),
    ("dtype", "float16", "float64"),
    ("sigma_w", -1, None),
    ("residual_alpha", float("nan"), None),
]


@pytest.mark.parametrize("field,value,allowed_example", BAD_FIELDS,
                         ids=[f[0] for f in BAD_FIELDS])
def test_spec_validation_one_line_naming_field(field, value, allowed_example):
    with pytest.raises(ConfigError) as info:
        MLPSpec(**{field: value})
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{field}:")
    assert repr(value) in msg
    if allowed_example is not None:
        # categorical: every allowed value is listed
        allowed = gradstudy.families.mlp.allowed_values()[field]
        assert allowed_example in allowed
        assert "allowed:" in msg
        for name in allowed:
            assert name in msg


@pytest.mark.parametrize("field,value", [("width", 2.5), ("depth", True), ("sigma_b", math.inf),
                                         ("out_dim", 0), ("in_dim", -3), ("sigma_w", "1")])
def test_spec_validation_more_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        MLPSpec(**{field: value})


def test_static_key_drops_only_gains():
    a = MLPSpec(width=4, depth=2, sigma_w=1.3, sigma_b=0.1)
    b = a.replace(sigma_w=0.2, sigma_b=0.0)
    assert a != b and a.static_key() == b.static_key()
    assert a.static_key() != a.replace(activation="relu").static_key()
