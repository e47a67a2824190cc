"""Training data generated on this machine, never downloaded: MNIST-1D, a teacher–student
regression task, and input transforms for studying input normalization.

MNIST-1D (Greydanus 2020) is made by the ``mnist1d`` package's procedural
``make_dataset`` (its default arguments and seed 42: 4000 training and 1000 test signals
of length 40, 10 classes), generated once and cached as a netCDF file keyed by the
arguments and verified by checksum on load (:mod:`gradstudy.results`).

References:
    S. Greydanus (2020), Scaling down deep learning, arXiv:2011.14439 (MNIST-1D; test
    accuracy 32 % logistic regression, 68 % MLP, 94 % CNN, 91 % GRU).
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy._validate import check_int, check_real, short_repr
from gradstudy.errors import ConfigError
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json

MNIST1D_VERSION = 1  # bumped if the way the arrays are made here changes


class Dataset(NamedTuple):
    """Arrays of one task: ``x`` (N, features), ``y`` int labels (N,) or targets (N, out).

    Inputs may be (N, time, features) or (N, length, channels) for the recurrent and
    convolutional families, and labels (N, time) for per-step outputs.  ``classes`` is the
    number of classes (labels 0 … classes − 1), or 0 for regression.  The fields are not
    checked when a Dataset is made; :func:`check_dataset` checks them (and
    :func:`gradstudy.engine.train` calls it).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int  # 0 for regression

    @property
    def features(self) -> int:
        return int(self.x.shape[1])

    @property
    def outputs(self) -> int:
        return self.classes or int(self.y.shape[1])


MAX_CLASSES = 10**6


def check_dataset(data) -> Dataset:
    """``data`` checked and converted: inputs float32, labels int32 (regression targets
    float32), every array a NumPy array; else a one-line ConfigError naming the field.

    Array-likes (lists, JAX arrays) are accepted through ``np.asarray``.  Refused: a value
    that is not a Dataset; ``classes`` other than 0 (regression) or an integer ≥ 2; inputs
    or targets that are not real numbers, not finite (NaN, inf, or beyond float32's
    range), empty, or of no example axis; test examples of another shape than the training
    examples; ``y``/``y_test`` of another length than ``x``/``x_test``; class labels that
    are not integers or lie outside 0 … classes − 1.  Whether the arrays fit a network
    (features, outputs, label shape) is the model's check
    (:class:`gradstudy.families.TrainHooks` ``check_data``).
    """
    if not isinstance(data, Dataset):
        raise ConfigError(f"data: must be a gradstudy.data.Dataset, got {type(data).__name__}")
    classes = data.classes
    if isinstance(classes, (bool, np.bool_)) or not isinstance(classes, numbers.Integral) \
            or not (classes == 0 or 2 <= classes <= MAX_CLASSES):
        raise ConfigError(f"classes: must be 0 (regression) or an integer in [2, "
                          f"{MAX_CLASSES}] (the number of classes), got {short_repr(classes)}")
    classes = int(classes)
    x = _inputs("x", data.x, "training")
    x_test = _inputs("x_test", data.x_test, "test")
    if x_test.shape[1:] != x.shape[1:]:
        raise ConfigError(f"x_test: examples of shape {x_test.shape[1:]}, but x's are "
                          f"{x.shape[1:]}: test and training examples must have one shape")
    y = _targets("y", data.y, classes, len(x), "x")
    y_test = _targets("y_test", data.y_test, classes, len(x_test), "x_test")
    if y_test.shape[1:] != y.shape[1:]:
        raise ConfigError(f"y_test: per-example shape {y_test.shape[1:]}, but y's is "
                          f"{y.shape[1:]}")
    return Dataset(x, y, x_test, y_test, classes)


def _array(field: str, value) -> np.ndarray:
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged lists and foreign objects fail in many ways
        raise ConfigError(f"{field}: not an array of numbers ({type(e).__name__}: "
                          f"{short_repr(str(e), 60)})") from None
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{field}: must hold real numbers, got dtype {a.dtype} "
                          f"({short_repr(value, 40)})")
    return a


def _finite_float32(field: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = a.astype(np.float32, copy=False)
    bad = out.size - int(np.count_nonzero(np.isfinite(out)))
    if bad:
        where = "" if a.dtype == np.float32 else " in float32, which training uses"
        raise ConfigError(f"{field}: {bad} of {out.size} values are NaN or infinite{where}; "
                          f"training data must be finite")
    return out


def _inputs(field: str, value, which: str) -> np.ndarray:
    a = _array(field, value)
    if a.ndim < 2:
        raise ConfigError(f"{field}: must have shape (examples, features) (or (examples, "
                          f"time, features)), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ConfigError(f"{field}: the {which} set is empty (shape {a.shape})")
    if a.size == 0:
        raise ConfigError(f"{field}: examples of shape {a.shape[1:]} hold no values")
    return _finite_float32(field, a)


def _targets(field: str, value, classes: int, examples: int, inputs: str) -> np.ndarray:
    a = _array(field, value)
    if a.ndim == 0 or a.shape[0] != examples:
        got = "a scalar" if a.ndim == 0 else f"{a.shape[0]} entries"
        raise ConfigError(f"{field}: {got} for the {examples} examples of {inputs}: one "
                          f"{'label' if classes else 'target'} per example")
    if not classes:
        return _finite_float32(field, a)
    if a.dtype.kind not in "iu":
        hint = f" (e.g. {field}.astype(int))" if a.dtype.kind == "f" else ""
        raise ConfigError(f"{field}: class labels must be integers in 0..{classes - 1}, got "
                          f"dtype {a.dtype}{hint}; for regression targets set classes=0")
    if a.size:
        low, high = a.min(), a.max()
        if low < 0 or high >= classes:
            raise ConfigError(f"{field}: class labels must be in 0..{classes - 1} "
                              f"(classes={classes}), got labels from {low} to {high}")
    return a.astype(np.int32, copy=False)


def mnist1d(cache_dir: Path | str | None = "results/data", seed: int = 42,
            num_samples: int = 5000) -> Dataset:
    """MNIST-1D: 80 % / 20 % split of ``num_samples`` signals (default 4000 / 1000).

    The ``mnist1d`` package seeds NumPy's global generator; its state is restored
    afterwards so that the caller's random numbers do not change.
    """
    seed = check_int("seed", seed, 0, 2**32 - 1)
    num_samples = check_int("num_samples", num_samples, 10, 10**6)
    description = {"dataset": "mnist1d", "seed": seed, "num_samples": num_samples,
                   "version": MNIST1D_VERSION}

    def make():
        import xarray as xr


        arrays = _make_mnist1d(seed, num_samples)
        return xr.Dataset(
            {"x": (("example", "position"), arrays["x"]),
             "y": (("example",), arrays["y"]),
             "x_test": (("test_example", "position"), arrays["x_test"]),
             "y_test": (("test_example",), arrays["y_test"])},
            attrs={DESCRIPTION_ATTR: describe_json(description)})


    ds = cached("mnist1d", description, make, None if cache_dir is None else Path(cache_dir))
    return Dataset(ds.x.values.astype(np.float32), ds.y.values.astype(np.int32),
                   ds.x_test.values.astype(np.float32), ds.y_test.values.astype(np.int32),
                   10)


def _make_mnist1d(seed: int, num_samples: int) -> dict:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ConfigError("data: MNIST-1D needs the mnist1d package (pip install mnist1d)"
                          ) from None
    import random

    args = get_dataset_args()
    args.seed, args.num_samples = seed, num_samples
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        made = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": np.asarray(made["x"], np.float32), "y": np.asarray(made["y"], np.int32),
            "x_test": np.asarray(made["x_test"], np.float32),
            "y_test": np.asarray(made["y_test"], np.int32)}


def teacher_student(features: int = 32, outputs: int = 1, train: int = 2000,
                    test: int = 500, teacher_width: int = 64, noise: float = 0.0,
                    seed: int = 0) -> Dataset:
    """Regression on a random one-hidden-layer tanh teacher.

    x ~ N(0, I); y = W₂ tanh(W₁ x / √features) / √teacher_width + noise·ε, with W₁, W₂ and
    ε standard normal: targets of variance ≈ E[tanh²] ≈ 0.39 per output (plus noise²).
    """
    features = check_int("features", features)
    outputs = check_int("outputs", outputs)
    train, test = check_int("train", train, 1, 10**7), check_int("test", test, 1, 10**7)
    teacher_width = check_int("teacher_width", teacher_width)
    noise = check_real("noise", noise)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    k1, k2, kx, ke = jax.random.split(jax.random.PRNGKey(seed), 4)
    w1 = jax.random.normal(k1, (features, teacher_width))
    w2 = jax.random.normal(k2, (teacher_width, outputs))
    x = jax.random.normal(kx, (train + test, features))
    y = jnp.tanh(x @ w1 / np.sqrt(features)) @ w2 / np.sqrt(teacher_width)
    y = y + noise * jax.random.normal(ke, y.shape)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    return Dataset(x[:train], y[:train], x[train:], y[train:], 0)


def transform_inputs(data: Dataset, scale: float = 1.0, shift: float = 0.0) -> Dataset:
    """Inputs ``scale·x + shift`` (train and test alike): raw, unnormalised inputs for
    the input-normalization study (MNIST-1D comes standardised: mean 0, std 1)."""
    scale = check_real("scale", scale, 1e-6, 1e6)
    shift = check_real("shift", shift, -1e6, 1e6)
    return data._replace(x=(scale * data.x + shift).astype(np.float32),
                         x_test=(scale * data.x_test + shift).astype(np.float32))


def standardize(data: Dataset) -> Dataset:
    """Inputs standardised per feature with the training set's mean and std."""
    mean, std = data.x.mean(axis=0), data.x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return data._replace(x=((data.x - mean) / std).astype(np.float32),
                         x_test=((data.x_test - mean) / std).astype(np.float32))
