"""Optimizer specs and clipping against their formulas (numpy, written out here)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy.engine import OptimizerSpec, build, clip_fired, clipping
from gradstudy.errors import ConfigError


def _tree(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    tree = {"input_layer": {"dense": {"kernel": scale * rng.normal(size=(3, 4)),
                                      "bias": scale * rng.normal(size=(4,))}},
            "hidden": {"dense": {"kernel": scale * rng.normal(size=(2, 4, 4)),
                                 "bias": scale * rng.normal(size=(2, 4))}},
            "readout": {"dense": {"kernel": scale * rng.normal(size=(4, 2)),
                                  "bias": scale * rng.normal(size=(2,))}}}
    return jax.tree.map(lambda a: a.astype(np.float32), tree)


def _is_out(path):
    return path.startswith("readout/")


def _is_stacked(path):
    return path.startswith("hidden/")


def _apply(spec, grads, params):
    tx = clipping(spec, _is_out, _is_stacked)
    out, _ = tx.update(jax.tree.map(jnp.asarray, grads), tx.init(params),
                       jax.tree.map(jnp.asarray, params))
    return jax.tree.map(np.asarray, out)


def test_clip_by_value_formula():
    grads, params = _tree(1, 3.0), _tree(2)
    out = _apply(OptimizerSpec(clip="value", clip_threshold=1.5), grads, params)
    jax.tree.map(lambda o, g: np.testing.assert_allclose(o, np.clip(g, -1.5, 1.5)), out, grads)


def test_clip_by_global_norm_formula():
    grads, params = _tree(1, 3.0), _tree(2)
    norm = np.sqrt(sum(np.sum(g**2) for g in jax.tree.leaves(grads)))
    out = _apply(OptimizerSpec(clip="global_norm", clip_threshold=2.0), grads, params)
    jax.tree.map(lambda o, g: np.testing.assert_allclose(o, g * 2.0 / norm, rtol=1e-6), out,
                 grads)
    assert bool(clip_fired(OptimizerSpec(clip="global_norm", clip_threshold=2.0), grads,
                           params))
    assert not bool(clip_fired(OptimizerSpec(clip="global_norm", clip_threshold=1.1 * norm),
                               grads, params))


def _agc_reference(g, w, lam, eps=1e-3):
    """Brock et al.'s unit-wise rule: units are output units (norm over the input axis) of
    a matrix, the whole vector of a bias."""
    if g.ndim == 1:
        gn, wn = np.linalg.norm(g), np.linalg.norm(w)
        return g if gn <= lam * max(wn, eps) else g * lam * max(wn, eps) / gn
    gn = np.linalg.norm(g, axis=0, keepdims=True)
    wn = np.maximum(np.linalg.norm(w, axis=0, keepdims=True), eps)
    return np.where(gn <= lam * wn, g, g * lam * wn / gn)


def test_adaptive_clipping_is_unitwise_per_layer_and_spares_the_output_layer():
    grads, params = _tree(1, 3.0), _tree(2)
    lam = 0.5
    out = _apply(OptimizerSpec(clip="adaptive", clip_threshold=lam), grads, params)
    for layer in ("input_layer",):
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(out[layer]["dense"][leaf],
                                       _agc_reference(grads[layer]["dense"][leaf],
                                                      params[layer]["dense"][leaf], lam),
                                       rtol=1e-6)
    for leaf in ("kernel", "bias"):  # stacked: each layer its own units
        for layer in range(2):
            np.testing.assert_allclose(out["hidden"]["dense"][leaf][layer],
                                       _agc_reference(grads["hidden"]["dense"][leaf][layer],
                                                      params["hidden"]["dense"][leaf][layer],
                                                      lam), rtol=1e-6)
    # the output layer is not clipped (Brock et al. 2021)
    jax.tree.map(np.testing.assert_array_equal, out["readout"], grads["readout"])
    # and something was clipped elsewhere
    assert not np.allclose(out["input_layer"]["dense"]["kernel"],
                           grads["input_layer"]["dense"]["kernel"])
    spec = OptimizerSpec(clip="adaptive", clip_threshold=lam)
    assert bool(clip_fired(spec, grads, params, _is_out, _is_stacked))
    small = jax.tree.map(lambda g: 1e-6 * g, grads)
    assert not bool(clip_fired(spec, small, params, _is_out, _is_stacked))


def test_first_steps_are_the_textbook_formulas():
    g = np.array([0.3, -2.0, 1e-3, 0.0])
    params = jnp.zeros(4)

    def first_update(spec):
        tx = build(spec)
        return np.asarray(tx.update(jnp.asarray(g), tx.init(params), params)[0])

    lr = 0.1
    np.testing.assert_allclose(first_update(OptimizerSpec("sgd", lr)), -lr * g, rtol=1e-6)
    np.testing.assert_allclose(first_update(OptimizerSpec("momentum", lr)), -lr * g,
                               rtol=1e-6)
    # Adam: bias-corrected m̂ = g, v̂ = g²: the step is lr·g/(|g| + ε)
    eps = 1e-8
    np.testing.assert_allclose(first_update(OptimizerSpec("adam", lr, eps=eps)),
                               -lr * g / (np.abs(g) + eps), rtol=1e-5)
    # RMSProp: ν = (1 − ρ)g², step lr·g/√(ν + ε)
    rho = 0.9
    np.testing.assert_allclose(first_update(OptimizerSpec("rmsprop", lr, decay=rho, eps=eps)),
                               -lr * g / np.sqrt((1 - rho) * g**2 + eps), rtol=1e-5)
    # Nesterov: the first step looks ahead: lr·(1 + β)·g
    np.testing.assert_allclose(first_update(OptimizerSpec("nesterov", lr, momentum=0.9)),
                               -lr * 1.9 * g, rtol=1e-6)


def test_smallest_allowed_eps_keeps_a_zero_gradient_entry_finite():
    """eps = 0 made 0/0 = NaN of an exactly-zero gradient entry (refused above); the
    smallest eps allowed is a float32 normal, so the entry's step is exactly 0."""
    from gradstudy.engine._optim import MIN_EPS

    g, params = jnp.asarray([0.0, 0.5]), jnp.zeros(2)
    for name in ("adam", "rmsprop"):
        tx = build(OptimizerSpec(name, 0.1, eps=MIN_EPS))
        update = np.asarray(tx.update(g, tx.init(params), params)[0])
        assert update[0] == 0.0 and np.isfinite(update[1]), name


def test_warmup_cosine_schedule():
    spec = OptimizerSpec("sgd", 1.0, schedule="warmup_cosine", warmup_steps=10,
                         decay_steps=110)
    tx = build(spec)
    params = jnp.zeros(1)
    state = tx.init(params)
    steps = []
    for _ in range(111):
        u, state = tx.update(jnp.ones(1), state, params)
        steps.append(-float(u[0]))
    assert steps[0] == 0.0 and steps[5] == pytest.approx(0.5) and steps[10] == pytest.approx(1)
    assert steps[60] == pytest.approx(0.5, abs=1e-6)  # half-way through the cosine
    assert steps[110] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("warmup, decay, end", [(2, 6, 0.0), (0, 5, 0.0), (3, 10, 0.01),
                                                 (1, 1000, 0.0)])
def test_warmup_cosine_is_optaxs_for_numbers_and_takes_a_traced_peak(warmup, decay, end):
    """optax's warmup_cosine_decay_schedule tests ``peak_value == 0.0`` in Python, which
    fails on a traced learning rate (every ``train`` traces it); ours is written out in jnp
    and is optax's, bit for bit, for numbers."""
    from gradstudy.engine._optim import warmup_cosine

    steps = np.arange(decay + 4, dtype=np.int32)
    for peak in (0.1, 0.0, 3.7):
        want = np.asarray(jax.vmap(optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, decay, end))(steps))
        got = np.asarray(jax.vmap(warmup_cosine(peak, warmup, decay, end))(steps))
        np.testing.assert_array_equal(got, want, f"peak {peak}")
        for t in (0, warmup, decay - 1, decay + 3):  # one step at a time, as optax counts
            assert float(warmup_cosine(peak, warmup, decay, end)(jnp.int32(t))) == float(
                optax.warmup_cosine_decay_schedule(0.0, peak, warmup, decay, end)(
                    jnp.int32(t))), (peak, t)
        traced = jax.jit(lambda p: jax.vmap(warmup_cosine(p, warmup, decay, end))(steps))
        # compiled, 1 + cos(x) near x = π may round differently: within float32's
        # resolution of the peak
        np.testing.assert_allclose(traced(jnp.float32(peak)), want, rtol=1e-6,
                                   atol=1e-6 * peak)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "adamw"}, r"^name: unknown value 'adamw'; allowed: sgd, momentum, nesterov, "
                        r"rmsprop, adam$"),
    ({"clip": "norm"}, r"^clip: unknown value 'norm'; allowed: none, value, global_norm, "
                       r"adaptive$"),
    ({"learning_rate": -1.0}, r"^learning_rate: must be a finite number"),
    ({"learning_rate": float("nan")}, r"^learning_rate: must be a finite number"),
    ({"momentum": 1.0}, r"^momentum: must be a number in \[0, 1\), got 1.0$"),
    ({"clip": "value", "clip_threshold": 0.0}, r"^clip_threshold: must be a number > 0"),
    ({"schedule": "warmup_cosine", "warmup_steps": 100, "decay_steps": 50},
     r"^warmup_steps: must be fewer than decay_steps \(50\), got 100$"),
    ({"schedule": "cosine"}, r"^schedule: unknown value 'cosine'"),
    ({"name": "adam", "eps": 0.0}, r"^eps: must be a number >= 1.18e-38 .*, got 0.0$"),
    ({"name": "rmsprop", "eps": 0.0}, r"^eps: must be a number >= 1.18e-38"),
    ({"name": "adam", "eps": 1e-46}, r"^eps: must be a number >= 1.18e-38"),  # 0 in float32
    ({"name": "adam", "eps": -1e-8}, r"^eps: must be a finite number"),
])
def test_bad_optimizer_specs_are_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        OptimizerSpec(**kwargs)


def test_optax_clip_by_global_norm_is_what_we_call():
    # guard: the spec maps to optax's own transforms (no re-implementation drift)
    grads = {"a": jnp.asarray([3.0, 4.0])}
    got, _ = clipping(OptimizerSpec(clip="global_norm", clip_threshold=1.0)).update(
        grads, optax.EmptyState())
    np.testing.assert_allclose(got["a"], [0.6, 0.8], rtol=1e-6)


def test_switch_applies_the_indexed_transform_per_run_under_vmap():
    """One program for several optimizers: per run, switch(...) equals the transform its
    index names, traced thresholds included; a NaN of an unselected branch does not leak."""
    from gradstudy.engine import program_key, switch

    params = jax.tree.map(jnp.asarray, _tree(2))
    grads = jax.tree.map(lambda g: jnp.asarray(g).at[(0,) * g.ndim].set(40.0), _tree(1, 3.0))
    specs = [OptimizerSpec("sgd", 0.1, clip="value", clip_threshold=0.5),
             OptimizerSpec("adam", 0.01, clip="global_norm", clip_threshold=2.0),
             OptimizerSpec("momentum", 0.05, clip="adaptive", clip_threshold=0.1),
             OptimizerSpec("rmsprop", 0.02)]
    branches = [program_key(s) for s in specs]

    def one(index, lr, threshold, g):
        tx = switch([build(b, lr, _is_out, _is_stacked, clip_threshold=threshold)
                     for b in branches], index)
        state = tx.init(params)
        u1, state = tx.update(g, state, params)
        u2, _ = tx.update(g, state, params)  # the second step uses each branch's state
        return u1, u2

    index = jnp.arange(len(specs))
    lrs = jnp.asarray([s.learning_rate for s in specs], jnp.float32)
    ths = jnp.asarray([s.clip_threshold for s in specs], jnp.float32)
    stacked = jax.tree.map(lambda g: jnp.stack([g] * len(specs)), grads)
    u1, u2 = jax.jit(jax.vmap(one))(index, lrs, ths, stacked)
    for k, spec in enumerate(specs):
        tx = build(spec, output_layer=_is_out, stacked=_is_stacked)
        s0 = tx.init(params)
        r1, s1 = tx.update(grads, s0, params)
        r2, _ = tx.update(grads, s1, params)
        for got, want in ((u1, r1), (u2, r2)):
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b), rtol=1e-6,
                                           atol=1e-9)
    # a NaN of an unselected branch (e.g. an optimizer state that overflowed) is not picked
    from gradstudy.engine import select
    out = select(jnp.asarray(0), [jnp.ones(3), jnp.full(3, jnp.nan)])
    np.testing.assert_array_equal(np.asarray(out), np.ones(3))


def test_clip_threshold_traced_equals_the_spec_threshold():
    grads, params = _tree(1, 3.0), _tree(2)
    for kind in ("value", "global_norm", "adaptive"):
        spec = OptimizerSpec("sgd", 0.1, clip=kind, clip_threshold=0.3)
        want = _apply(spec, grads, params)
        tx = clipping(spec.replace(clip_threshold=5.0), _is_out, _is_stacked,
                      threshold=jnp.float32(0.3))
        got, _ = tx.update(jax.tree.map(jnp.asarray, grads), tx.init(params),
                           jax.tree.map(jnp.asarray, params))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6)
        assert bool(clip_fired(spec.replace(clip_threshold=5.0), grads, params, _is_out,
                               _is_stacked, threshold=jnp.float32(0.3))) == \
            bool(clip_fired(spec, grads, params, _is_out, _is_stacked))
