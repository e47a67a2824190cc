"""gradstudy.tools against an independent reference: a plain numpy loop, float64 norms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy.errors import ConfigError
from gradstudy.tools import (
    MONITOR_FIELDS,
    MonitorState,
    find_state,
    find_states,
    leaf_names,
    leaf_norm,
    monitor,
    monitor_dataset,
    plot_monitor_heatmap,
)

STEPS, EVERY, CAPACITY, LR = 20, 3, 10, 0.1


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(2):
            x = jnp.tanh(nn.Dense(8)(x))
        return nn.Dense(8)(x)


MODEL = MLP()
X = jax.random.normal(jax.random.key(1), (16, 4))
Y = jnp.sin(X @ jnp.arange(1.0, 33.0).reshape(4, 8) / 8)


def loss(variables, x, y):
    return jnp.mean((MODEL.apply(variables, x) - y) ** 2)


def init_variables(seed):
    return MODEL.init(jax.random.key(seed), X[:1])  # {"params": {...}}: names params/...


def make_step(tx):
    def step(variables, opt_state):
        grads = jax.grad(loss)(variables, X, Y)
        updates, opt_state = tx.update(grads, opt_state, variables)
        return optax.apply_updates(variables, updates), opt_state

    return step


def train(tx, variables, steps, step_fn=None):
    step_fn = step_fn or jax.jit(make_step(tx))
    opt_state = tx.init(variables)
    for _ in range(steps):
        variables, opt_state = step_fn(variables, opt_state)
    return variables, opt_state


TX = optax.chain(monitor(every=EVERY, capacity=CAPACITY), optax.sgd(LR))
STEP = jax.jit(make_step(TX))


@pytest.fixture(scope="module")
def run():
    variables = init_variables(0)
    final, opt_state = train(TX, variables, STEPS, STEP)
    return variables, final, opt_state


def norm64(x):
    return np.linalg.norm(np.asarray(x, np.float64).ravel())


def reference(variables, steps, every):
    """Plain eager loop: grads -> float64 norms per leaf -> numpy SGD update."""
    params = jax.tree.map(np.asarray, variables)
    rows = []
    for t in range(steps):
        grads = jax.tree.map(np.asarray, jax.grad(loss)(params, X, Y))
        g, p = jax.tree.leaves(grads), jax.tree.leaves(params)
        if t % every == 0:
            with np.errstate(divide="ignore"):  # zero-initialised biases: ratio +inf
                ratio = [norm64(a) / norm64(b) for a, b in zip(g, p)]
            rows.append({"step": t, "grad_norm": [norm64(a) for a in g],
                         "param_norm": [norm64(a) for a in p], "update_ratio": ratio,
                         "nonfinite": [int(np.sum(~np.isfinite(a))) for a in g]})
        params = jax.tree.map(lambda a, b: (a + np.float32(-LR) * b).astype(np.float32),
                              params, grads)
    return rows, params


def test_norms_match_plain_loop(run):
    variables, final, opt_state = run
    state = find_state(opt_state)
    rows, ref_final = reference(variables, STEPS, EVERY)
    assert len(rows) == 7  # steps 0, 3, ..., 18
    assert int(state.count) == STEPS and int(state.n_records) == len(rows)
    np.testing.assert_array_equal(np.asarray(state.step[:len(rows)]),
                                  [r["step"] for r in rows])
    np.testing.assert_array_equal(np.asarray(state.step[len(rows):]), -1)  # never written
    for field in ("grad_norm", "param_norm", "update_ratio"):
        got = np.stack([np.asarray(b[:len(rows)]) for b in getattr(state, field)], axis=1)
        want = np.array([r[field] for r in rows])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=field)
        assert np.all(np.isnan(np.stack([b[len(rows):] for b in getattr(state, field)])))
    # the monitor is first: it sees the raw gradients, so update_norm is grad_norm
    for g, u in zip(state.grad_norm, state.update_norm):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(u))
    got_nf = np.stack([np.asarray(b[:len(rows)]) for b in state.nonfinite], axis=1)
    np.testing.assert_array_equal(got_nf, [r["nonfinite"] for r in rows])
    # the reference trajectory is the jitted one
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(ref_final)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


def test_updates_pass_through_bit_identical(run):
    variables, final, _ = run
    plain, _ = train(optax.sgd(LR), variables, STEPS)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(plain)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_adam_after_monitor_bit_identical():
    variables = init_variables(3)
    with_monitor, _ = train(optax.chain(monitor(every=2, capacity=3), optax.adam(1e-2)),
                            variables, 5)
    without, _ = train(optax.adam(1e-2), variables, 5)
    for a, b in zip(jax.tree.leaves(with_monitor), jax.tree.leaves(without)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nonfinite_counts_and_pass_through():
    grads = {"a": jnp.arange(10.0).at[jnp.array([1, 4, 7])].set(jnp.nan)
             .at[jnp.array([2, 9])].set(jnp.array([jnp.inf, -jnp.inf])),
             "b": jnp.ones((3, 4)), "c": jnp.zeros(2)}
    params = jax.tree.map(jnp.ones_like, grads)
    tx = optax.chain(monitor(every=1, capacity=2), optax.sgd(0.5))
    updates, opt_state = jax.jit(tx.update)(grads, tx.init(params), params)
    expected, _ = optax.sgd(0.5).update(grads, optax.sgd(0.5).init(params), params)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # NaN == NaN here
    state = find_state(opt_state)
    assert [int(b[0]) for b in state.nonfinite] == [5, 0, 0]
    assert np.isnan(state.grad_norm[0][0])
    assert float(state.grad_norm[1][0]) == pytest.approx(np.sqrt(12), rel=1e-6)
    assert float(state.grad_norm[2][0]) == 0.0
    # the monitor alone is the identity, also for non-finite entries
    out, _ = monitor().update(grads, monitor().init(params), params)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(grads)):
        assert a is b


def test_vmap_over_seeds_equals_separate_runs():
    seeds = [0, 5, 7]
    batched_vars = jax.tree.map(lambda *v: jnp.stack(v), *[init_variables(s) for s in seeds])
    vstep = jax.jit(jax.vmap(make_step(TX)))
    variables, opt_state = batched_vars, jax.vmap(TX.init)(batched_vars)
    for _ in range(7):
        variables, opt_state = vstep(variables, opt_state)
    for i, seed in enumerate(seeds):
        _, alone = train(TX, init_variables(seed), 7, STEP)
        batched_leaves = jax.tree.leaves(opt_state)
        for a, b in zip(batched_leaves, jax.tree.leaves(alone)):
            a_i, b = np.asarray(a[i]), np.asarray(b)
            if np.issubdtype(b.dtype, np.integer):
                np.testing.assert_array_equal(a_i, b)
            else:
                np.testing.assert_allclose(a_i, b, rtol=1e-6, atol=0, equal_nan=True)
    state = find_state(opt_state)
    assert state.count.shape == (3,) and list(np.asarray(state.n_records)) == [3, 3, 3]
    with pytest.raises(ConfigError, match="^state: batched"):
        monitor_dataset(state, batched_vars)


def test_at_step_under_vmap_records_the_same_and_stays_a_branch():
    """An unbatched step index (a scan counter) gives the same records as the monitor's own
    counter, and under vmap keeps the record decision a conditional: the norms are not
    computed (as a select) at every step."""
    seeds = [0, 5, 7]
    batched_vars = jax.tree.map(lambda *v: jnp.stack(v), *[init_variables(s) for s in seeds])

    def scan(tx, at_step):
        def body(carry, t):
            variables, opt_state = carry
            grads = jax.vmap(jax.grad(loss), in_axes=(0, None, None))(variables, X, Y)
            kw = {"at_step": t} if at_step else {}
            updates, opt_state = jax.vmap(lambda g, s, v: tx.update(g, s, v, **kw))(
                grads, opt_state, variables)
            return (optax.apply_updates(variables, updates), opt_state), None

        def run(variables):
            carry = (variables, jax.vmap(tx.init)(variables))
            return jax.lax.scan(body, carry, jnp.arange(STEPS))[0][1]

        return run

    own = jax.jit(scan(TX, False))(batched_vars)
    shared = jax.jit(scan(TX, True))(batched_vars)
    for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(shared)):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(a.dtype, np.integer):  # steps, counts: exactly
            np.testing.assert_array_equal(a, b)
        else:  # the same formulas, fused differently: float32 rounding
            np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
    # the compiled programs: with at_step the norms sit inside a conditional
    text = jax.jit(scan(TX, True)).lower(batched_vars).as_text()
    assert "stablehlo.case" in text or "stablehlo.if" in text
    assert "stablehlo.case" not in jax.jit(scan(TX, False)).lower(batched_vars).as_text()


def test_ring_buffer_overwrites_oldest():
    params = {"w": jnp.ones((2, 3))}
    tx = monitor(every=1, capacity=4)
    update = jax.jit(tx.update)
    state = tx.init(params)
    for t in range(10):
        grads = {"w": jnp.full((2, 3), float(t + 1))}
        _, state = update(grads, state, params)
    assert int(state.count) == 10 and int(state.n_records) == 10
    np.testing.assert_array_equal(np.asarray(state.step), [8, 9, 6, 7])  # slot = record % 4
    ds = monitor_dataset(state, params)
    np.testing.assert_array_equal(ds.step.values, [6, 7, 8, 9])
    np.testing.assert_allclose(ds.grad_norm.sel(leaf="w").values,
                               np.array([7, 8, 9, 10]) * np.sqrt(6), rtol=1e-6)
    assert ds.attrs["valid_records"] == 4 and ds.attrs["dropped_records"] == 6
    # every=3, capacity=2: records at 0, 3, 6, 9; the last two survive
    tx = monitor(every=3, capacity=2)
    state = tx.init(params)
    for t in range(11):
        _, state = jax.jit(tx.update)({"w": jnp.full((2, 3), float(t))}, state, params)
    ds = monitor_dataset(state, ["w"])
    np.testing.assert_array_equal(ds.step.values, [6, 9])
    assert int(state.n_records) == 4


def test_underflow_safe_norms_and_stacked_layers():
    tiny = jnp.full((64,), 1e-30, jnp.float32)
    assert float(jnp.sqrt(jnp.sum(tiny**2))) == 0.0  # the naive norm underflows
    assert float(leaf_norm(tiny)) == pytest.approx(8e-30, rel=1e-6)
    assert float(leaf_norm(jnp.full((64,), 1e30, jnp.float32))) == pytest.approx(8e30, rel=1e-6)
    assert leaf_norm(tiny).dtype == jnp.float32
    assert leaf_norm(tiny.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    # stacked leaf (layer axis first), one layer tiny, one huge
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(3, 4, 5)).astype(np.float32) * np.array(
        [1e-30, 1.0, 1e30], np.float32)[:, None, None]
    grads = {"blocks": {"kernel": jnp.asarray(stack)}, "head": jnp.asarray(stack[0])}
    params = jax.tree.map(jnp.ones_like, grads)
    tx = monitor(every=1, capacity=2, stacked=lambda name, x: name.startswith("blocks/"))
    _, state = jax.jit(tx.update)(grads, tx.init(params), params)
    want = [norm64(stack[layer]) for layer in range(3)]
    np.testing.assert_allclose(np.asarray(state.grad_norm[0][0]), want, rtol=1e-6)
    assert float(state.grad_norm[1][0]) == pytest.approx(want[0], rel=1e-6)
    np.testing.assert_allclose(np.asarray(state.update_ratio[0][0]),
                               np.array(want) / np.sqrt(20), rtol=1e-6)
    ds = monitor_dataset(state, params)
    assert list(ds.leaf.values) == ["blocks/kernel[0]", "blocks/kernel[1]",
                                    "blocks/kernel[2]", "head"]
    assert list(ds.layer.values) == [0, 1, 2, -1]
    assert list(ds.path.values) == ["blocks/kernel"] * 3 + ["head"]


def test_inner_and_last_placement_record_the_step():
    variables = init_variables(2)
    grads = jax.grad(loss)(variables, X, Y)
    n = len(jax.tree.leaves(variables))
    states = []
    for tx in (monitor(every=1, capacity=1, inner=optax.sgd(LR)),
               optax.chain(optax.sgd(LR), monitor(every=1, capacity=1))):
        updates, opt_state = tx.update(grads, tx.init(variables), variables)
        state = find_state(opt_state)
        states.append(state)
        plain, _ = optax.sgd(LR).update(grads, optax.sgd(LR).init(variables))
        for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(plain)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        dw = [norm64(u) for u in jax.tree.leaves(updates)]
        w = [norm64(p) for p in jax.tree.leaves(variables)]
        np.testing.assert_allclose([float(b[0]) for b in state.update_norm], dw, rtol=1e-6)
        got = [float(b[0]) for b in state.update_ratio]
        for i in range(n):
            if w[i] == 0:  # zero-initialised bias: ratio +inf, as documented
                assert got[i] == np.inf
            else:
                assert got[i] == pytest.approx(dw[i] / w[i], rel=1e-6)
    # wrapping: grad_norm is the raw gradient, update_norm the step (lr x smaller)
    np.testing.assert_allclose([float(b[0]) for b in states[0].grad_norm],
                               [norm64(g) / LR for g in jax.tree.leaves(plain)], rtol=1e-6)
    inner_state = find_state(monitor(inner=optax.adam(1e-3)).init(variables)).inner_state
    assert isinstance(inner_state, tuple) and inner_state  # adam's state lives inside


def test_params_none_records_nan():
    params = {"w": jnp.ones(3)}
    tx = monitor(every=1, capacity=1)
    _, state = tx.update({"w": jnp.ones(3)}, tx.init(params))
    assert np.isnan(state.param_norm[0][0]) and np.isnan(state.update_ratio[0][0])
    assert float(state.grad_norm[0][0]) == pytest.approx(np.sqrt(3))


def test_find_state_nested_and_no_callbacks():
    params = {"w": jnp.ones(3)}
    m = monitor(every=2, capacity=3)
    tx = optax.MultiSteps(optax.named_chain(("mon", m), ("opt", optax.sgd(1.0))), 2)
    state = tx.init(params)
    assert isinstance(find_state(state), MonitorState)
    two = optax.chain(m, optax.sgd(1.0), monitor()).init(params)
    assert len(find_states(two)) == 2
    with pytest.raises(ConfigError, match="^opt_state: expected exactly one monitor state, "
                                          "found 2; use find_states$"):
        find_state(two)
    with pytest.raises(ConfigError, match="found 0"):
        find_state(optax.sgd(1.0).init(params))
    jaxpr = str(jax.make_jaxpr(m.update)(params, m.init(params), params))
    assert "callback" not in jaxpr


@pytest.mark.parametrize("kwargs, name", [
    ({"every": 0}, "every"), ({"every": 2.5}, "every"), ({"every": True}, "every"),
    ({"capacity": -1}, "capacity"), ({"capacity": "10"}, "capacity"),
    ({"capacity": 10**8}, "capacity"), ({"stacked": 3}, "stacked"), ({"inner": 5}, "inner"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ConfigError) as err:
        monitor(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{name}: ") and "\n" not in msg


def test_stacked_scalar_and_leaf_count_mismatch():
    tx = monitor(stacked=lambda name, x: True)
    with pytest.raises(ConfigError, match="^stacked: leaf 'w' is a scalar"):
        tx.init({"w": jnp.ones(())})
    state = monitor().init({"a": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(ConfigError, match="^params_or_names: 1 leaves"):
        monitor_dataset(state, ["a"])


def test_to_dataset_and_heatmap(run, tmp_path):
    variables, _, opt_state = run
    ds = monitor_dataset(opt_state, variables)  # finds the state inside the chain
    state = find_state(opt_state)
    names = leaf_names(variables)
    assert names[:2] == ["params/Dense_0/bias", "params/Dense_0/kernel"]
    assert ds.sizes == {"step": 7, "leaf": 6} and list(ds.leaf.values) == names
    np.testing.assert_array_equal(ds.step.values, np.arange(0, STEPS, EVERY))
    assert set(MONITOR_FIELDS) <= set(ds.data_vars)
    for field in MONITOR_FIELDS:
        assert ds[field].dims == ("step", "leaf")
        want = np.stack([np.asarray(b[:7]) for b in getattr(state, field)], axis=1)
        np.testing.assert_array_equal(ds[field].values, want)
    assert ds.attrs["records_taken"] == 7 and ds.attrs["steps_seen"] == STEPS
    # non-finite cells must be drawn, not left blank
    marked = ds.copy(deep=True)
    marked["grad_norm"][2, 1] = np.nan
    marked["grad_norm"][4, 3] = np.inf
    marked["grad_norm"][5, 0] = 0.0
    fig = plot_monitor_heatmap(marked, tmp_path / "sub" / "heat.png")
    png, pdf = tmp_path / "sub" / "heat.png", tmp_path / "sub" / "heat.pdf"
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["NaN: 1 cell", "+inf: 1 cell", "0 (log10 = −inf): 1 cell"]
    # the ratio panel: biases are zero at init, so their step-0 ratio is +inf
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[1] == "+inf: 3 cells"
