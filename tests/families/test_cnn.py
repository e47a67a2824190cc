"""The 1-D convolutional family (gradstudy.families.cnn) and the delta-orthogonal initializer.

References, each independent of the code under test: Q of a LAPACK QR
(``jax.nn.initializers.orthogonal``) and Gram matrices for delta-orthogonal kernels; a
pure-``jnp`` re-implementation of the network (shifted-slice convolutions, explicit
additive taps on every layer's output) differentiated with ``jax.grad`` in float64 and
checked by finite differences; closed forms (an isometric linear stack, mean-field
χ = σ_w² E[φ'²] for He-initialised ReLU, the residual variance (1 + α²)^(depth − 1)); a
per-seed Python loop for the compiled sweep program; hand-counted parameter numbers.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import gradstudy.engine._sweep as sweep_mod
from gradstudy import Sweep
from gradstudy._seeds import seed_keys
from gradstudy.data import Dataset
from gradstudy.engine import run_cached, run_sweep_arrays
from gradstudy.errors import ConfigError
from gradstudy.families import family_of
from gradstudy.families.cnn import (
    BLOCKS,
    CNN_FAMILY,
    CNN_TRAIN_HOOKS,
    CNNSpec,
    ConvNet,
    family_scalars,
    init_params,
    sample_network,
    sample_params,
)
from gradstudy.nn import fans, get_initializer
from gradstudy.tools import leaf_names


def _scalars(spec, dtype=np.float64):
    return tuple(np.asarray(s, dtype) for s in family_scalars(spec))


def _init(spec, key):
    # jitted: flax's init of an nn.scan stack op by op takes seconds
    return jax.jit(lambda k: init_params(spec, k))(key)


# ----------------------------------------------------------------- delta-orthogonal init
@pytest.mark.parametrize("shape", [(5, 16, 16), (3, 8, 16), (3, 16, 8), (1, 6, 6), (4, 6, 6),
                                   (3, 3, 4, 6), (12, 7)])
def test_delta_orthogonal_kernel(shape):
    """Centre tap (semi-)orthogonal, times the gain: W Wᵀ = gain² I (rows if C_in <= C_out,
    else columns); every other tap exactly 0; the centre tap is the Q that LAPACK's QR
    gives for the same Gaussian draw (jax.nn.initializers.orthogonal)."""
    key, gain = jax.random.PRNGKey(3), 1.7
    *spatial, c_in, c_out = shape
    with jax.enable_x64(True):
        w = np.asarray(gain * get_initializer("delta_orthogonal").sample(key, shape,
                                                                        jnp.float64))
        reference = np.asarray(jax.nn.initializers.orthogonal()(key, (c_in, c_out),
                                                                jnp.float64))
    assert w.shape == shape
    centre = tuple((k - 1) // 2 for k in spatial)
    tap = w[centre]
    gram = tap @ tap.T if c_in <= c_out else tap.T @ tap
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(c_in, c_out)), atol=1e-6)
    rest = w.copy()
    rest[centre] = 0
    assert np.all(rest == 0)  # every other tap exactly zero
    np.testing.assert_allclose(tap, gain * reference, atol=1e-10)
    # its variance factor fan_in · E[W²] holds exactly (Σ W² = min(C_in, C_out) at gain 1)
    fan_in, fan_out = fans(shape)
    factor = get_initializer("delta_orthogonal").variance_factor(fan_in, fan_out)
    assert fan_in * np.mean(w**2) / gain**2 == pytest.approx(factor, rel=1e-12)
    assert factor == pytest.approx(min(c_in, c_out) / c_out, rel=1e-15)


def test_delta_orthogonal_float32_and_same_padding_isometry():
    """float32 kernels are orthogonal to float32 rounding, and flax's 'SAME' convolution
    with a square delta-orthogonal kernel maps every position by the same orthogonal Q."""
    w = get_initializer("delta_orthogonal").sample(jax.random.PRNGKey(0), (5, 64, 64))
    assert w.dtype == jnp.float32
    q = np.asarray(w[2], np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(64), atol=2e-6)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 11, 64)))
    conv = jax.lax.conv_general_dilated(jnp.asarray(x), w, (1,), "SAME",
                                        dimension_numbers=("NWC", "WIO", "NWC"))
    np.testing.assert_allclose(np.asarray(conv), x @ q, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(conv)), np.linalg.norm(x),
                               rtol=1e-5)


# --------------------------------------------------------- independent reference network
def _conv_same(h, w, b):
    """'SAME' cross-correlation by shifted slices: out[t] = Σ_j h[t + j − lo] W[j] + b."""
    k, length = w.shape[0], h.shape[1]
    lo = (k - 1) // 2
    hp = jnp.pad(h, ((0, 0), (lo, k - 1 - lo), (0, 0)))
    out = sum(jnp.einsum("btc,cd->btd", hp[:, j:j + length], w[j]) for j in range(k))
    return out if b is None else out + b


def _reference_loss(spec, params, x, t, taps, loss):
    """The network written out in jnp, with ``taps[l]`` added to layer l's output."""
    phi = {"relu": jax.nn.relu, "tanh": jnp.tanh, "linear": lambda z: z}[spec.activation]
    alpha = 1 / math.sqrt(spec.depth - 1) if spec.residual_alpha is None \
        else spec.residual_alpha

    def layer(h, p, first):
        b = p["conv"].get("bias")
        if spec.block == "residual":
            return _conv_same(h, p["conv"]["kernel"], b) if first \
                else h + alpha * _conv_same(phi(h), p["conv"]["kernel"], b)
        z = _conv_same(h, p["conv"]["kernel"], b)
        if spec.block == "batchnorm":
            mean, var = z.mean(axis=(0, 1)), z.var(axis=(0, 1))
            z = (z - mean) / jnp.sqrt(var + 1e-5) * p["norm"]["scale"] + p["norm"]["offset"]
        return phi(z)

    h = layer(x, params["input_layer"], True) + taps[0]
    for i in range(spec.depth - 1):
        h = layer(h, jax.tree.map(lambda a, i=i: a[i], params["hidden"]), False) + taps[i + 1]
    if spec.block == "residual":
        h = phi(h)
    y = h.mean(axis=1) @ params["readout"]["dense"]["kernel"] + params["readout"]["dense"]["bias"]
    if loss == "mse":
        return 0.5 * jnp.mean(jnp.sum((y - t) ** 2, axis=-1))
    return jnp.mean(jnp.sum(y * t, axis=-1))


@pytest.mark.parametrize("block, activation, init, loss", [
    ("plain", "relu", "he_normal", "mse"),
    ("plain", "tanh", "delta_orthogonal", "linear"),
    ("batchnorm", "tanh", "he_normal", "mse"),
    ("batchnorm", "relu", "glorot_uniform", "linear"),
    ("residual", "relu", "he_normal", "mse"),
])
def test_measure_equals_direct_grad_and_finite_differences(block, activation, init, loss):
    spec = CNNSpec(depth=4, channels=4, kernel_size=3, length=7, out_dim=3, block=block,
                   activation=activation, init=init, sigma_w=1.3, dtype="float64")
    batch, input_std, key = 3, 0.8, jax.random.PRNGKey(5)
    static, scalars = CNN_FAMILY.program_key(spec), _scalars(spec)
    with jax.enable_x64(True):
        got, (params, x, t) = jax.jit(lambda k, s: (
            CNN_FAMILY.measure(static, (4,), batch, input_std, k, s, False, loss),
            sample_network(static, k, batch, input_std, s)))(key, scalars)
        assert x.shape == (batch, 7, 1) and t.shape == (batch, 3)
        taps = [jnp.zeros((batch, 7, 4), jnp.float64) for _ in range(4)]

        @jax.jit
        def of_taps(taps):
            return _reference_loss(spec, params, x, t, taps, loss)

        @jax.jit
        def of_params(params):
            return _reference_loss(spec, params, x, t, taps, loss)

        check_grads(of_taps, (taps,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
        d_taps = jax.grad(of_taps)(taps)
        d_params = jax.grad(of_params)(params)
        value = of_taps(taps)
    backprop = [np.linalg.norm(np.asarray(g)) for g in d_taps]
    kernels = [np.linalg.norm(np.asarray(d_params["input_layer"]["conv"]["kernel"]))] + \
        [np.linalg.norm(np.asarray(g)) for g in d_params["hidden"]["conv"]["kernel"]]
    np.testing.assert_allclose(got["backprop_norm"], backprop, rtol=1e-10)
    np.testing.assert_allclose(got["weight_grad_norm"], kernels, rtol=1e-10)
    np.testing.assert_allclose(got["readout_grad_norm"],
                               np.linalg.norm(d_params["readout"]["dense"]["kernel"]),
                               rtol=1e-10)
    assert float(got["loss"]) == pytest.approx(float(value), rel=1e-12)
    for name, (dims, _) in CNN_FAMILY.measured.items():
        assert got[name].shape == (4,) * len(dims)
        assert np.all(np.asarray(got[name + "_status"]) == 0)


# ------------------------------------------------------------------------- closed forms
def test_delta_orthogonal_linear_stack_is_an_isometry():
    """Linear plain stack, delta-orthogonal: each layer maps every position by σ_w·Q, so
    ‖∂L/∂h_l‖ = σ_w^(depth − l) · ‖T W_outᵀ‖_F / (batch √length) (linear loss: ∂L/∂y =
    T / batch, spread evenly over the positions by the average pool); at σ_w = 1 the same
    at every layer, to float precision.  Both gains run one compiled program."""
    depth, batch, length = 12, 5, 13
    spec = CNNSpec(depth=depth, channels=16, kernel_size=5, length=length, in_channels=2,
                   activation="linear", init="delta_orthogonal", dtype="float64")
    static, key = CNN_FAMILY.program_key(spec), jax.random.PRNGKey(2)
    with jax.enable_x64(True):
        run = jax.jit(lambda k, s: (CNN_FAMILY.measure(static, (depth,), batch, 1.0, k, s,
                                                       False, "linear"),
                                    sample_network(static, k, batch, 1.0, s)))
        for sigma_w in (1.0, 1.1):
            got, (params, _, t) = run(key, _scalars(spec.replace(sigma_w=sigma_w)))
            w_out = np.asarray(params["readout"]["dense"]["kernel"])
            top = np.linalg.norm(np.asarray(t) @ w_out.T) / (batch * math.sqrt(length))
            expected = top * sigma_w ** (depth - np.arange(1, depth + 1))
            np.testing.assert_allclose(got["backprop_norm"], expected, rtol=1e-12)
            if sigma_w == 1.0:
                bp = np.asarray(got["backprop_norm"])
                assert np.ptp(bp) / bp.mean() < 1e-12
        assert run._cache_size() == 1


def _log_slopes(values):
    """Per seed, the least-squares slope of log values against the layer index."""
    layers = np.arange(1, values.shape[-1] + 1)
    return np.polyfit(layers, np.log(values).T, 1)[0]


@pytest.fixture(scope="module")
def he_relu_sweep():
    """He init, ReLU, plain, depth 20, σ_w ∈ {0.8, 1, 1.2}: one compiled program."""
    gains = (0.8, 1.0, 1.2)
    sweep = Sweep(points=[CNNSpec(depth=20, channels=32, sigma_w=g) for g in gains],
                  depths=(20,), seeds=8, batch=8, loss="linear")
    return gains, run_sweep_arrays(sweep, progress=False)


def test_he_relu_backprop_slope_is_mean_field_chi(he_relu_sweep):
    """χ = σ_w² · 2/fan_in · fan_in · E[relu'²] = σ_w²: ‖∂L/∂h_l‖ grows towards the input
    by √χ = σ_w per layer, so the per-layer slope of log‖∂L/∂h_l‖ is −log σ_w (≈ 0 at the
    He point); tolerance 4 standard errors of the mean over seeds, plus 0.02 for the
    zero-padded edges (they lose a little signal at every layer)."""
    gains, out = he_relu_sweep
    for p, gain in enumerate(gains):
        slopes = _log_slopes(out["backprop_norm"][p])
        se = slopes.std(ddof=1) / math.sqrt(slopes.size)
        assert abs(slopes.mean() + math.log(gain)) < 4 * se + 0.02, (gain, slopes)
    # the He point (σ_w = 1) is flat, the others are not
    assert abs(_log_slopes(out["backprop_norm"][1]).mean()) < 0.05
    assert _log_slopes(out["backprop_norm"][0]).mean() > 0.15
    assert _log_slopes(out["backprop_norm"][2]).mean() < -0.15


def test_residual_depth_50_stays_bounded():
    """Pre-activation residual blocks, He + ReLU, α = 1/√(depth − 1): in mean field each
    block scales the forward and backward variances by 1 + α², so across the stack by
    (1 + 1/49)^49 ≈ 2.69 < e, against 2^49 with α = 1.  The forward ratio matches (25 %);
    the backward one is bounded (at 16 channels the gradient's correlation with the
    weights it passed through adds ≈ 30 %, a finite-width effect)."""
    depth = 50
    spec = CNNSpec(depth=depth, channels=16, block="residual")
    assert spec.alpha == pytest.approx(1 / 7)
    growth = (1 + spec.alpha**2) ** (depth - 1)
    out = run_sweep_arrays(Sweep(points=[spec], depths=(depth,), seeds=4, batch=8,
                                 loss="linear"), progress=False)
    q = out["output_q"][0]  # (seeds, layers)
    np.testing.assert_allclose(q[:, 0].mean(), 2.0, rtol=0.2)  # He conv of N(0, 1) inputs
    forward = q[:, -1] / q[:, 0]
    backward = (out["backprop_norm"][0][:, 0] / out["backprop_norm"][0][:, -1]) ** 2
    assert np.exp(np.log(forward).mean()) == pytest.approx(growth, rel=0.25), forward
    assert np.all((backward > 1) & (backward < 2 * math.e)), backward


# ------------------------------------------------------------------- sweeps: one program
def test_gain_grid_is_one_program_and_equals_a_per_seed_loop(tmp_path):
    sweep_mod.compiled_program.cache_clear()
    gains = (1.0, 1.2, 1.5)
    points = [CNNSpec(depth=5, channels=6, kernel_size=3, length=9, out_dim=4,
                      init="delta_orthogonal", activation="tanh", sigma_w=g, dtype="float64")
              for g in gains]
    sweep = Sweep(points=points, depths=(5,), seeds=8, batch=4, base_seed=7, input_std=0.7)
    assert len(sweep.groups()) == 1
    ds = run_cached(sweep, tmp_path, "cnn", progress=False)
    assert sweep_mod.compiled_program.cache_info().currsize == 1
    assert ds.backprop_norm.dims == ("point", "seed", "layer")
    assert ds.weight_grad_norm.dims == ("point", "seed", "layer")
    assert ds.loss.dims == ("point", "seed")
    assert list(ds.layer.values) == [1, 2, 3, 4, 5]
    assert list(ds.sigma_w.values) == list(gains)
    assert list(ds.block.values) == ["plain"] * 3
    assert list(ds.init.values) == ["delta_orthogonal"] * 3
    assert list(ds.kernel_size.values) == [3] * 3
    static = CNN_FAMILY.program_key(points[0])
    keys = seed_keys(sweep.base_seed, sweep.seeds)
    with jax.enable_x64(True):
        one = jax.jit(lambda k, s: CNN_FAMILY.measure(static, (5,), 4, 0.7, k, s, False,
                                                      "mse"))
        for p, point in enumerate(points):
            for s in range(sweep.seeds):
                ref = one(keys[s], _scalars(point))
                for name in ("backprop_norm", "weight_grad_norm", "loss",
                             "readout_grad_norm"):
                    np.testing.assert_allclose(ds[name].values[p, s], ref[name], rtol=1e-12)
    again = run_cached(sweep, tmp_path, "cnn", progress=False)  # verified and reused
    np.testing.assert_array_equal(again.backprop_norm.values, ds.backprop_norm.values)


def test_delta_orthogonal_sweep_at_width_64_does_not_hang():
    """8 seeds × 2 gains of 64-channel delta-orthogonal nets in one vmapped program: with
    LAPACK's QR (batched 64 x 64) this program deadlocked on XLA CPU; the Householder
    construction runs it in seconds."""
    sweep = Sweep(points=[CNNSpec(depth=4, channels=64, init="delta_orthogonal",
                                  sigma_w=g) for g in (1.0, math.sqrt(2))],
                  depths=(4,), seeds=8, batch=4)
    out = run_sweep_arrays(sweep, progress=False)
    assert np.all(np.isfinite(out["backprop_norm"]))


def test_he_and_lecun_share_a_program_and_scale_as_their_fans():
    he, lecun = CNNSpec(init="he_normal", sigma_w=0.9), CNNSpec(init="lecun_normal")
    assert he.static_key() == lecun.static_key()
    k, c = he.kernel_size, he.channels
    np.testing.assert_allclose(he.kernel_scales(),
                               [0.9 * math.sqrt(2 / k), 0.9 * math.sqrt(2 / (k * c)),
                                0.9 * math.sqrt(2 / c)], rtol=1e-12)
    assert he.sigma_w2() == pytest.approx(2 * 0.81)
    delta = CNNSpec(init="delta_orthogonal", sigma_w=math.sqrt(2))
    assert delta.kernel_scales() == (math.sqrt(2),) * 3 and delta.sigma_w2() == pytest.approx(2)
    assert delta.static_key() == delta.replace(sigma_w=1.0)
    # sampled stacked kernels have Var = 2 σ_w² / (k C)
    params = jax.jit(lambda k: sample_params(he.replace(depth=9), k))(jax.random.PRNGKey(0))
    w = np.asarray(params["hidden"]["conv"]["kernel"])
    assert w.var() == pytest.approx(2 * 0.81 / (k * c), rel=6 * math.sqrt(2 / w.size))


@pytest.mark.parametrize("block", BLOCKS)
def test_memory_estimate_covers_xla(block):
    """The family's working-memory estimate is never below XLA's own figure for the sweep
    program (2 networks at a time), nor above twice it."""
    spec = CNNSpec(depth=8, channels=32, block=block).static_key()
    program = sweep_mod.compiled_program.__wrapped__(spec, (8,), 64, 1.0, 2)
    scalars = (np.asarray([spec.kernel_scales()] * 2, np.float32),)
    m = program.lower(seed_keys(0, 2), *scalars).compile().memory_analysis()
    xla = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    working, _, _ = CNN_FAMILY.memory(spec, (8,), 64, False)
    assert xla <= working <= 2 * xla


def test_more_than_one_depth_is_refused():
    sweep = Sweep(points=[CNNSpec(depth=3, channels=2)], depths=(2, 3), seeds=1, batch=2)
    with pytest.raises(ConfigError, match=r"^depths: the cnn family measures one depth"):
        run_sweep_arrays(sweep, progress=False)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field, value", [
    ("depth", 1), ("depth", 2.5), ("channels", 0), ("kernel_size", 4), ("kernel_size", 0),
    ("kernel_size", True), ("in_channels", 0), ("length", -3), ("out_dim", "10"),
    ("activation", "nope"), ("activation", 3), ("block", "dense"), ("block", None),
    ("init", "nope"), ("sigma_w", -1.0), ("sigma_w", float("nan")), ("sigma_w", "1"),
    ("residual_alpha", 0.5), ("dtype", "float16"),
])
def test_bad_values_name_their_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field}: ") as err:
        CNNSpec(**{field: value})
    assert "\n" not in str(err.value)


def test_residual_alpha_validated_for_residual_blocks():
    with pytest.raises(ConfigError, match=r"^residual_alpha: must be a finite number"):
        CNNSpec(block="residual", residual_alpha=-0.1)
    assert CNNSpec(block="residual", residual_alpha=0.3).alpha == 0.3
    assert math.isnan(CNNSpec().alpha)


def test_spec_describe_replace_and_family():
    spec = CNNSpec(depth=np.int64(6), sigma_w=np.float32(1.5), dtype=np.float64)
    assert (spec.depth, spec.dtype) == (6, "float64") and type(spec.depth) is int
    d = json.loads(json.dumps(spec.describe()))
    assert d["model"] == "cnn" and d["init"] == "he_normal" and d["init_fingerprint"]
    assert spec.replace(depth=7).depth == 7 and hash(spec) == hash(spec.replace())
    assert family_of(spec) is CNN_FAMILY
    assert CNN_FAMILY.fingerprint(spec) is not None
    assert CNN_FAMILY.why_unfingerprintable(spec) is None
    assert "depth 6" in CNN_FAMILY.label(spec)


# ------------------------------------------------------------------------ model / params
@pytest.mark.parametrize("block", BLOCKS)
def test_stack_leaves_have_a_layer_axis(block):
    spec = CNNSpec(depth=5, channels=3, kernel_size=3, length=8, in_channels=2, out_dim=4,
                   block=block)
    params = _init(spec, jax.random.PRNGKey(0))
    names, leaves = leaf_names(params), jax.tree.leaves(params)
    stacked = [n for n, x in zip(names, leaves) if CNN_TRAIN_HOOKS.stacked(n, x)]
    assert stacked and all(n.startswith("hidden/") for n in stacked)
    for n, x in zip(names, leaves):
        if CNN_TRAIN_HOOKS.stacked(n, x):
            assert x.shape[0] == 4  # depth − 1
    shapes = dict(zip(names, (x.shape for x in leaves)))
    assert shapes["input_layer/conv/kernel"] == (3, 2, 3)
    assert shapes["hidden/conv/kernel"] == (4, 3, 3, 3)
    assert shapes["readout/dense/kernel"] == (3, 4)
    expected = {"plain": {"hidden/conv/bias": (4, 3)}, "residual": {"hidden/conv/bias": (4, 3)},
                "batchnorm": {"hidden/norm/scale": (4, 3), "hidden/norm/offset": (4, 3)}}
    for n, shape in expected[block].items():
        assert shapes[n] == shape
    assert CNN_TRAIN_HOOKS.param_count(spec) == sum(x.size for x in leaves)
    assert CNN_TRAIN_HOOKS.layer_leaves(names) == ["input_layer/conv/kernel", "hidden/conv/kernel",
                                             "readout/dense/kernel"]
    assert CNN_TRAIN_HOOKS.layers(spec) == 6
    assert [n for n in names if CNN_TRAIN_HOOKS.is_output(n)] == ["readout/dense/bias",
                                                            "readout/dense/kernel"]
    # (batch, length) and (batch, length, channels) inputs
    x = jnp.ones((2, 8, 2))
    assert ConvNet(spec).apply({"params": params}, x).shape == (2, 4)
    one = spec.replace(in_channels=1)
    p1 = _init(one, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(CNN_TRAIN_HOOKS.apply(one)(p1, jnp.ones((2, 8))),
                                  CNN_TRAIN_HOOKS.apply(one)(p1, jnp.ones((2, 8, 1))))


def test_check_data_and_memory_hooks():
    spec = CNNSpec(length=40, out_dim=10)
    x = np.zeros((6, 40), np.float32)
    y = np.zeros(6, np.int32)
    assert CNN_TRAIN_HOOKS.check_data(spec, Dataset(x, y, x, y, 10)) is None
    assert CNN_TRAIN_HOOKS.check_data(spec, Dataset(x[:, :, None], y, x, y, 10)) is None
    why = CNN_TRAIN_HOOKS.check_data(spec, Dataset(x[:, :30], y, x, y, 10))
    assert why == "has length 40, in_channels 1, out_dim 10; the data need 30, 1 and 10"
    assert "out_dim 10" in CNN_TRAIN_HOOKS.check_data(spec, Dataset(x, y, x, y, 3))
    assert "in_channels" in CNN_TRAIN_HOOKS.check_data(spec, Dataset(np.zeros((6, 40, 2)), y, x,
                                                               y, 10))
    hooks = CNN_TRAIN_HOOKS
    assert hooks.activation_bytes(spec, 20) == 2 * hooks.activation_bytes(spec, 10)
    assert CNN_TRAIN_HOOKS.activation_bytes(spec, 1) > 4 * spec.depth * spec.length * spec.channels
    coords = CNN_TRAIN_HOOKS.coords([spec, spec.replace(block="residual", depth=5)])
    assert coords["depth"] == [16, 5] and coords["alpha"][1] == 0.5
    working, output, what = CNN_FAMILY.memory(spec, (16,), 32, False)
    assert working > 4 * 32 * 40 * 32 * 16 and output > 0 and "depth 16" in what


@pytest.mark.parametrize("block, depth", [("plain", 6), ("batchnorm", 6), ("residual", 50)])
def test_train_hooks_fit_random_labels(block, depth):
    """A few Adam steps on 32 random signals with random labels lower the loss, through
    the training hooks (init with traced scalars, apply on (batch, length) inputs)."""
    spec = CNNSpec(depth=depth, channels=8, block=block, sigma_w=1.0)
    key_spec = CNN_FAMILY.program_key(spec)
    scalars = tuple(jnp.asarray(s, jnp.float32) for s in CNN_FAMILY.scalars(spec))
    params = jax.jit(CNN_TRAIN_HOOKS.init, static_argnums=0)(key_spec, jax.random.PRNGKey(0),
                                                       scalars)
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 40))
    y = jax.random.randint(jax.random.PRNGKey(2), (32,), 0, 10)
    forward = CNN_TRAIN_HOOKS.apply(key_spec)
    opt = optax.adam(1e-2)

    def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p, x), y).mean()

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    state = opt.init(params)
    losses = []
    for _ in range(25):
        params, state, value = step(params, state)
        losses.append(float(value))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("padding, k", [("same", 3), ("same", 5), ("circular", 3),
                                        ("circular", 1)])
def test_conv1d_equals_flax_conv(padding, k):
    """The shifted-matmul convolution is nn.Conv (same parameters, same numbers)."""
    import flax.linen as nn

    from gradstudy.families.cnn import Conv1D

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 11, 4))
    ours = Conv1D(6, k, padding=padding)
    params = ours.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda a: a + 0.1, params)  # non-zero bias
    theirs = nn.Conv(6, (k,), padding=padding.upper())
    assert jax.tree.map(jnp.shape, theirs.init(jax.random.PRNGKey(1), x)) == \
        jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5,
                               atol=1e-6)
