"""The "orthogonal" initializer: the same Haar matrices as ``jax.nn.initializers.orthogonal``
(to float32 rounding, for square, wide, tall and conv-shaped kernels), built without a LAPACK
QR custom call — a vmapped batched QR of 256 x 256 MLP layers deadlocked on XLA CPU
(jax 0.10.2), which is why it is Householder reflections."""

import re

import jax
import numpy as np
import pytest

from gradstudy.nn import get_initializer


@pytest.mark.parametrize("shape", [(6, 6), (3, 7), (7, 3), (3, 4, 6)])
def test_orthogonal_is_jaxs_matrix_to_rounding(shape):
    key = jax.random.PRNGKey(11)
    ours = np.asarray(get_initializer("orthogonal").sample(key, shape))
    reference = np.asarray(jax.nn.initializers.orthogonal()(key, shape))
    np.testing.assert_allclose(ours, reference, atol=2e-6)
    flat = ours.reshape(-1, shape[-1])
    small = min(flat.shape)
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(small), atol=2e-6)


def test_vmapped_orthogonal_init_calls_no_lapack_qr():
    sample = get_initializer("orthogonal").sample
    lowered = jax.jit(jax.vmap(lambda k: sample(k, (8, 8)))).lower(
        jax.random.split(jax.random.PRNGKey(0), 2)).as_text()
    calls = set(re.findall(r"custom_call @(\w+)", lowered))
    assert not {c for c in calls if "qr" in c.lower() or "geqrf" in c.lower()}, calls
