"""The training engine on the recurrent and convolutional families, against a per-run loop
written as a user would (the family's own ``sample_params``/``apply``, plain optax, a jitted
step in a Python loop), plus per-point scalars traced in one program and one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy.data import Dataset, adding_problem, copy_memory
from gradstudy.engine import OptimizerSpec, Training, run_keys, train
from gradstudy.errors import ConfigError
from gradstudy.families import cnn, rnn


def _classification(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(48,) + shape).astype(np.float32)
    y = rng.integers(0, 3, 48).astype(np.int32)
    return Dataset(x[:32], y[:32], x[32:], y[32:], 3)


def _loop(training, point, seed, data, sample, forward, loss):
    """One run: the engine's keys, ``sample(spec, key)`` weights, plain optax Adam."""
    spec = training.points[point]
    k_init, k_data = jax.random.split(run_keys(training)[seed])
    params = sample(spec, k_init)
    tx = optax.adam(training.optimizers[point].learning_rate)
    state = tx.init(params)
    f = forward(spec)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)

    def loss_fn(p, xb, yb):
        out = f(p, xb)
        if loss == "mse":
            return 0.5 * jnp.mean(jnp.sum((out - yb) ** 2, -1))
        return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()

    @jax.jit
    def step(params, state, t):
        idx = jax.random.randint(jax.random.fold_in(k_data, t), (training.batch_size,), 0,
                                 x.shape[0])
        value, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    losses = []
    for t in range(training.steps):
        params, state, value = step(params, state, t)
        losses.append(float(value))
    return np.asarray(losses), float(loss_fn(params, data.x_test, data.y_test))


def _assert_equals_loops(ds, training, data, family_module, loss):
    """Every (point, seed) run of ``ds`` equals its own per-run optax loop."""
    for point in range(len(training.points)):
        for seed in range(training.seeds):
            losses, test = _loop(training, point, seed, data, family_module.sample_params,
                                 family_module.apply, loss)
            run = dict(point=point, learning_rate=0, seed=seed)
            np.testing.assert_allclose(ds.loss.isel(run).values, losses, rtol=2e-4)
            np.testing.assert_allclose(ds.test_loss.isel(run).values[-1], test, rtol=2e-4)


@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
def test_rnn_training_equals_a_per_run_loop(cell):
    data = adding_problem(6, n_train=40, n_test=16, seed=1)
    points = (rnn.RNNSpec(cell=cell, hidden=5, in_dim=2, out_dim=1, length=6),
              rnn.RNNSpec(cell=cell, hidden=5, in_dim=2, out_dim=1, length=6,
                          recurrent_scale=1.3, input_scale=0.7))  # traced: one program
    training = Training(points=points, optimizer=OptimizerSpec("adam", 1e-2), steps=7,
                        seeds=2, batch_size=8, loss="mse", eval_every=7, record_every=3)
    ds = train(training, data, progress=False)
    assert ds.layer_grad_norm.sizes["layer"] == len(rnn.kernel_names(points[0]))
    _assert_equals_loops(ds, training, data, rnn, "mse")


def test_sequence_readout_trains_on_the_copy_task():
    data = copy_memory(3, n_train=40, n_test=16, seed=2)
    spec = rnn.RNNSpec(cell="gru", hidden=6, in_dim=10, out_dim=10, length=23,
                       readout="sequence")
    training = Training(points=(spec,), optimizer=OptimizerSpec("adam", 1e-2), steps=5,
                        seeds=1, batch_size=8, eval_every=5)
    ds = train(training, data, progress=False)
    losses, test = _loop(training, 0, 0, data, rnn.sample_params, rnn.apply, "ce")
    np.testing.assert_allclose(ds.loss.values.ravel(), losses, rtol=2e-4)
    np.testing.assert_allclose(ds.test_loss.values.ravel()[-1], test, rtol=2e-4)


@pytest.mark.parametrize("block", ["plain", "batchnorm", "residual"])
def test_cnn_training_equals_a_per_run_loop(block):
    data = _classification((12,))
    points = tuple(cnn.CNNSpec(depth=4, channels=4, kernel_size=3, length=12, out_dim=3,
                               block=block, sigma_w=s) for s in (1.0, 1.2))
    training = Training(points=points, optimizer=OptimizerSpec("adam", 1e-2), steps=6,
                        seeds=2, batch_size=8, eval_every=6, record_every=2)
    ds = train(training, data, progress=False)
    assert ds.layer_grad_norm.sizes["layer"] == 5  # input conv, 3 stacked, readout
    assert list(ds.block.values) == [block, block]
    _assert_equals_loops(ds, training, data, cnn, "ce")


def test_family_data_mismatches_are_one_line():
    seq = adding_problem(6, n_train=20, n_test=8)
    lstm = rnn.RNNSpec(cell="lstm", hidden=4, in_dim=3, out_dim=1, length=6)
    with pytest.raises(ConfigError, match=r"^points: item 0 .*in_dim") as e:
        train(Training(points=(lstm,), optimizer=OptimizerSpec("adam", 1e-2), steps=2,
                       loss="mse"), seq, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^points: all of one model family; got rnn, cnn"):
        Training(points=(rnn.RNNSpec(), cnn.CNNSpec()), optimizer=OptimizerSpec("sgd", 0.1))
