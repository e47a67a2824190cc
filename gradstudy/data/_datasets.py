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

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy._validate import check_int, check_real
from gradstudy.errors import ConfigError
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json

MNIST1D_VERSION = 1  # bumped if the way the arrays are made here changes


class Dataset(NamedTuple):
    """Arrays of one task: ``x`` (N, features), ``y`` int labels (N,) or targets (N, out)."""

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
