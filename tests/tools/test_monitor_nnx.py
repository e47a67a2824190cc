"""The monitor inside a Flax NNX ``nnx.Optimizer``: leaves named by their parameter paths
(``layers/0/kernel``), norms equal to an independent loop over the same steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from gradstudy.tools import monitor, monitor_dataset

X = jax.random.normal(jax.random.PRNGKey(0), (16, 4))
LR = 0.1


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(3)])
        self.norm = nnx.BatchNorm(4, rngs=rngs)  # batch statistics: not parameters

    def __call__(self, x):
        x = self.norm(x)
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return x


def _loss(model):
    return jnp.mean((model(X) - 0.5) ** 2)


def test_nnx_optimizer_leaves_are_named_by_path_and_match_a_plain_loop():
    model = MLP(nnx.Rngs(0))
    reference = nnx.clone(model)
    optimizer = nnx.Optimizer(model, monitor(every=1, capacity=8, inner=optax.sgd(LR)),
                              wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(_loss)(model)
        optimizer.update(model, grads)

    expected = []
    for _ in range(3):
        step(model, optimizer)
        grads = nnx.grad(_loss)(reference)
        params = nnx.state(reference, nnx.Param)
        g = {"/".join(map(str, k)): v[...] for k, v in nnx.to_flat_state(grads)}
        w = {"/".join(map(str, k)): v[...] for k, v in nnx.to_flat_state(params)}
        expected.append({k: (float(jnp.linalg.norm(g[k])),
                             float(LR * jnp.linalg.norm(g[k]) / jnp.linalg.norm(w[k])))
                         for k in g})
        nnx.update(reference, jax.tree.map(lambda p, d: p - LR * d, params, grads))

    ds = monitor_dataset(optimizer, model)
    names = [f"layers/{i}/{leaf}" for i in range(3) for leaf in ("bias", "kernel")]
    assert sorted(ds.leaf.values) == sorted(names + ["norm/bias", "norm/scale"])
    assert list(ds.step.values) == [0, 1, 2]
    for s, row in enumerate(expected):
        for name, (grad_norm, ratio) in row.items():
            assert float(ds.grad_norm.sel(leaf=name).values[s]) == pytest.approx(
                grad_norm, rel=1e-4), name
            if "kernel" in name:  # biases start at 0: their ratio is inf, then noisy
                assert float(ds.update_ratio.sel(leaf=name).values[s]) == pytest.approx(
                    ratio, rel=1e-4), name
    # the same names from the optimizer's parameter state as from the model
    again = monitor_dataset(optimizer.opt_state, nnx.state(model, nnx.Param))
    assert list(again.leaf.values) == list(ds.leaf.values)
    np.testing.assert_array_equal(again.grad_norm.values, ds.grad_norm.values)
