"""Top Hessian eigenvalue by power iteration against the dense Hessian's eigvalsh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gradstudy import MLPSpec, sample_params
from gradstudy.engine import hvp, top_hessian_eigenvalue
from gradstudy.families.mlp import MLP


def test_power_iteration_matches_the_dense_hessian():
    with jax.enable_x64(True):
        spec = MLPSpec(width=5, depth=2, in_dim=3, out_dim=2, activation="relu",
                       init="he_normal", dtype="float64")
        params = sample_params(spec, jax.random.PRNGKey(0))
        x = jax.random.normal(jax.random.PRNGKey(1), (16, 3), jnp.float64)
        y = jax.random.normal(jax.random.PRNGKey(2), (16, 2), jnp.float64)

        def loss(p):
            return 0.5 * jnp.mean(jnp.sum((MLP(spec).apply({"params": p}, x)[0] - y) ** 2, -1))

        flat, unravel = ravel_pytree(params)
        dense = jax.hessian(lambda f: loss(unravel(f)))(flat)
        eigenvalues = np.linalg.eigvalsh(np.asarray(dense))
        top = eigenvalues[np.argmax(np.abs(eigenvalues))]
        got, residual = top_hessian_eigenvalue(loss, params, jax.random.PRNGKey(3), 500)
        np.testing.assert_allclose(float(got), top, rtol=1e-8)
        assert float(residual) < 1e-6 * abs(top)
        # and one HVP equals the dense product
        v = jax.random.normal(jax.random.PRNGKey(4), flat.shape, jnp.float64)
        np.testing.assert_allclose(ravel_pytree(hvp(loss, params, unravel(v)))[0],
                                   dense @ v, rtol=1e-10, atol=1e-12)


def test_negative_top_eigenvalue_keeps_its_sign():
    """The docstring promises the signed eigenvalue of largest magnitude: a loss whose
    Hessian has spectrum {-3, 1, 0.5, -0.2} in a random basis gives -3 (not 3 nor ‖Hv‖),
    and the negated MLP loss gives minus the dense top eigenvalue."""
    with jax.enable_x64(True):
        q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
        hessian = q @ np.diag([-3.0, 1.0, 0.5, -0.2]) @ q.T
        params = {"w": jnp.asarray(np.random.default_rng(1).normal(size=4))}

        def quadratic(p):
            return 0.5 * p["w"] @ jnp.asarray(hessian) @ p["w"] + jnp.sum(p["w"])

        got, residual = top_hessian_eigenvalue(quadratic, params, jax.random.PRNGKey(0), 200)
        assert float(got) == pytest.approx(-3.0, rel=1e-10)
        assert float(residual) < 1e-8

        spec = MLPSpec(width=5, depth=2, in_dim=3, out_dim=2, activation="tanh",
                       init="xavier_normal", dtype="float64")
        mlp_params = sample_params(spec, jax.random.PRNGKey(0))
        x = jax.random.normal(jax.random.PRNGKey(1), (16, 3), jnp.float64)
        y = jax.random.normal(jax.random.PRNGKey(2), (16, 2), jnp.float64)

        def negated(p):
            return -0.5 * jnp.mean(jnp.sum((MLP(spec).apply({"params": p}, x)[0] - y) ** 2, -1))

        flat, unravel = ravel_pytree(mlp_params)
        dense = jax.hessian(lambda f: negated(unravel(f)))(flat)
        eigenvalues = np.linalg.eigvalsh(np.asarray(dense))
        top = eigenvalues[np.argmax(np.abs(eigenvalues))]
        assert top < 0
        got, _ = top_hessian_eigenvalue(negated, mlp_params, jax.random.PRNGKey(3), 500)
        np.testing.assert_allclose(float(got), top, rtol=1e-8)
