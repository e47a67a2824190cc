"""initial_curvature (λ_max of a training's loss at every seed's initial parameters, one
vmapped program, cached) against a per-seed Python loop: the same power iteration on a
hand-written MSE, and the dense Hessian's eigvalsh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gradstudy.engine._curvature as curvature
from gradstudy import MLPSpec
from gradstudy.data import teacher_student
from gradstudy.engine import (
    OptimizerSpec,
    Training,
    initial_curvature,
    initial_params,
    top_hessian_eigenvalue,
)
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import MLP

SPEC = MLPSpec(width=6, depth=2, in_dim=3, out_dim=1, activation="tanh", init="he_normal")
SEEDS, ITERATIONS = 3, 150


def _training(**kwargs):
    return Training(points=(SPEC,), optimizer=OptimizerSpec("sgd", 0.1), steps=5,
                    seeds=SEEDS, batch_size=None, loss="mse", **kwargs)


def test_initial_curvature_matches_a_per_seed_loop_and_the_dense_hessian(tmp_path):
    data = teacher_student(features=3, outputs=1, train=24, test=4, seed=1)
    training = _training()
    ds = initial_curvature(training, data, iterations=ITERATIONS, cache_dir=tmp_path)
    assert ds.lambda_max.dims == ("seed",) and ds.lambda_max.shape == (SEEDS,)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)

    def loss(p):  # written out here, not the loss table's
        return 0.5 * jnp.mean(jnp.sum((MLP(SPEC).apply({"params": p}, x)[0] - y) ** 2, -1))

    _, unravel = ravel_pytree(initial_params(training, 0, 0))
    one_seed = jax.jit(lambda p: top_hessian_eigenvalue(loss, p, jax.random.PRNGKey(0),
                                                         ITERATIONS))
    dense_hessian = jax.jit(jax.hessian(lambda f: loss(unravel(f))))
    for s in range(SEEDS):  # one seed at a time
        params = initial_params(training, 0, s)
        lam, residual = one_seed(params)
        np.testing.assert_allclose(ds.lambda_max.values[s], lam, rtol=1e-5)
        np.testing.assert_allclose(ds.residual.values[s], residual, rtol=1e-2, atol=1e-5)
        dense = np.asarray(dense_hessian(ravel_pytree(params)[0]), float)
        eigenvalues = np.linalg.eigvalsh((dense + dense.T) / 2)
        top = eigenvalues[np.argmax(np.abs(eigenvalues))]
        np.testing.assert_allclose(ds.lambda_max.values[s], top, rtol=1e-3)


def test_initial_curvature_is_cached_by_what_changes_it(tmp_path, monkeypatch):
    calls = []

    def fake(loss, params, key, iterations):  # the cache's keys, not the numbers
        calls.append(iterations)
        return jnp.float32(iterations), jnp.float32(0)

    monkeypatch.setattr(curvature, "top_hessian_eigenvalue", fake)
    data = teacher_student(features=3, outputs=1, train=24, test=4, seed=1)
    first = initial_curvature(_training(), data, iterations=20, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("curvature-*.nc"))
    assert len(files) == 1
    # what does not change the initial parameters (steps, optimizer) reuses the file
    other = Training(points=(SPEC,), optimizer=OptimizerSpec("adam", 1e-3), steps=9,
                     seeds=SEEDS, batch_size=4, loss="mse")
    again = initial_curvature(other, data, iterations=20, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.lambda_max.values, first.lambda_max.values)
    assert sorted(tmp_path.glob("curvature-*.nc")) == files and len(calls) == 1
    # the iterations, the seeds and the data each key a new file
    initial_curvature(_training(), data, iterations=21, cache_dir=tmp_path)
    initial_curvature(_training(base_seed=1), data, iterations=20, cache_dir=tmp_path)
    initial_curvature(_training(), teacher_student(features=3, outputs=1, train=24, test=4,
                                                   seed=2), iterations=20, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("curvature-*.nc"))) == 4 and len(calls) == 4


def test_initial_curvature_refuses_a_point_out_of_range_and_mismatched_data():
    data = teacher_student(features=3, outputs=1, train=24, test=4, seed=1)
    with pytest.raises(ConfigError, match="point"):
        initial_curvature(_training(), data, point=1)
    with pytest.raises(ConfigError, match="data"):
        initial_curvature(_training(), teacher_student(features=5, outputs=1, train=8,
                                                       test=2, seed=1))


def test_bad_data_refused_in_one_line():
    """A NaN input or target would give a wrong λ_max: refused, naming the field."""
    data = teacher_student(features=3, outputs=1, train=24, test=4, seed=1)
    bad_x = np.array(data.x, copy=True)
    bad_x[3, 1] = np.nan
    with pytest.raises(ConfigError, match=r"^x: "):
        initial_curvature(_training(), data._replace(x=bad_x))
    bad_y = np.array(data.y, copy=True)
    bad_y[0] = np.inf
    with pytest.raises(ConfigError, match=r"^y: "):
        initial_curvature(_training(), data._replace(y=bad_y))
