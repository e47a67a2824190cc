"""Curvature of a loss at a point: the top Hessian eigenvalue by power iteration on
Hessian-vector products (forward-over-reverse), never forming the Hessian; and, cached like
every other measurement, that of a training's loss at each seed's initial parameters
(:func:`initial_curvature`).

Gradient descent with step size η on the quadratic model of the loss at w multiplies the
component along the Hessian eigenvector of λ by (1 − ηλ): it diverges when η > 2/λ_max.

References:
    Pearlmutter (1994), Fast exact multiplication by the Hessian.
    LeCun, Simard & Pearlmutter (1993), Automatic learning rate maximization by on-line
    estimation of the Hessian's eigenvectors (η < 2/λ_max).
    Cohen et al. (2021), Gradient descent on neural networks typically occurs at the edge
    of stability.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree

from gradstudy._validate import check_int
from gradstudy.data._datasets import Dataset, check_dataset
from gradstudy.engine._training import data_fingerprint
from gradstudy.engine._training_programs import initial_params
from gradstudy.engine._training_spec import TRAIN_VERSION, Training, family_for, hooks_for
from gradstudy.errors import ConfigError
from gradstudy.nn._losses import LOSS_FUNCTIONS
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

CURVATURE_VERSION = 1  # bumped whenever what initial_curvature computes changes (cache keys)


def hvp(loss, params, vector):
    """H(params)·vector for a scalar ``loss(params)`` (pytrees of the same structure)."""
    return jax.jvp(jax.grad(loss), (params,), (vector,))[1]


def top_hessian_eigenvalue(loss, params, key: jax.Array, iterations: int = 100):
    """The largest-magnitude eigenvalue of the Hessian of ``loss`` at ``params`` and its
    eigenvector (power iteration from a random start, ``iterations`` HVPs in one
    ``lax.fori_loop``; jit/vmap-safe).

    Returns:
        ``(eigenvalue, residual)``: the Rayleigh quotient vᵀHv and ‖Hv − λv‖ of the final
        unit vector v (small when converged).
    """
    iterations = check_int("iterations", iterations, 1, 10**6)
    flat, unravel = ravel_pytree(params)

    def matvec(v):
        return ravel_pytree(hvp(loss, params, unravel(v)))[0]

    v = jax.random.normal(key, flat.shape, flat.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        w = matvec(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, iterations, body, v)
    hv = matvec(v)
    eigenvalue = jnp.vdot(v, hv)
    return eigenvalue, jnp.linalg.norm(hv - eigenvalue * v)


# --------------------------------------------------------- a training's initial curvature
def initial_curvature(training: Training, data: Dataset, point: int = 0,
                      iterations: int = 100, power_seed: int = 0,
                      cache_dir: Path | str | None = None,
                      name: str = "curvature") -> xr.Dataset:
    """λ_max of the training loss's Hessian at the initial parameters of every seed.

    The loss is ``training.loss`` (:data:`gradstudy.nn.LOSS_FUNCTIONS`) of the network of
    ``training.points[point]`` on the whole training set (``data.x``, ``data.y``) at the
    parameters each seed's runs start from (:func:`initial_params`, the keys
    :func:`gradstudy.engine.train` uses).  Every seed's :func:`top_hessian_eigenvalue`,
    from the same power-iteration start ``PRNGKey(power_seed)``, in one jitted program
    vmapped over the seeds.  Gradient descent on the quadratic model of that loss
    diverges for step sizes above 2/λ_max (:attr:`Training.seed_lr_scale` takes 1/λ_max
    per seed).

    Cached like a sweep or a training (:func:`gradstudy.results.cached`): the file is
    keyed by a description of the point (functions by fingerprint), the seeds, the loss,
    a hash of the data, the iterations and the power-iteration seed; a point whose
    functions cannot be fingerprinted is computed afresh.

    Args:
        training: the training whose initial parameters are measured (only its point,
            ``seeds``, ``base_seed`` and ``loss`` matter).
        data: the training set (its ``x`` and ``y``; the test set is not used).
        point: index of the point in ``training.points``.
        iterations: Hessian-vector products of the power iteration.
        power_seed: seed of the power iteration's random start vector.
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with dim ``seed``: ``lambda_max`` (the Rayleigh quotient vᵀHv of the final
        unit vector v) and ``residual`` (‖Hv − λv‖, small when converged), in the point's
        dtype.

    Raises:
        ConfigError: ``point`` out of range, ``iterations`` out of range, or data that do
            not fit the point.

    References:
        Pearlmutter (1994); LeCun, Simard & Pearlmutter (1993) (η < 2/λ_max).
    """
    if not isinstance(training, Training):
        raise ConfigError(f"training: must be a gradstudy.engine.Training, got "
                          f"{type(training).__name__}")
    point = check_int("point", point, 0, len(training.points) - 1)
    iterations = check_int("iterations", iterations, 1, 10**6)
    power_seed = check_int("power_seed", power_seed, 0, 2**32 - 1)
    spec = training.points[point]
    data = check_dataset(data)  # NaN inputs or bad labels would give a wrong λ_max
    hooks = hooks_for(spec)
    why = hooks.check_data(spec, data)
    if why is not None:
        raise ConfigError(f"data: the point {why}"[:300])
    description = {"measurement": "top Hessian eigenvalue of the training loss at init",
                   "point": spec.describe(), "seeds": training.seeds,
                   "base_seed": training.base_seed, "loss": training.loss,
                   "data": data_fingerprint(data), "iterations": iterations,
                   "power_seed": power_seed, "train_version": TRAIN_VERSION,
                   "curvature_version": CURVATURE_VERSION}

    def compute():
        x, y = jnp.asarray(data.x), jnp.asarray(data.y)
        forward = hooks.apply(spec)
        loss_fn = LOSS_FUNCTIONS[training.loss]

        def loss(params):
            return loss_fn(forward(params, x), y)

        stacked = initial_params(training, point, np.arange(training.seeds))
        lam, residual = jax.jit(jax.vmap(lambda w: top_hessian_eigenvalue(
            loss, w, jax.random.PRNGKey(power_seed), iterations)))(stacked)
        return labeled_dataset(
            {"lambda_max": np.asarray(lam), "residual": np.asarray(residual)},
            {"lambda_max": ("seed",), "residual": ("seed",)},
            {"seed": np.arange(training.seeds)},
            {DESCRIPTION_ATTR: describe_json(description)},
            {"lambda_max": "top eigenvalue of the training loss's Hessian at init "
                           "(power iteration)",
             "residual": "‖Hv − λv‖ of the power iteration's final unit vector v"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  family_for(spec).why_unfingerprintable(spec))
