"""The recurrent family (gradstudy.families.rnn), each probe against an independent reference.

* forward pass, ∂L/∂s_t and ‖∂s_T/∂s_t‖₂ of every cell against a hand-written unrolled loop
  (central differences and ``jax.jacfwd`` of it, NumPy's SVD), float64;
* closed forms: a linear RNN with W = ρQ (Q orthogonal) has ‖∂h_T/∂h_t‖₂ = ρ^(T−t); a tanh
  RNN obeys Pascanu et al.'s bound ‖∂h_T/∂h_t‖₂ ≤ λ₁^(T−t) per example; identity init is ρ·I;
* a sweep over ρ is one compiled program whose numbers equal a per-seed Python loop;
* the spec's one-line errors, the training hooks, and the generic probe on the model.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

import gradstudy.engine._sweep as sweep_mod
from gradstudy import Sweep
from gradstudy._seeds import seed_keys
from gradstudy.data import Dataset
from gradstudy.engine import run_cached
from gradstudy.errors import ConfigError
from gradstudy.families import family_of
from gradstudy.families.rnn import (
    RNN_FAMILY,
    RecurrentNet,
    RNNSpec,
    apply,
    haar_orthogonal,
    init_params,
    kernel_names,
    recurrent_kernels,
    sample_params,
    scale_params,
    spectral_radius,
    state_jacobians,
    through_time,
)
from gradstudy.tools import probe

CELLS = ("tanh", "relu", "linear", "lstm", "gru")
# compiled, not run op by op (seconds faster per test)
jit_through_time = jax.jit(through_time, static_argnums=0,
                           static_argnames=("loss", "jacobian_samples"))
SIGMOID = jax.nn.sigmoid


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _flat(params) -> dict:
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(params)).items()}


def _randomized(params, key, scale=0.6):
    """Every leaf (biases too) random, so that a bias in the wrong place shows."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [scale * jax.random.normal(k, v.shape, v.dtype)
                                        for k, v in zip(keys, leaves)])


# --------------------------------------------------------------- the unrolled reference
def reference_run(spec, params, x, taps):
    """The cells' equations written out (flax ``Dense`` layout y = x K + b), one Python
    step per time step; ``taps[t]`` added to the state s_t.  Returns (outputs, s_T)."""
    p = _flat(params)
    k = lambda name: p[f"cell/{spec.kind}/{name}/kernel"]  # noqa: E731
    b = lambda name: p[f"cell/{spec.kind}/{name}/bias"]  # noqa: E731
    n = spec.hidden
    s = taps[0]
    hs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if spec.kind == "elman":
            phi = {"tanh": jnp.tanh, "relu": lambda z: jnp.maximum(z, 0),
                   "linear": lambda z: z}[spec.cell]
            s = phi(xt @ k("ih") + b("ih") + s @ k("hh"))
            h = s
        elif spec.cell == "lstm":
            c, h = s[:, :n], s[:, n:]
            i = SIGMOID(xt @ k("ii") + h @ k("hi") + b("hi"))
            f = SIGMOID(xt @ k("if") + h @ k("hf") + b("hf"))
            g = jnp.tanh(xt @ k("ig") + h @ k("hg") + b("hg"))
            o = SIGMOID(xt @ k("io") + h @ k("ho") + b("ho"))
            c = f * c + i * g
            s = jnp.concatenate([c, o * jnp.tanh(c)], axis=-1)
        else:  # gru
            h = s
            r = SIGMOID(xt @ k("ir") + b("ir") + h @ k("hr"))
            z = SIGMOID(xt @ k("iz") + b("iz") + h @ k("hz"))
            cand = jnp.tanh(xt @ k("in") + b("in") + r * (h @ k("hn") + b("hn")))
            s = (1 - z) * cand + z * h
        s = s + taps[t + 1]
        hs.append(s[:, n:] if spec.cell == "lstm" else s)
    features = hs[-1] if spec.readout == "last" else jnp.stack(hs, axis=1)
    return features @ p["readout/kernel"] + p["readout/bias"], s


def _setup(spec, batch=3, seed=0):
    params = _randomized(init_params(spec, jax.random.PRNGKey(seed)),
                         jax.random.PRNGKey(seed + 1))
    x = jax.random.normal(jax.random.PRNGKey(seed + 2), (batch, spec.length, spec.in_dim))
    shape = (batch, spec.out_dim) if spec.readout == "last" else \
        (batch, spec.length, spec.out_dim)
    return params, x, jax.random.normal(jax.random.PRNGKey(seed + 3), shape)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("readout", ("last", "sequence"))
def test_forward_pass_is_the_cell_equations(x64, cell, readout):
    spec = RNNSpec(cell=cell, hidden=4, in_dim=2, out_dim=3, length=5, dtype="float64",
                   readout=readout)
    params, x, _ = _setup(spec)
    taps = 0.1 * jax.random.normal(jax.random.PRNGKey(9), (6, 3, spec.state_size))
    want_y, want_s = jax.jit(lambda taps: reference_run(spec, params, x, taps))(taps)
    f = jax.jit(apply(spec))
    np.testing.assert_allclose(f(params, x, taps), want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f(params, x), jax.jit(reference_run, static_argnums=0)(
        spec, params, x, 0 * taps)[0], rtol=1e-12, atol=1e-14)
    s_T = jax.jit(lambda p, x, taps: RecurrentNet(spec).apply({"params": p}, x, taps,
                                                              final_state=True))(params, x, taps)
    np.testing.assert_allclose(s_T, want_s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_through_time_against_finite_differences_and_jacfwd(x64, cell):
    """T = 5, hidden 4, float64: ‖∂L/∂s_t‖ by central differences of the unrolled
    reference, ‖∂s_T/∂s_t‖₂ by jax.jacfwd of it and NumPy's SVD, parameter-gradient norms
    by kind from jax.grad of it."""
    spec = RNNSpec(cell=cell, hidden=4, in_dim=2, out_dim=2, length=5, dtype="float64")
    params, x, targets = _setup(spec)
    T, batch, size = 5, 3, spec.state_size
    out = jit_through_time(spec, params, x, targets, jacobian_samples=2)
    zeros = jnp.zeros((T + 1, batch, size))

    def loss(taps):
        y, _ = reference_run(spec, params, x, taps)
        return 0.5 * jnp.mean(jnp.sum((y - targets) ** 2, axis=-1))

    eps = 1e-6
    basis = jnp.eye(zeros.size).reshape((zeros.size,) + zeros.shape)
    fd = jax.jit(jax.vmap(lambda e: (loss(eps * e) - loss(-eps * e)) / (2 * eps)))(basis)
    fd = fd.reshape(zeros.shape)
    want = np.sqrt(np.sum(np.asarray(fd) ** 2, axis=(1, 2)))[::-1]  # lag k = T − t
    np.testing.assert_allclose(out["state_grad_norm"], want, rtol=1e-7)
    assert float(out["loss"]) == pytest.approx(float(loss(zeros)), rel=1e-13)

    final = lambda taps: reference_run(spec, params, x[:2], taps)[1]  # noqa: E731
    jac = np.asarray(jax.jit(jax.jacfwd(final))(zeros[:, :2]))  # (example, i, t, example', j)
    per_example = np.array([[np.linalg.svd(jac[s, :, t, s, :], compute_uv=False)[0]
                             for s in range(2)] for t in range(T + 1)])[::-1]
    np.testing.assert_allclose(out["jacobian_norm"], per_example.mean(axis=1), rtol=1e-10)
    assert float(out["jacobian_norm"][0]) == pytest.approx(1.0, abs=1e-14)
    ours = jax.jit(state_jacobians, static_argnums=0)(spec, params, x[:2])
    np.testing.assert_allclose(ours[2, 1], jac[1, :, T - 2, 1, :], rtol=1e-10, atol=1e-14)

    grads = _flat(jax.jit(jax.grad(lambda p: 0.5 * jnp.mean(jnp.sum(
        (reference_run(spec, p, x, zeros)[0] - targets) ** 2, axis=-1))))(params))

    def norm(select):
        return np.sqrt(sum(float(jnp.sum(g**2)) for name, g in grads.items() if select(name)))

    cell_leaf = lambda name: name.startswith("cell/")  # noqa: E731
    module = lambda name: name.split("/")[2]  # noqa: E731
    checks = {
        "input_weight_grad_norm": lambda n: cell_leaf(n) and n.endswith("kernel")
        and module(n).startswith("i"),
        "recurrent_weight_grad_norm": lambda n: cell_leaf(n) and n.endswith("kernel")
        and module(n).startswith("h"),
        "bias_grad_norm": lambda n: cell_leaf(n) and n.endswith("bias"),
        "readout_grad_norm": lambda n: n.startswith("readout/"),
    }
    for key, select in checks.items():
        assert float(out[key]) == pytest.approx(norm(select), rel=1e-12), key


@pytest.mark.parametrize("rho", (0.9, 1.0, 1.1))
def test_linear_orthogonal_rnn_jacobian_is_rho_to_the_lag(x64, rho):
    """W = ρQ: ∂h_T/∂h_t = (ρQᵀ)^(T−t), all of whose singular values are ρ^(T−t)."""
    T = 20
    spec = RNNSpec(cell="linear", hidden=6, in_dim=2, length=T, dtype="float64",
                   recurrent_scale=rho)
    params = sample_params(spec, jax.random.PRNGKey(4))
    x = jax.random.normal(jax.random.PRNGKey(5), (3, T, 2))
    out = jit_through_time(spec, params, x, jnp.zeros((3, 1)), jacobian_samples=3)
    lags = np.arange(T + 1)
    np.testing.assert_allclose(out["jacobian_norm"], rho**lags, rtol=1e-10)
    per_example = np.linalg.svd(np.asarray(state_jacobians(spec, params, x)), compute_uv=False)
    np.testing.assert_allclose(per_example, np.broadcast_to(
        (rho**lags)[:, None, None], per_example.shape), rtol=1e-10)
    assert float(out["recurrent_top_singular"]) == pytest.approx(rho, rel=1e-12)
    assert float(out["recurrent_spectral_radius"]) == pytest.approx(rho, rel=1e-10)


@pytest.mark.parametrize("rho", (0.5, 0.9, 1.0, 1.1, 1.5))
def test_tanh_rnn_obeys_pascanus_bound_per_example(x64, rho):
    """Pascanu, Mikolov & Bengio (2013), γ = 1 for tanh: ‖∂h_T/∂h_t‖₂ ≤ λ₁^(T−t), with λ₁
    = ‖W‖₂ (≈ 2ρ for a Gaussian W: the bound is far from tight)."""
    T = 12
    spec = RNNSpec(cell="tanh", hidden=8, in_dim=2, length=T, dtype="float64",
                   recurrent_init="gaussian", recurrent_scale=rho)
    params = sample_params(spec, jax.random.PRNGKey(6))
    x = jax.random.normal(jax.random.PRNGKey(7), (5, T, 2))
    norms = np.linalg.svd(np.asarray(state_jacobians(spec, params, x)), compute_uv=False)[
        ..., 0]  # (lag, example)
    lam1 = np.linalg.norm(np.asarray(recurrent_kernels(params)[0]), 2)
    bound = lam1 ** np.arange(T + 1)
    assert np.all(norms <= bound[:, None] * (1 + 1e-12))
    out = jit_through_time(spec, params, x, jnp.zeros((5, 1)), jacobian_samples=5)
    assert float(out["recurrent_top_singular"]) == pytest.approx(lam1, rel=1e-12)
    np.testing.assert_allclose(out["jacobian_norm"], norms.mean(axis=1), rtol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_identity_init_is_rho_times_identity_and_biases_zero(cell):
    spec = RNNSpec(cell=cell, hidden=5, in_dim=3, recurrent_init="identity",
                   recurrent_scale=0.7, input_scale=2.0)
    params = _flat(sample_params(spec, jax.random.PRNGKey(0)))
    recurrent = [k for k in kernel_names(spec) if "/h" in k]
    assert len(recurrent) == {"lstm": 4, "gru": 3}.get(cell, 1)
    for name in recurrent:
        np.testing.assert_array_equal(params[name], 0.7 * np.eye(5, dtype=np.float32))
    for name, leaf in params.items():
        if name.endswith("bias"):
            np.testing.assert_array_equal(leaf, 0)
    # input kernels: N(0, input_scale²/in_dim) = the unit draw times 2
    unit = _flat(init_params(spec, jax.random.PRNGKey(0)))
    for name in kernel_names(spec)[:len(recurrent)]:
        np.testing.assert_array_equal(params[name], 2.0 * unit[name])


@pytest.mark.parametrize("cell", ("tanh", "lstm"))
def test_module_init_equals_sample_params(cell):
    """Generic tools initialise the module themselves: they get the spec's scales too."""
    spec = RNNSpec(cell=cell, hidden=4, in_dim=2, recurrent_scale=0.7, input_scale=2.0,
                   recurrent_init="gaussian")
    key = jax.random.PRNGKey(5)
    ours = RecurrentNet(spec).init(key, jnp.ones((2, 3, 2)))["params"]
    jax.tree.map(np.testing.assert_array_equal, ours, sample_params(spec, key))
    unit = init_params(spec, key)
    assert not np.array_equal(_flat(ours)[kernel_names(spec)[-2]],
                              _flat(unit)[kernel_names(spec)[-2]])


def test_haar_orthogonal_is_the_signed_q_of_a_gaussian_qr(x64):
    """Our QR-free sampler against NumPy's (LAPACK) QR of the same Gaussian matrix, signs
    fixed so that R has a positive diagonal (Mezzadri 2007), and vmapped over networks."""
    n = 7
    q = np.asarray(haar_orthogonal(jax.random.PRNGKey(3), (n, n), jnp.float64))
    g = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (n, n), jnp.float64))
    q_ref, r_ref = np.linalg.qr(g)
    np.testing.assert_allclose(q, q_ref * np.sign(np.diag(r_ref)), atol=1e-13)
    many = jax.jit(jax.vmap(lambda k: haar_orthogonal(k, (64, 64), jnp.float64)))(
        jax.random.split(jax.random.PRNGKey(0), 8))
    eye = np.broadcast_to(np.eye(64), many.shape)
    np.testing.assert_allclose(np.asarray(many).transpose(0, 2, 1) @ many, eye, atol=1e-13)


def test_spectral_radius_against_numpy_eigvals_and_the_circular_law(x64):
    key = jax.random.PRNGKey(11)
    mats = [jax.random.normal(jax.random.fold_in(key, i), (n, n)) / np.sqrt(n)
            for i, n in enumerate((3, 8, 30))]
    mats += [jnp.array([[0.0, -2.0], [2.0, 0.0]]),  # a rotation: eigenvalues ±2i
             jnp.triu(jnp.ones((4, 4)), 1),  # nilpotent: 0
             jnp.array([[0.5, 10.0], [0.0, 0.4]])]  # non-normal: 0.5
    for m in mats:
        want = np.max(np.abs(np.linalg.eigvals(np.asarray(m))))
        assert float(spectral_radius(m)) == pytest.approx(want, rel=1e-9, abs=1e-12)
    # circular law: N(0, ρ²/n) entries have spectral radius ≈ ρ (at n = 64, 1.07ρ ± 0.05ρ
    # over 50 draws) and ‖W‖₂ ≈ 2ρ (1.94ρ ± 0.05ρ); mean over 8 draws
    spec = RNNSpec(hidden=64, recurrent_init="gaussian", recurrent_scale=0.8,
                   dtype="float64")
    ws = jax.vmap(lambda k: recurrent_kernels(sample_params(spec, k))[0])(
        jax.random.split(jax.random.PRNGKey(2), 8))
    radius = np.mean(jax.vmap(spectral_radius)(ws)) / 0.8
    top = np.mean(np.linalg.norm(np.asarray(ws), 2, axis=(1, 2))) / 0.8
    assert 1.0 < radius < 1.15 and 1.85 < top < 2.05


# -------------------------------------------------------------------------------- sweeps
def test_sweep_over_rho_is_one_program_equal_to_a_per_seed_loop(tmp_path):
    """3 values of ρ × 8 seeds, orthogonal init (a vmapped QR deadlocked XLA CPU: the
    sampler is QR-free), one compiled program; each stored number equals through_time on
    the network a Python loop draws from the same key, split as the family's measure does
    (init, inputs, targets)."""
    rhos, seeds, batch, T = (0.8, 1.0, 1.25), 8, 4, 6
    base = RNNSpec(cell="tanh", hidden=6, in_dim=2, dtype="float64")
    sweep = Sweep(points=[base.replace(recurrent_scale=r) for r in rhos], depths=(T,),
                  seeds=seeds, batch=batch, input_std=0.5)
    assert len(sweep.groups()) == 1
    sweep_mod.compiled_program.cache_clear()
    ds = run_cached(sweep, tmp_path, "rnn", progress=False)
    assert sweep_mod.compiled_program.cache_info().currsize == 1
    assert ds.state_grad_norm.dims == ("point", "seed", "lag")
    assert ds.jacobian_norm.shape == (3, seeds, T + 1)
    assert list(ds.recurrent_scale.values) == list(rhos)
    assert set(ds.cell.values) == {"tanh"}
    keys = seed_keys(sweep.base_seed, seeds)
    spec = base.replace(length=T)

    @jax.jit
    def one_network(key, rho):  # not vmapped: one seed, one ρ
        k_init, k_x, k_t = jax.random.split(key, 3)
        params = scale_params(init_params(spec, k_init), rho, 1.0)
        x = 0.5 * jax.random.normal(k_x, (batch, T, 2), jnp.float64)
        t = jax.random.normal(k_t, (batch, 1), jnp.float64)
        return through_time(spec, params, x, t)

    with jax.enable_x64(True):
        for p, rho in enumerate(rhos):
            for s in range(seeds):
                want = one_network(keys[s], jnp.float64(rho))
                for name, value in want.items():
                    np.testing.assert_allclose(ds[name].values[p, s], value, rtol=1e-10,
                                               err_msg=name)
    np.testing.assert_allclose(ds.jacobian_norm.values[..., 0], 1.0, rtol=1e-14)


def test_gated_sweep_with_orthogonal_init_runs(tmp_path):
    """The hazard: an LSTM sweep (4 orthogonal matrices per network) with 8 seeds."""
    spec = RNNSpec(cell="lstm", hidden=8, length=4)
    sweep = Sweep(points=[spec.replace(recurrent_scale=r) for r in (0.5, 1.0)], depths=(4,),
                  seeds=8, batch=2)
    ds = run_cached(sweep, None, progress=False)
    assert np.all(np.isfinite(ds.state_grad_norm.values))
    assert np.all(np.isnan(ds.recurrent_spectral_radius.values))  # gated: not defined


def test_one_sequence_length_per_sweep():
    sweep = Sweep(points=[RNNSpec(hidden=4)], depths=(5, 10), seeds=2, batch=2)
    with pytest.raises(ConfigError, match=r"^depths: the rnn family measures one sequence "
                                          r"length per sweep, got 2 \(5, 10\)$"):
        run_cached(sweep, None, progress=False)
    assert family_of(RNNSpec()) is RNN_FAMILY


# ----------------------------------------------------------------------------- the spec
@pytest.mark.parametrize("field, value, message", [
    ("cell", "elman", r"^cell: unknown value 'elman'; allowed: tanh, relu, linear, lstm, gru$"),
    ("hidden", 0, r"^hidden: must be an integer in \[1, 1000000\], got 0$"),
    ("hidden", 2.5, r"^hidden: must be an integer"),
    ("in_dim", True, r"^in_dim: must be an integer"),
    ("out_dim", -1, r"^out_dim: must be an integer"),
    ("length", 0, r"^length: must be an integer in \[1, 1000000\], got 0$"),
    ("dtype", "float16", r"^dtype: unknown value 'float16'; allowed: float32, float64$"),
    ("recurrent_init", "xavier", r"^recurrent_init: unknown value 'xavier'; allowed: "
                                 r"orthogonal, gaussian, identity$"),
    ("recurrent_scale", -0.1, r"^recurrent_scale: must be a finite number in \[0, 1e\+06\]"),
    ("recurrent_scale", float("nan"), r"^recurrent_scale: must be a finite number"),
    ("input_scale", "1", r"^input_scale: must be a finite number"),
    ("readout", "all", r"^readout: unknown value 'all'; allowed: last, sequence$"),
])
def test_bad_spec_values_are_one_line_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RNNSpec(**{field: value})
    with pytest.raises(ConfigError, match=message):
        RNNSpec().replace(**{field: value})


def test_spec_describe_static_key_and_coords():
    spec = RNNSpec(cell="gru", hidden=np.int64(8), recurrent_scale=np.float32(1.5),
                   input_scale=0.5, dtype=np.float64)
    assert type(spec.hidden) is int and spec.dtype == "float64"
    d = spec.describe()
    assert d["cell"] == "gru" and d["recurrent_scale"] == 1.5 and d["rnn_version"] == 1
    import json
    json.dumps(d)
    key = spec.static_key()
    assert (key.recurrent_scale, key.input_scale) == (1.0, 1.0)
    assert key == spec.replace(recurrent_scale=3.0, input_scale=1.0).static_key()
    assert RNN_FAMILY.scalars(spec) == (1.5, 0.5)
    assert RNN_FAMILY.at_depth(spec, 7).length == 7
    coords = RNN_FAMILY.coords([spec, RNNSpec()])
    assert coords["cell"] == ["gru", "tanh"] and coords["recurrent_scale"] == [1.5, 1.0]
    assert hash(spec) == hash(dataclasses.replace(spec))


# ---------------------------------------------------------------------- the generic probe
def test_generic_probe_reports_the_cell_once_per_time_step():
    T = 6
    spec = RNNSpec(cell="gru", hidden=4, in_dim=2, length=T)
    params = sample_params(spec, jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (3, T, 2))
    batch = {"x": x, "t": jnp.ones((3, 1))}
    order = []

    @jax.jit
    def run(params):
        out = probe(RecurrentNet(spec), {"params": params}, batch,
                    lambda y, b: 0.5 * jnp.mean(jnp.sum((y - b["t"]) ** 2, axis=-1)),
                    call_args=lambda b: (b["x"],))
        order.extend(out.pop("order"))
        return out

    out = run(params)
    assert order[:2] == ["rnn", "cell"] and order[-1] == "readout"
    cell = out["modules"]["cell"]
    assert float(cell["calls"]) == T
    assert cell["per_step"]["backprop_norm"].shape == (T,)
    assert float(out["modules"]["cell/gru/hn"]["calls"]) == T
    assert float(out["modules"]["readout"]["calls"]) == 1
    assert float(out["loss"]) == pytest.approx(float(0.5 * jnp.mean(jnp.sum(
        (apply(spec)(params, x) - 1) ** 2, axis=-1))), rel=1e-6)


# -------------------------------------------------------------------------- train hooks
def test_train_hooks_describe_the_parameters():
    hooks = RNN_FAMILY.train
    for cell in CELLS:
        spec = RNNSpec(cell=cell, hidden=5, in_dim=3, out_dim=2)
        params = hooks.init(spec.static_key(), jax.random.PRNGKey(0), (0.5, 1.0))
        names = list(_flat(params))
        assert hooks.param_count(spec) == sum(v.size for v in jax.tree.leaves(params))
        layers = hooks.layer_leaves(names)
        assert layers == kernel_names(spec) and len(layers) == hooks.layers(spec)
        assert layers[0].split("/")[2].startswith("i") and layers[-1] == "readout/kernel"
        assert [n for n in names if hooks.is_output(n)] == ["readout/bias", "readout/kernel"]
        assert not any(hooks.stacked(n, v) for n, v in _flat(params).items())
        y = hooks.apply(spec)(params, jnp.ones((4, 7, 3)))
        assert y.shape == (4, 2)
        assert hooks.activation_bytes(spec, 10) > 4 * 10 * spec.length * spec.hidden


def _data(x_shape, y_shape, classes=0):
    return Dataset(np.zeros(x_shape), np.zeros(y_shape), np.zeros(x_shape),
                   np.zeros(y_shape), classes)


@pytest.mark.parametrize("spec, data, message", [
    (RNNSpec(length=5), _data((8, 5), (8, 1)), r"^x: the rnn family needs sequences"),
    (RNNSpec(length=5, in_dim=2), _data((8, 5, 3), (8, 1)), r"^x: 3 features per time step"),
    (RNNSpec(length=5), _data((8, 6, 1), (8, 1)), r"^x: sequences of length 6"),
    (RNNSpec(length=5, out_dim=3), _data((8, 5, 1), (8,), classes=4),
     r"^out_dim: 3, the data have 4 classes$"),
    (RNNSpec(length=5, out_dim=4, readout="sequence"), _data((8, 5, 1), (8,), classes=4),
     r"^y: shape \(8,\), readout 'sequence'"),
    (RNNSpec(length=5, out_dim=2), _data((8, 5, 1), (8, 1)), r"^y: shape \(8, 1\)"),
])
def test_check_data_names_the_mismatch(spec, data, message):
    import re
    assert re.match(message, RNN_FAMILY.train.check_data(spec, data))


def test_check_data_accepts_matching_data():
    check = RNN_FAMILY.train.check_data
    assert check(RNNSpec(length=5, out_dim=4), _data((8, 5, 1), (8,), classes=4)) is None
    assert check(RNNSpec(length=5, out_dim=4, readout="sequence"),
                 _data((8, 5, 1), (8, 5), classes=4)) is None
    assert check(RNNSpec(length=5, out_dim=2, readout="sequence"),
                 _data((8, 5, 1), (8, 5, 2))) is None


def test_hooks_train_a_tiny_task():
    """Adam through the hooks learns y = mean of a length-5 sequence (loss falls 5x)."""
    hooks = RNN_FAMILY.train
    spec = RNNSpec(cell="gru", hidden=8, length=5)
    params = hooks.init(spec.static_key(), jax.random.PRNGKey(0), RNN_FAMILY.scalars(spec))
    f = hooks.apply(spec)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 5, 1))
    y = x.mean(axis=1)
    opt = optax.adam(3e-2)

    def loss(p):
        return 0.5 * jnp.mean((f(p, x) - y) ** 2)

    @jax.jit
    def step(p, state):
        g = jax.grad(loss)(p)
        updates, state = opt.update(g, state, p)
        return optax.apply_updates(p, updates), state

    state, first = opt.init(params), float(loss(params))
    for _ in range(60):
        params, state = step(params, state)
    assert float(loss(params)) < first / 5
