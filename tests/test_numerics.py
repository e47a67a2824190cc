"""The one safe norm (gradstudy._numerics) against float64 NumPy: no underflow or overflow
of the squares, non-finite entries kept, every axis form, the global norm of a tree."""

import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy._numerics import max_abs_scale, safe_global_norm, safe_norm


def _reference(x, axis=None):
    x = np.asarray(x, np.float64)
    return np.sqrt(np.sum(np.square(x), axis=axis))


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])  # float32 squares: 1e-60 and 1e60
def test_float32_norms_do_not_underflow_or_overflow(scale):
    x = scale * np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    want = _reference(x) * 1.0
    assert np.isfinite(want) and want > 0
    np.testing.assert_allclose(safe_norm(x), want, rtol=1e-5)
    for axis in (0, (1, 2), (0, 1, 2), -1):
        np.testing.assert_allclose(safe_norm(x, axis), _reference(x, axis), rtol=1e-5)
    with np.errstate(over="ignore", under="ignore"):
        plain = np.sqrt(np.sum(np.square(x)))  # what a naive float32 norm gives
    if scale != 1.0:
        assert plain == 0.0 or np.isinf(plain)


def test_axis_none_and_all_axes_agree_and_edge_cases():
    x = jnp.asarray([[3.0, -4.0], [0.0, 12.0]])
    assert float(safe_norm(x)) == float(safe_norm(x, (0, 1))) == 13.0
    assert float(safe_norm(jnp.float32(-2.5))) == 2.5
    assert safe_norm(jnp.zeros((0, 3)), 0).shape == (3,)
    assert float(safe_norm(jnp.zeros((0,)))) == 0.0
    assert float(safe_norm(jnp.zeros(4))) == 0.0
    assert np.isnan(float(safe_norm(jnp.asarray([1.0, np.nan]))))
    assert np.isinf(float(safe_norm(jnp.asarray([1.0, np.inf]))))
    np.testing.assert_array_equal(max_abs_scale(jnp.asarray([0.0, np.inf])), 1.0)


def test_global_norm_of_a_tree_is_the_norm_of_all_leaves():
    rng = np.random.default_rng(1)
    tree = {"a": 1e-25 * rng.normal(size=(4, 3)).astype(np.float32),
            "b": [1e-25 * rng.normal(size=5).astype(np.float32)]}
    flat = np.concatenate([tree["a"].ravel(), tree["b"][0]])
    np.testing.assert_allclose(safe_global_norm(tree), _reference(flat), rtol=1e-5)
