"""Recurrent benchmark tasks (gradstudy.data): layouts, targets and baselines checked
against independent references (Python loops, the papers' stated baselines, optax)."""

from __future__ import annotations

import math
import time

import numpy as np
import optax
import pytest

from gradstudy.data import (
    ADDING_BASELINE_MSE,
    Dataset,
    _tasks as tasks,
    adding_baseline_loss,
    adding_problem,
    copy_baseline,
    copy_memory,
    sequence_mnist1d,
)
from gradstudy.errors import ConfigError

NEG = -1e9  # a logit whose softmax probability is exactly 0 in float32


# ------------------------------------------------------------------------------ adding
@pytest.mark.parametrize("length", [2, 7, 50])
def test_adding_layout_and_targets(length):
    data = adding_problem(length, n_train=300, n_test=50, seed=3)
    assert isinstance(data, Dataset) and data.classes == 0
    assert data.x.shape == (300, length, 2) and data.x.dtype == np.float32
    assert data.y.shape == (300, 1) and data.y.dtype == np.float32
    assert data.x_test.shape == (50, length, 2) and data.y_test.shape == (50, 1)
    for x, y in ((data.x, data.y), (data.x_test, data.y_test)):
        values, markers = x[:, :, 0], x[:, :, 1]
        assert values.min() >= 0.0 and values.max() < 1.0
        assert set(np.unique(markers).tolist()) <= {0.0, 1.0}
        for i in range(len(x)):
            marked = [t for t in range(length) if markers[i, t] == 1.0]
            assert len(marked) == 2
            assert marked[0] < length // 2 <= marked[1]  # one per half
        for i in range(20):  # the target recomputed by a plain loop
            total = 0.0
            for t in range(length):
                if markers[i, t] == 1.0:
                    total += float(values[i, t])
            assert y[i, 0] == pytest.approx(total, abs=1e-6)


def test_adding_markers_cover_each_half():
    """Every step of each half is used (no off-by-one in the ranges)."""
    length = 7  # halves: steps 0..2 and 3..6
    markers = adding_problem(length, n_train=2000, n_test=1, seed=0).x[:, :, 1]
    first = markers[:, :length // 2].argmax(1)
    second = markers[:, length // 2:].argmax(1) + length // 2
    assert sorted(set(first.tolist())) == [0, 1, 2]
    assert sorted(set(second.tolist())) == [3, 4, 5, 6]


def test_adding_constant_predictor_baseline():
    y = adding_problem(30, n_train=10_000, n_test=10, seed=1).y[:, 0].astype(np.float64)
    assert y.mean() == pytest.approx(1.0, abs=0.01)
    assert y.var() == pytest.approx(1 / 6, abs=0.005)
    mse = np.mean((y - 1.0) ** 2)  # predicting the mean, 1
    assert mse == pytest.approx(0.1667, abs=0.005)
    assert ADDING_BASELINE_MSE == pytest.approx(1 / 6, rel=1e-12)
    # the engine's loss is ½‖y − t‖²: half the MSE
    assert adding_baseline_loss() == pytest.approx(1 / 12, rel=1e-12)
    assert 0.5 * mse == pytest.approx(adding_baseline_loss(), abs=0.003)


# ------------------------------------------------------------------------------ copy
@pytest.mark.parametrize("delay", [1, 5, 30])
def test_copy_layout(delay):
    data = copy_memory(delay, n_train=200, n_test=20, seed=4)
    steps = delay + 20
    assert isinstance(data, Dataset) and data.classes == 10
    assert data.x.shape == (200, steps, 10) and data.x.dtype == np.float32
    assert data.y.shape == (200, steps) and data.y.dtype == np.int32
    assert data.x_test.shape == (20, steps, 10) and data.y_test.shape == (20, steps)
    for x, y in ((data.x, data.y), (data.x_test, data.y_test)):
        assert set(np.unique(x).tolist()) == {0.0, 1.0}
        assert np.all(x.sum(-1) == 1.0)  # one-hot
        ids = x.argmax(-1)
        for i in range(len(x)):
            symbols = ids[i, :10].tolist()
            assert all(1 <= s <= 8 for s in symbols)
            # the paper: 10 symbols, T − 1 blanks, the delimiter (1-based step T + 10),
            # 10 blanks; the output: T + 10 blanks, then the 10 symbols
            expected_in = symbols + [0] * (delay - 1) + [9] + [0] * 10
            expected_out = [0] * (delay + 10) + symbols
            assert ids[i].tolist() == expected_in
            assert y[i].tolist() == expected_out
            assert expected_in.index(9) + 1 == delay + 10
    assert set(np.unique(data.x.argmax(-1)[:, :10]).tolist()) == set(range(1, 9))


def _memoryless_logits(n, delay):
    """Blank for certain up to and including the delimiter, then uniform over 1..8."""
    steps = delay + 20
    logits = np.full((n, steps, 10), NEG, np.float32)
    logits[:, :delay + 10, 0] = 0.0
    logits[:, delay + 10:, 1:9] = 0.0
    return logits


@pytest.mark.parametrize("delay", [1, 10, 100, 200])
def test_copy_baseline_matches_memoryless_predictor(delay):
    data = copy_memory(delay, n_train=64, n_test=8, seed=delay)
    logits = _memoryless_logits(64, delay)
    per_step = optax.softmax_cross_entropy_with_integer_labels(logits, data.y)
    loss = np.asarray(per_step, np.float64).mean()  # float32 per step, summed in float64
    assert loss == pytest.approx(copy_baseline(delay), abs=1e-6)
    assert copy_baseline(delay) == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-12)


@pytest.mark.parametrize("delay", [1, 10, 100])
def test_copy_predictors_ignoring_the_delimiter_are_worse(delay):
    data = copy_memory(delay, n_train=64, n_test=8, seed=5)
    steps = delay + 20
    # uniform over blank and the 8 symbols everywhere
    uniform9 = np.full((64, steps, 10), NEG, np.float32)
    uniform9[:, :, :9] = 0.0
    # the best position-independent distribution: blank with probability (T+10)/(T+20)
    p_blank = (delay + 10) / steps
    probs = np.array([p_blank] + [(1 - p_blank) / 8] * 8 + [1e-30], np.float64)
    constant = np.broadcast_to(np.log(probs).astype(np.float32), (64, steps, 10))
    baseline = copy_baseline(delay)
    for logits in (uniform9, constant):
        loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, data.y).mean())
        assert loss > baseline + 0.05


def test_copy_general_alphabet():
    data = copy_memory(3, n_train=50, n_test=5, seed=0, symbols=4, copy_length=2)
    assert data.x.shape == (50, 7, 6) and data.classes == 6
    ids = data.x.argmax(-1)
    assert np.all((ids[:, :2] >= 1) & (ids[:, :2] <= 4))
    assert np.all(ids[:, 2:4] == 0) and np.all(ids[:, 4] == 5) and np.all(ids[:, 5:] == 0)
    assert np.all(data.y[:, :5] == 0) and np.array_equal(data.y[:, 5:], ids[:, :2])
    assert copy_baseline(3, copy_length=2, symbols=4) == pytest.approx(2 * math.log(4) / 7)


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("make", [lambda **k: adding_problem(12, **k),
                                  lambda **k: copy_memory(6, **k)])
def test_determinism_and_splits(make):
    state = np.random.get_state()
    a, b = make(n_train=40, n_test=30, seed=7), make(n_train=40, n_test=30, seed=7)
    c = make(n_train=40, n_test=30, seed=8)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])  # global RNG untouched
    for name in ("x", "y", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))
    assert not np.array_equal(a.x[:30], a.x_test)  # train and test differ
    # the test set does not depend on the training set's size
    d = make(n_train=55, n_test=30, seed=7)
    assert np.array_equal(a.x_test, d.x_test) and np.array_equal(a.y_test, d.y_test)


def test_generation_is_fast():
    start = time.perf_counter()
    data = copy_memory(200, n_train=20_000, n_test=1_000)
    adding_problem(220, n_train=20_000, n_test=1_000)
    elapsed = time.perf_counter() - start
    assert data.x.nbytes == 20_000 * 220 * 10 * 4
    assert elapsed < 5.0, elapsed  # ≈ 0.7 s here; generous for shared cores


# ------------------------------------------------------------------------------ MNIST-1D
def test_sequence_mnist1d_synthetic():
    rng = np.random.default_rng(0)
    flat = Dataset(rng.normal(size=(20, 40)).astype(np.float32), np.arange(20) % 10,
                   rng.normal(size=(5, 40)).astype(np.float32), np.arange(5), 10)
    seq = sequence_mnist1d(flat)
    assert seq.x.shape == (20, 40, 1) and seq.x_test.shape == (5, 40, 1)
    assert seq.x.dtype == np.float32
    assert np.array_equal(seq.x[:, :, 0], flat.x)
    assert np.array_equal(seq.x_test[:, :, 0], flat.x_test)
    assert seq.y is flat.y and seq.y_test is flat.y_test and seq.classes == 10


def test_sequence_mnist1d_real(tmp_path):
    pytest.importorskip("mnist1d")
    from gradstudy.data import mnist1d

    flat = mnist1d(cache_dir=tmp_path, num_samples=100)
    seq = sequence_mnist1d(flat)
    assert seq.x.shape == (80, 40, 1) and seq.x_test.shape == (20, 40, 1)
    assert np.array_equal(seq.x[:, :, 0], flat.x) and np.array_equal(seq.y, flat.y)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, field", [
    (lambda: adding_problem(1), "length"),
    (lambda: adding_problem(2.5), "length"),
    (lambda: adding_problem(True), "length"),
    (lambda: adding_problem(10, n_train=0), "n_train"),
    (lambda: adding_problem(10, n_test=-1), "n_test"),
    (lambda: adding_problem(10, seed=-1), "seed"),
    (lambda: adding_problem(10, seed="a"), "seed"),
    (lambda: copy_memory(0), "delay"),
    (lambda: copy_memory(None), "delay"),
    (lambda: copy_memory(5, symbols=1), "symbols"),
    (lambda: copy_memory(5, copy_length=0), "copy_length"),
    (lambda: copy_memory(5, n_train=1.0), "n_train"),
    (lambda: copy_baseline(0), "delay"),
    (lambda: copy_baseline(5, symbols=0), "symbols"),
    (lambda: copy_memory(1000, n_train=10**6), "n_train"),
    (lambda: adding_problem(10**5, n_train=10**6), "n_train"),
    (lambda: sequence_mnist1d(Dataset(np.zeros((2, 3, 1)), np.zeros(2), np.zeros((1, 3, 1)),
                                      np.zeros(1), 2)), "data"),
    (lambda: sequence_mnist1d(None), "data"),
    (lambda: sequence_mnist1d(np.zeros((4, 40))), "data"),
])
def test_bad_arguments(call, field):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert message.startswith(field) and "\n" not in message


def test_memory_cap_is_refused_before_allocating(monkeypatch):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"n_train, n_test or delay: .* MiB cap"):
        copy_memory(10**6, n_train=10**7, n_test=10**7)
    assert time.perf_counter() - start < 0.5
    # the cap counts x (float32 one-hot, 10 channels) and y (int32), train and test
    per_row = (100 + 20) * 4 * (10 + 1)
    monkeypatch.setattr(tasks, "MAX_TASK_BYTES", 10 * per_row)
    assert copy_memory(100, n_train=9, n_test=1).x.nbytes == 9 * (100 + 20) * 10 * 4
    with pytest.raises(ConfigError, match="n_train"):
        copy_memory(100, n_train=10, n_test=1)
    per_row = 50 * 2 * 4 + 4
    monkeypatch.setattr(tasks, "MAX_TASK_BYTES", 10 * per_row)
    adding_problem(50, n_train=9, n_test=1)
    with pytest.raises(ConfigError, match="n_train"):
        adding_problem(50, n_train=9, n_test=2)
