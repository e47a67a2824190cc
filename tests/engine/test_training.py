"""The training engine against a per-run loop written the way users write it (a jitted step
called from Python, plain optax), divergence isolation, bit-identical resume after a kill,
learning on MNIST-1D, and one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradstudy.engine._training as train_mod
import gradstudy.engine._training_programs as programs_mod
from gradstudy import MLPSpec, sample_params
from gradstudy.data import Dataset, mnist1d, teacher_student
from gradstudy.engine import OptimizerSpec, Training, run_keys, train
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import MLP

DATA = teacher_student(features=6, outputs=2, train=64, test=32, seed=3)
SPEC = MLPSpec(width=8, depth=3, in_dim=6, out_dim=2, activation="tanh", init="glorot_normal")


def _training(**kw):
    base = dict(points=(SPEC, SPEC.replace(sigma_w=1.5)),
                optimizer=OptimizerSpec("adam", 1e-2, clip="global_norm", clip_threshold=0.5),
                steps=12, learning_rates=(1e-2, 3e-2), seeds=2, batch_size=8, loss="mse",
                record_every=4, eval_every=5)
    base.update(kw)
    return Training(**base)


def _loop_reference(training, point, rate_index, seed, data=DATA, tx=None):
    """One run as a user would write it: plain optax objects (``tx``, default global-norm
    clipping at 0.5 and Adam), a jitted step in a Python loop, the engine's keys."""
    spec = training.points[point]
    key = run_keys(training)[rate_index * training.seeds + seed]
    k_init, k_data = jax.random.split(key)
    params = sample_params(spec, k_init)
    lr = np.float32(training.learning_rates[rate_index])
    if tx is None:
        tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(lr))
    state = tx.init(params)
    model = MLP(spec)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)

    def loss_fn(p, xb, yb):
        return 0.5 * jnp.mean(jnp.sum((model.apply({"params": p}, xb)[0] - yb) ** 2, -1))

    @jax.jit
    def step(params, state, t):
        idx = jax.random.randint(jax.random.fold_in(k_data, t), (training.batch_size,), 0,
                                 x.shape[0])
        value, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, state = tx.update(grads, state, params)
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
        return optax.apply_updates(params, updates), state, value, norm

    losses, norms, tests = [], [], [float(loss_fn(params, data.x_test, data.y_test))]
    for t in range(training.steps):
        params, state, value, norm = step(params, state, t)
        losses.append(float(value))
        norms.append(float(norm))
        if (t + 1) % training.eval_every == 0 or t + 1 == training.steps:
            tests.append(float(loss_fn(params, data.x_test, data.y_test)))
    return np.asarray(losses), np.asarray(norms), np.asarray(tests)


@pytest.fixture(scope="module")
def trained():
    training = _training()
    return training, train(training, DATA, progress=False)


def test_vmapped_training_equals_a_per_run_loop(trained):
    training, ds = trained
    assert ds.loss.dims == ("point", "learning_rate", "seed", "step")
    assert list(ds.eval_step.values) == [0, 5, 10, 12]
    for point in range(2):
        for rate in range(2):
            for seed in range(2):
                losses, norms, tests = _loop_reference(training, point, rate, seed)
                run = dict(point=point, learning_rate=rate, seed=seed)
                np.testing.assert_allclose(ds.loss.isel(run).values, losses, rtol=2e-4)
                np.testing.assert_allclose(ds.grad_norm.isel(run).values, norms, rtol=2e-4)
                np.testing.assert_allclose(ds.test_loss.isel(run).values, tests, rtol=2e-4)
                # clipping fired exactly where the pre-clip norm exceeded the threshold
                np.testing.assert_array_equal(ds.clip_fired.isel(run).values, norms > 0.5)


def test_per_layer_records_match_the_gradients(trained):
    training, ds = trained
    assert ds.layer_grad_norm.sizes["layer"] == SPEC.depth + 1  # input, hidden, readout
    assert list(ds.record_step.values) == [0, 4, 8]
    # at step 0 the per-layer kernel gradient norms make up the global norm with the biases
    per_layer = ds.layer_grad_norm.isel(record=0).values
    total = ds.grad_norm.isel(step=0).values
    assert np.all(np.sqrt(np.sum(per_layer**2, axis=-1)) <= total * (1 + 1e-5))
    assert np.all(np.sqrt(np.sum(per_layer**2, axis=-1)) >= 0.5 * total)


def test_a_diverging_run_leaves_its_batch_bit_identical():
    calm = train(_training(learning_rates=(1e-2, 2e-2), optimizer=OptimizerSpec("sgd", 1e-2),
                           points=(SPEC.replace(sigma_w=3.0),)), DATA, progress=False)
    wild = train(_training(learning_rates=(1e-2, 1e4), optimizer=OptimizerSpec("sgd", 1e-2),
                           points=(SPEC.replace(sigma_w=3.0),)), DATA, progress=False)
    diverged = wild.diverged_at.isel(point=0, learning_rate=1).values
    assert np.all(diverged >= 0), "the large learning rate should diverge"
    for name in ("loss", "grad_norm", "test_loss", "layer_update_ratio"):
        np.testing.assert_array_equal(wild[name].isel(learning_rate=0).values,
                                      calm[name].isel(learning_rate=0).values)
    # the diverged run keeps its record up to divergence (the non-finite loss itself
    # included: inf says it overflowed), NaN after
    loss = wild.loss.isel(point=0, learning_rate=1, seed=0).values
    first = int(diverged[0])
    assert np.all(np.isfinite(loss[:first])) and not np.isfinite(loss[first])
    assert np.all(np.isnan(loss[first + 1:]))


def test_per_layer_records_of_a_diverged_run_are_nan_with_the_reason(monkeypatch):
    """ReLU's derivative at NaN is 0: after a divergence the input layer's gradient norm
    read exactly 0.0, which looks like vanishing.  From the divergence step on every
    per-layer record is NaN with status forward_nonfinite (and the global gradient norm at
    that step NaN: its forward pass was not finite); before it, the records are numbers.

    The argmax of NaN logits is class 0: the accuracy at the divergence step, and that of
    an evaluation falling exactly on it (eval_every=2, a run diverging at an even step:
    evaluated before the run knows it diverged), read as the class-0 fraction.  Every
    accuracy from the divergence step on is NaN, and clip_fired is False there."""
    from gradstudy import status

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    data = Dataset(x[:30], y[:30], x[30:], y[30:], 3)
    spec = MLPSpec(width=8, depth=3, in_dim=5, out_dim=3, activation="relu",
                   init="he_normal")
    # clipping "fires" at every step (a stub: the records only), so that the record at
    # the divergence step shows whether it is masked; the compiled programs are dropped
    # before and after, so that no other test shares one with the stub
    monkeypatch.setattr(programs_mod, "_clip_fired", lambda *args: jnp.ones((), bool))
    programs_mod.programs.cache_clear()
    try:
        ds = train(Training(points=(spec,), optimizer=OptimizerSpec("sgd"),
                            learning_rates=(0.05, 1e4), steps=12, seeds=2, batch_size=8,
                            record_every=1, eval_every=2), data, progress=False)
    finally:
        programs_mod.programs.cache_clear()
    diverged = ds.diverged_at.isel(point=0).values
    assert np.all(diverged[0] == -1) and np.all(diverged[1] >= 0), diverged
    eval_steps = ds.eval_step.values
    # one divergence on an evaluation's step, one inside a chunk (evaluated afterwards)
    assert np.any(np.isin(diverged[1], eval_steps)), (diverged, eval_steps)
    assert not np.all(np.isin(diverged[1], eval_steps)), (diverged, eval_steps)
    names = ("layer_grad_norm", "layer_update_norm", "layer_update_ratio")
    for name in names:
        codes = ds[name + "_status"].isel(point=0, learning_rate=0).values
        assert np.all(codes == status.FINITE), name  # the calm runs: numbers throughout
    steps = ds.record_step.values
    for seed in range(2):
        first = int(diverged[1, seed])
        after = steps >= first
        for name in names:
            run = ds[name].isel(point=0, learning_rate=1, seed=seed).values
            codes = ds[name + "_status"].isel(point=0, learning_rate=1, seed=seed).values
            assert np.all(np.isnan(run[after])), (name, seed, run[after])
            assert np.all(codes[after] == status.FORWARD_NONFINITE), name
            assert not np.any(np.isnan(run[~after])), name
            assert not np.any(codes[~after] == status.FORWARD_NONFINITE), name
        grad_norm = ds.grad_norm.isel(point=0, learning_rate=1, seed=seed).values
        loss = ds.loss.isel(point=0, learning_rate=1, seed=seed).values
        assert np.isnan(grad_norm[first]) and not np.isfinite(loss[first])
        assert not np.any(np.isnan(grad_norm[:first]))
        accuracy = ds.accuracy.isel(point=0, learning_rate=1, seed=seed).values
        assert np.all(np.isnan(accuracy[first:])), (seed, accuracy)
        assert not np.any(np.isnan(accuracy[:first])), (seed, accuracy)
        fired = ds.clip_fired.isel(point=0, learning_rate=1, seed=seed).values
        assert np.all(fired[:first]) and not np.any(fired[first:]), (seed, fired)
        for split in ("train", "test"):
            evals = ds[f"{split}_accuracy"].isel(point=0, learning_rate=1, seed=seed).values
            evaluated_loss = ds[f"{split}_loss"].isel(point=0, learning_rate=1,
                                                      seed=seed).values
            assert np.all(np.isnan(evals[eval_steps >= first])), (split, seed, evals)
            assert not np.any(np.isnan(evals[eval_steps < first])), (split, seed, evals)
            # wherever an evaluation's loss is not finite, so is its accuracy
            assert np.all(np.isnan(evals[~np.isfinite(evaluated_loss)])), (split, seed)


def test_a_warmup_cosine_schedule_trains_at_its_learning_rate():
    """optax's warmup_cosine_decay_schedule failed on the traced learning rate of every
    training (TracerBoolConversionError).  Plain SGD steps by lr(t)·g: each layer's update
    norm is lr(t) times its gradient norm, lr(t) the closed form (linear warm-up to the
    peak over W steps, then peak·(1 + cos(π(t − W)/(D − W)))/2, 0 from D on)."""
    warmup, decay, peaks = 2, 6, (0.1, 0.3)
    ds = train(_training(points=(SPEC,), optimizer=OptimizerSpec(
        "sgd", schedule="warmup_cosine", warmup_steps=warmup, decay_steps=decay),
        learning_rates=peaks, steps=8, record_every=1, eval_every=4), DATA, progress=False)
    t = ds.record_step.values
    assert list(t) == list(range(8))
    cosine = 0.5 * (1 + np.cos(np.pi * np.minimum(t - warmup, decay - warmup)
                               / (decay - warmup)))
    for r, peak in enumerate(peaks):
        lr = np.where(t < warmup, peak * t / warmup, peak * cosine)
        for seed in range(2):
            run = ds.isel(point=0, learning_rate=r, seed=seed)
            grads = run.layer_grad_norm.values
            assert np.all(grads > 0), grads
            np.testing.assert_allclose(run.layer_update_norm.values, lr[:, None] * grads,
                                       rtol=2e-5, atol=1e-12)


def test_resume_after_a_kill_is_bit_identical(tmp_path, monkeypatch):
    training = _training(steps=15)
    reference = train(training, DATA, progress=False)
    saves = []
    real_save = train_mod._save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        saves.append(args[-1])
        if len(saves) == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(training, DATA, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.glob("*.ckpt.npz")), "a checkpoint should be left behind"
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    resumed = train(training, DATA, cache_dir=tmp_path, progress=False)
    assert saves == [1, 2]
    for name in reference.data_vars:
        np.testing.assert_array_equal(resumed[name].values, reference[name].values, name)
    assert not list(tmp_path.glob("*.ckpt.npz"))  # removed once the result is stored
    again = train(training, DATA, cache_dir=tmp_path, progress=False)  # from the cache
    np.testing.assert_array_equal(again.loss.values, reference.loss.values)


def test_learns_mnist1d(tmp_path):
    data = mnist1d(tmp_path)
    assert data.x.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    spec = MLPSpec(width=64, depth=2, in_dim=40, out_dim=10, activation="relu",
                   init="he_normal")
    ds = train(Training(points=(spec,), optimizer=OptimizerSpec("adam", 3e-3), steps=400,
                        seeds=2, batch_size=64, eval_every=200), data, progress=False)
    start = ds.train_loss.isel(eval_step=0).values
    end = ds.train_loss.isel(eval_step=-1).values
    assert np.all(end < 0.6 * start)
    # MNIST-1D: logistic regression 32 %, MLP 68 % (Greydanus 2020); chance 10 %
    accuracy = ds.test_accuracy.isel(eval_step=-1).values
    assert np.all(accuracy > 0.4), accuracy


def test_mnist1d_is_cached_and_leaves_numpy_random_alone(tmp_path):
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    first = mnist1d(tmp_path)
    assert np.random.random() == expected
    second = mnist1d(tmp_path)  # loaded from the verified file
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert len(list(tmp_path.glob("mnist1d-*.nc"))) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, r"^steps: must be an integer in \[1, 100000000\], got 0$"),
    ({"learning_rates": (1e-2, -1.0)}, r"^learning_rates: must be a finite number"),
    ({"loss": "hinge"}, r"^loss: unknown value 'hinge'; allowed: cross_entropy, mse$"),
    ({"optimizer": "adam"}, r"^optimizer: must be an OptimizerSpec \(or one per point\), "
                            r"got str$"),
    ({"optimizer": (OptimizerSpec(),)}, r"^optimizer: need one OptimizerSpec per point "
                                        r"\(2\), got 1$"),
    ({"optimizer": (OptimizerSpec(), "sgd")}, r"^optimizer: item 1 must be an OptimizerSpec, "
                                              r"got str$"),
    ({"points": (SPEC, SPEC.replace(depth=4))}, r"^points: must share one depth"),
    ({"points": (SPEC.replace(in_dim=5),)}, r"^points: item 0 has in_dim 5, out_dim 2; the "
                                            r"data need 6 and 2$"),
    ({"loss": "cross_entropy"}, r"^loss: cross_entropy needs class labels"),
])
def test_bad_training_configs_are_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        train(_training(**kwargs), DATA, progress=False)


def test_bad_data_is_one_line():
    with pytest.raises(ConfigError, match=r"^data: must be a gradstudy.data.Dataset"):
        train(_training(), {"x": DATA.x}, progress=False)
    assert isinstance(DATA, Dataset)


def test_seed_lr_scale_and_initial_params():
    training = _training(points=(SPEC,), learning_rates=(1e-2,), seed_lr_scale=(1.0, 3.0),
                         optimizer=OptimizerSpec("sgd", 1e-2), steps=3)
    ds = train(training, DATA, progress=False)
    # seed 1 at rate 1e-2 × 3 equals seed 1 of a run at rate 3e-2 without scaling
    plain = train(_training(points=(SPEC,), learning_rates=(3e-2,),
                            optimizer=OptimizerSpec("sgd", 1e-2), steps=3), DATA,
                  progress=False)
    np.testing.assert_allclose(ds.loss.isel(seed=1).values, plain.loss.isel(seed=1).values,
                               rtol=1e-6)
    assert not np.allclose(ds.loss.isel(seed=1).values[..., 1:],
                           train(_training(points=(SPEC,), learning_rates=(1e-2,),
                                           optimizer=OptimizerSpec("sgd", 1e-2), steps=3),
                                 DATA, progress=False).loss.isel(seed=1).values[..., 1:])
    # initial_params is where training starts: its loss is the recorded first loss
    from gradstudy.engine import initial_params
    params = initial_params(training, 0, 1)
    k = run_keys(training)[1]
    idx = jax.random.randint(jax.random.fold_in(jax.random.split(k)[1], 0), (8,), 0, 64)
    out = MLP(SPEC).apply({"params": params}, jnp.asarray(DATA.x)[idx])[0]
    first = 0.5 * jnp.mean(jnp.sum((out - jnp.asarray(DATA.y)[idx]) ** 2, -1))
    np.testing.assert_allclose(float(first), float(ds.loss.isel(point=0, learning_rate=0,
                                                                 seed=1, step=0)), rtol=1e-6)
    with pytest.raises(ConfigError, match=r"^seed_lr_scale: need one factor per seed \(2\)"):
        _training(seed_lr_scale=(1.0,))


def test_full_batch_is_gradient_descent():
    training = _training(points=(SPEC,), learning_rates=(1e-2,), batch_size=None, steps=4,
                         optimizer=OptimizerSpec("sgd", 1e-2))
    ds = train(training, DATA, progress=False)
    from gradstudy.engine import initial_params
    params = initial_params(training, 0, 0)
    model = MLP(SPEC)

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((model.apply({"params": p}, jnp.asarray(DATA.x))[0]
                                       - jnp.asarray(DATA.y)) ** 2, -1))

    for t in range(4):
        np.testing.assert_allclose(float(loss(params)),
                                   float(ds.loss.isel(point=0, learning_rate=0, seed=0,
                                                      step=t)), rtol=1e-5)
        params = jax.tree.map(lambda w, g: w - 1e-2 * g, params, jax.grad(loss)(params))


def test_orthogonal_init_runs_do_not_deadlock():
    """XLA's CPU runtime deadlocked on the vmapped initialisation of 4 orthogonal-init
    20-layer runs (every time); the engine initialises runs with lax.map.  Run in a child
    process so that a regression fails on its timeout instead of hanging the suite."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        from gradstudy import MLPSpec
        from gradstudy.data import teacher_student
        from gradstudy.engine import OptimizerSpec
        from gradstudy.engine import Training, train
        data = teacher_student(features=40, outputs=10, train=64, test=16)
        spec = MLPSpec(width=64, depth=20, in_dim=40, out_dim=10, activation="sigmoid",
                       init="orthogonal")
        ds = train(Training(points=(spec,), optimizer=OptimizerSpec("sgd", 0.1), steps=1,
                            seeds=4, batch_size=8, loss="mse", eval_every=1,
                            record_every=1), data, progress=False)
        print("ok", ds.loss.shape)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_teacher_student_targets_and_input_transforms():
    from gradstudy.data import standardize, transform_inputs

    data = teacher_student(features=32, outputs=4, train=20000, test=100, teacher_width=512,
                           seed=5)
    assert data.x.shape == (20000, 32) and data.y.shape == (20000, 4) and data.classes == 0
    # y = W₂ tanh(W₁x/√f)/√n: per output Var y = E[tanh(u)²], u ~ N(0, ‖x‖²/f) ≈ N(0, 1)
    z = np.random.default_rng(0).standard_normal(2_000_000)
    expected = np.mean(np.tanh(z) ** 2)  # 0.394
    assert np.var(data.y) == pytest.approx(expected, rel=0.1)
    moved = transform_inputs(data, scale=5.0, shift=2.0)
    np.testing.assert_allclose(moved.x, 5.0 * data.x + 2.0, rtol=1e-6)
    np.testing.assert_allclose(moved.x_test, 5.0 * data.x_test + 2.0, rtol=1e-6)
    back = standardize(moved)
    np.testing.assert_allclose(back.x.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(back.x.std(axis=0), 1.0, rtol=1e-4)
    with pytest.raises(ConfigError, match=r"^scale: must be a finite number"):
        transform_inputs(data, scale=float("inf"))


def test_training_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("GRADSTUDY_MEMORY_GB", "1e-5")  # 10 kB: this tiny grid needs more
    with pytest.raises(ConfigError,
                       match=r"^memory: this training needs ≈ .* GRADSTUDY_MEMORY_GB$"):
        train(_training(seeds=64, learning_rates=(1e-2,) * 1), DATA, progress=False)
    with pytest.raises(ConfigError, match=r"^points: item 0 has dtype float64; training runs "
                                          r"in float32 only$"):
        _training(points=(SPEC.replace(dtype="float64"),))


def test_points_with_different_optimizers_share_one_program_and_equal_separate_runs():
    """A grid over optimizers and clipping methods on one network is one compiled program
    (optim.switch; rate and threshold traced); each point equals its own training."""
    optimizers = (OptimizerSpec("sgd", 5e-2),
                  OptimizerSpec("sgd", 5e-2, clip="value", clip_threshold=0.05),
                  OptimizerSpec("momentum", 2e-2, clip="adaptive", clip_threshold=0.01),
                  OptimizerSpec("adam", 1e-2, clip="global_norm", clip_threshold=0.3))
    base = dict(steps=6, seeds=2, batch_size=8, loss="mse", record_every=2, eval_every=3)
    train_mod.programs.cache_clear()
    grid = train(Training(points=(SPEC,) * 4, optimizer=optimizers, labels=("a", "b", "c",
                                                                            "d"), **base),
                 DATA, progress=False)
    assert train_mod.programs.cache_info().currsize == 1  # one program for the four
    assert np.isnan(grid.learning_rate.values).all()  # each point at its own rate
    np.testing.assert_allclose(grid.optimizer_learning_rate.values, [5e-2, 5e-2, 2e-2, 1e-2])
    assert list(grid.clipping.values) == ["none", "value", "adaptive", "global_norm"]
    for k, opt in enumerate(optimizers):
        alone = train(Training(points=(SPEC,), optimizer=opt, **base), DATA, progress=False)
        assert float(alone.learning_rate.values[0]) == opt.learning_rate
        for name in ("loss", "grad_norm", "clip_fired", "test_loss", "layer_update_ratio"):
            np.testing.assert_allclose(grid[name].isel(point=k).values,
                                       alone[name].isel(point=0).values, rtol=1e-5,
                                       err_msg=f"{opt.name}/{opt.clip}: {name}")
    fired = grid.clip_fired.values.mean(axis=(1, 2, 3))
    assert fired[0] == 0 and fired[1] > 0.5, fired  # no clipping never fires


def test_trainings_of_the_same_program_compile_it_once():
    train_mod.programs.cache_clear()
    first = _training(points=(SPEC,), learning_rates=None, steps=4)
    train(first, DATA, progress=False)
    # other gains, rate, threshold and data: the same program
    data = teacher_student(features=6, outputs=2, train=64, test=32, seed=4)
    second = _training(points=(SPEC.replace(sigma_w=1.3),), learning_rates=None, steps=4,
                       optimizer=OptimizerSpec("adam", 3e-2, clip="global_norm",
                                               clip_threshold=2.0))
    ds = train(second, data, progress=False)
    info = train_mod.programs.cache_info()
    assert (info.misses, info.hits, info.currsize) == (1, 1, 1)
    # and what it computes is the second training's, not the first's
    assert float(ds.learning_rate.values[0]) == 3e-2
    tx = optax.chain(optax.clip_by_global_norm(2.0), optax.adam(np.float32(3e-2)))
    for seed in range(2):
        losses, norms, tests = _loop_reference(second, 0, 0, seed, data=data, tx=tx)
        run = dict(point=0, learning_rate=0, seed=seed)
        np.testing.assert_allclose(ds.loss.isel(run).values, losses, rtol=2e-4)
        np.testing.assert_allclose(ds.test_loss.isel(run).values, tests, rtol=2e-4)


def test_runs_spread_over_devices_equal_one_device(monkeypatch):
    """Runs split over the host devices (one per core) give what one device gives, also
    when the run count is not a multiple of the device count (padded, then dropped)."""
    devices = jax.devices()
    if len(devices) < 2:
        pytest.skip("one XLA device (set by gradstudy._xla.default_xla_flags per core)")
    training = _training(points=(SPEC,), learning_rates=(1e-2, 2e-2, 3e-2), seeds=1,
                         steps=6)  # 3 runs over 2 devices
    train_mod.programs.cache_clear()
    spread = train(training, DATA, progress=False)
    monkeypatch.setattr(train_mod, "run_devices", lambda: devices[:1])
    monkeypatch.setattr(programs_mod, "run_devices", lambda: devices[:1])
    train_mod.programs.cache_clear()
    one = train(training, DATA, progress=False)
    train_mod.programs.cache_clear()
    assert spread.loss.shape == one.loss.shape == (1, 3, 1, 6)
    for name in ("loss", "grad_norm", "test_loss", "layer_update_ratio", "diverged_at"):
        np.testing.assert_allclose(spread[name].values, one[name].values, rtol=1e-6,
                                   err_msg=name)
    # and the runs are each their own: rate 3 is not rate 1 repeated (padding copies run 3)
    assert not np.allclose(spread.loss.values[0, 0], spread.loss.values[0, 2])


def test_every_chunk_runs_one_compiled_program():
    """The initial state is laid out as the programs return theirs, so the first chunk
    and evaluation do not compile a second version of the program (a program compiles per
    input layout; 2 of 4 compiles were such repeats before)."""
    training = _training(points=(SPEC,), steps=12, eval_every=3)  # 4 chunks, 5 evaluations
    train_mod.programs.cache_clear()
    train(training, DATA, progress=False)
    (prog,) = train_mod._groups(training, 3)
    init, run, evaluate = train_mod.programs(prog, train_mod._fingerprint(prog.spec))
    assert (init._cache_size(), run._cache_size(), evaluate._cache_size()) == (1, 1, 1)


def test_training_memory_estimate_of_an_mlp_is_the_documented_one():
    """≈ 6 float32 copies of the parameters and 4 words per activation unit and layer kept
    for the backward pass (plus monitor buffers, records and data), by hand."""
    from gradstudy.families.mlp import param_count

    spec = MLPSpec(width=64, depth=5, in_dim=40, out_dim=10, activation="relu",
                   init="he_normal")
    data = Dataset(np.zeros((100, 40), np.float32), np.zeros(100, np.int32),
                   np.zeros((20, 40), np.float32), np.zeros(20, np.int32), 10)
    training = Training(points=(spec,), optimizer=OptimizerSpec("sgd", 0.1), steps=40,
                        batch_size=32, record_every=10, eval_every=20)
    (prog,) = train_mod._groups(training, 20)
    units = 32 * 64 * (5 + 2)  # batch × max(width, in_dim) × (layers + input + readout)
    monitor = 4 * 4 * (5 + 2) * 5  # 4 records × (depth + 2) leaves × 5 fields, float32
    per_run = 4 * 6 * param_count(spec, 5) + 4 * 4 * units + monitor + 13 * 40
    data_bytes = 4 * (100 * 40 + 20 * 40 + 2 * 100)
    assert train_mod.training_bytes(prog, training, 3, data) == 3 * per_run + data_bytes
