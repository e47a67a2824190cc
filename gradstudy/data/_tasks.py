"""Recurrent benchmark tasks generated on this machine (never downloaded): the adding
problem, the copy-memory task, and MNIST-1D read as a sequence.

Every task is returned as a :class:`gradstudy.data.Dataset` whose inputs ``x`` have shape
(N, T, channels) float32. Generation uses NumPy's ``np.random.default_rng`` only (the
global NumPy generator is never touched) and is deterministic from ``seed``: the seed's
``np.random.SeedSequence`` is split into one child stream for the training set and one
for the test set, so the test set does not change when ``n_train`` does (and vice versa),
and the two sets are drawn independently. Generation is vectorised (20,000 sequences of
length 220 take a fraction of a second), so there is no cache.

A dataset whose arrays would exceed :data:`MAX_TASK_BYTES` is refused, before anything
is allocated, with a one-line ``ConfigError``.

References:
    S. Hochreiter, J. Schmidhuber (1997), Long short-term memory, Neural Computation
    9(8):1735-1780 (the adding problem, experiment 4).
    Q. V. Le, N. Jaitly, G. E. Hinton (2015), A simple way to initialize recurrent
    networks of rectified linear units, arXiv:1504.00941 (the adding-problem variant used
    here: values U[0, 1], one marker in each half; IRNN).
    M. Arjovsky, A. Shah, Y. Bengio (2016), Unitary evolution recurrent neural networks,
    arXiv:1511.06464 (the copy-memory task and its memoryless baseline).
    S. Greydanus (2020), Scaling down deep learning, arXiv:2011.14439 (MNIST-1D).
"""

from __future__ import annotations

import math

import numpy as np

from gradstudy._validate import check_int
from gradstudy.data._datasets import Dataset
from gradstudy.errors import ConfigError

MAX_TASK_BYTES = 512 * 2**20  # 512 MiB: all arrays of one generated dataset, train and test
MAX_SAMPLES = 10**7  # n_train, n_test
MAX_LENGTH = 10**6  # length, delay

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of the best constant predictor on the adding problem.

The target is the sum of two independent U[0, 1] values: mean 1, variance 2·(1/12) = 1/6.
Predicting the constant 1 therefore has mean squared error 1/6 ≈ 0.1667; a model has
learnt something only below this.
"""

COPY_BLANK = 0  # category of the blank, input and target
COPY_FIRST_SYMBOL = 1  # symbols are 1..symbols; the delimiter is symbols + 1


def adding_baseline_loss() -> float:
    """The constant predictor's loss on the adding problem as the training engine reports it.

    The engine's ``"mse"`` loss (:mod:`gradstudy.engine`) is ½‖y − t‖² averaged over the
    batch, half the usual mean squared error; with one output the constant predictor's
    loss is therefore ½ · :data:`ADDING_BASELINE_MSE` = 1/12 ≈ 0.0833. Compare training
    curves of the engine against this value, and MSEs computed by hand against 1/6.

    Returns:
        1/12.
    """
    return 0.5 * ADDING_BASELINE_MSE


def copy_baseline(delay: int, copy_length: int = 10, symbols: int = 8) -> float:
    """Cross-entropy of the memoryless strategy on the copy-memory task (Arjovsky et al.).

    Predicting the blank with certainty for the first ``delay + copy_length`` steps (loss
    0) and a uniform distribution over the ``symbols`` symbols for the last
    ``copy_length`` steps (loss ln symbols each), averaged over all
    ``delay + 2·copy_length`` positions, gives ``copy_length·ln(symbols) /
    (delay + 2·copy_length)``: 10·ln 8/(T + 20) with the defaults. This is the mean over
    batch and time that the engine's ``"cross_entropy"`` loss reports for sequence labels.

    Args:
        delay: T, the number of steps between the end of the symbols and the delimiter
            plus one (as in :func:`copy_memory`).
        copy_length: number of symbols to remember.
        symbols: alphabet size.

    Returns:
        The baseline cross-entropy in nats.
    """
    delay, copy_length, symbols = _check_copy_args(delay, copy_length, symbols)
    return copy_length * math.log(symbols) / (delay + 2 * copy_length)


def adding_problem(length: int, n_train: int = 10_000, n_test: int = 1_000,
                   seed: int = 0) -> Dataset:
    """The adding problem (Hochreiter & Schmidhuber 1997), in the variant of Le et al. 2015.

    Each sequence has ``length`` steps and two input channels: channel 0 holds values
    drawn from U[0, 1]; channel 1 is a marker that is 1 at exactly two steps and 0
    elsewhere. As in Le et al. (2015), the first marker is placed uniformly at random in
    the first half of the sequence, steps ``0 .. length//2 − 1``, and the second uniformly
    in the second half, steps ``length//2 .. length − 1`` (for odd lengths the second half
    is one step longer). The target is the sum of the two marked values, read out after
    the last step: mean 1, variance 1/6 (see :data:`ADDING_BASELINE_MSE` and
    :func:`adding_baseline_loss`).

    Memory: ``(n_train + n_test) · (8·length + 4)`` bytes (x float32 with 2 channels,
    y float32); e.g. 11,000 sequences of length 200 take 17.6 MB (16.8 MiB).

    Args:
        length: sequence length T, at least 2.
        n_train: number of training sequences.
        n_test: number of test sequences.
        seed: seed of the generator (train and test use independent child streams).

    Returns:
        ``Dataset(x (n_train, length, 2) float32, y (n_train, 1) float32, x_test, y_test,
        classes=0)`` (regression).

    Raises:
        ConfigError: an argument out of range, or a dataset above :data:`MAX_TASK_BYTES`.

    References:
        Hochreiter & Schmidhuber (1997); Le, Jaitly & Hinton (2015), arXiv:1504.00941.
    """
    length = check_int("length", length, 2, MAX_LENGTH)
    n_train, n_test, seed = _check_sizes(n_train, n_test, seed)
    _check_bytes("adding_problem", (n_train + n_test) * (8 * length + 4),
                 "n_train, n_test or length")
    train_rng, test_rng = _rngs(seed)
    x, y = _adding_arrays(train_rng, n_train, length)
    x_test, y_test = _adding_arrays(test_rng, n_test, length)
    return Dataset(x, y, x_test, y_test, 0)


def _adding_arrays(rng: np.random.Generator, n: int, length: int):
    half = length // 2
    values = rng.random((n, length), dtype=np.float32)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    x = np.zeros((n, length, 2), np.float32)
    x[:, :, 0] = values
    rows = np.arange(n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
    return x, y


def copy_memory(delay: int, n_train: int = 10_000, n_test: int = 1_000, seed: int = 0,
                symbols: int = 8, copy_length: int = 10) -> Dataset:
    """The copy-memory task of Arjovsky, Shah & Bengio (2016).

    With T = ``delay``, K = ``copy_length`` and S = ``symbols`` (paper: K = 10, S = 8),
    each sequence has T + 2K steps over S + 2 categories: 0 is the blank, 1..S are the
    symbols and S + 1 is the delimiter (paper: a_9 blank, a_1..a_8 symbols, a_10
    delimiter). With 0-based steps the input is

    * steps 0 .. K−1: symbols drawn uniformly and independently from 1..S;
    * steps K .. K+T−2: blanks (T − 1 of them);
    * step K+T−1 (the (T+K)-th step, T+10 with K = 10): the delimiter;
    * steps K+T .. T+2K−1: blanks (K of them);

    and the target is the blank for steps 0 .. T+K−1 (the first T + K steps, up to and
    including the delimiter) and the K symbols, in order, for the last K steps. A
    memoryless predictor (blank up to the delimiter, then uniform over the S symbols)
    thus has cross-entropy exactly K·ln S/(T + 2K) averaged over all positions
    (:func:`copy_baseline`).

    Inputs are one-hot over the S + 2 categories. Memory:
    ``(n_train + n_test) · (T + 2K) · 4 · (S + 3)`` bytes (x float32 one-hot with S + 2
    channels, y int32); e.g. 11,000 sequences with T = 200 (220 steps) take 106 MB
    (102 MiB), 20,000 take 194 MB (185 MiB).

    Args:
        delay: T, at least 1.
        n_train: number of training sequences.
        n_test: number of test sequences.
        seed: seed of the generator (train and test use independent child streams).
        symbols: S, alphabet size of the symbols to copy (at least 2).
        copy_length: K, number of symbols to remember.

    Returns:
        ``Dataset(x (n_train, T + 2K, S + 2) float32, y (n_train, T + 2K) int32, x_test,
        y_test, classes=S + 2)``.

    Raises:
        ConfigError: an argument out of range, or a dataset above :data:`MAX_TASK_BYTES`.

    References:
        Arjovsky, Shah & Bengio (2016), arXiv:1511.06464; Hochreiter & Schmidhuber (1997).
    """
    delay, copy_length, symbols = _check_copy_args(delay, copy_length, symbols)
    n_train, n_test, seed = _check_sizes(n_train, n_test, seed)
    steps = delay + 2 * copy_length
    _check_bytes("copy_memory", (n_train + n_test) * steps * 4 * (symbols + 3),
                 "n_train, n_test or delay")
    train_rng, test_rng = _rngs(seed)
    x, y = _copy_arrays(train_rng, n_train, delay, symbols, copy_length)
    x_test, y_test = _copy_arrays(test_rng, n_test, delay, symbols, copy_length)
    return Dataset(x, y, x_test, y_test, symbols + 2)


def _copy_arrays(rng: np.random.Generator, n: int, delay: int, symbols: int,
                 copy_length: int):
    steps = delay + 2 * copy_length
    delimiter = symbols + 1
    sequence = rng.integers(COPY_FIRST_SYMBOL, symbols + 1, size=(n, copy_length),
                            dtype=np.int32)
    x = np.zeros((n, steps, symbols + 2), np.float32)
    x[np.arange(n)[:, None], np.arange(copy_length)[None, :], sequence] = 1.0
    x[:, copy_length:copy_length + delay - 1, COPY_BLANK] = 1.0
    x[:, copy_length + delay - 1, delimiter] = 1.0
    x[:, copy_length + delay:, COPY_BLANK] = 1.0
    y = np.full((n, steps), COPY_BLANK, np.int32)
    y[:, delay + copy_length:] = sequence
    return x, y


def sequence_mnist1d(data: Dataset) -> Dataset:
    """MNIST-1D read one value per step: x (N, 40) becomes (N, 40, 1), labels unchanged.

    Works for any dataset with 2-d inputs (N, features), which become sequences of
    length ``features`` with one channel; the arrays are views, not copies.

    Args:
        data: e.g. :func:`gradstudy.data.mnist1d`.

    Returns:
        The same dataset with ``x`` and ``x_test`` of shape (N, features, 1) float32.

    Raises:
        ConfigError: ``data`` that is not a Dataset, or inputs that are not 2-d.

    References:
        Greydanus (2020), arXiv:2011.14439 (a GRU reaches 91 % test accuracy).
    """
    if not isinstance(data, Dataset):
        raise ConfigError(f"data: sequence_mnist1d needs a gradstudy.data.Dataset (e.g. "
                          f"gradstudy.data.mnist1d()), got {type(data).__name__}")
    x, x_test = np.asarray(data.x), np.asarray(data.x_test)
    if x.ndim != 2 or x_test.ndim != 2:
        raise ConfigError(f"data: sequence_mnist1d needs inputs of shape (N, features), "
                          f"got x {x.shape} and x_test {x_test.shape}")
    return data._replace(x=x.astype(np.float32, copy=False)[:, :, None],
                         x_test=x_test.astype(np.float32, copy=False)[:, :, None])


# ------------------------------------------------------------------------------ helpers
def _check_sizes(n_train, n_test, seed) -> tuple[int, int, int]:
    return (check_int("n_train", n_train, 1, MAX_SAMPLES),
            check_int("n_test", n_test, 1, MAX_SAMPLES),
            check_int("seed", seed, 0, 2**32 - 1))


def _check_copy_args(delay, copy_length, symbols) -> tuple[int, int, int]:
    return (check_int("delay", delay, 1, MAX_LENGTH),
            check_int("copy_length", copy_length, 1, 10**4),
            check_int("symbols", symbols, 2, 10**4))


def _check_bytes(task: str, nbytes: int, fields: str) -> None:
    if nbytes > MAX_TASK_BYTES:
        raise ConfigError(f"{fields}: {task} would need {nbytes / 2**20:.0f} MiB, above the "
                          f"{MAX_TASK_BYTES / 2**20:.0f} MiB cap (MAX_TASK_BYTES)")


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    train, test = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)
