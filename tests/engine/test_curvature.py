"""Top Hessian eigenvalue by power iteration against the dense Hessian's eigvalsh."""

import jax
import jax.numpy as jnp
import numpy as np
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
