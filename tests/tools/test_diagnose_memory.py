"""Memory of ``diagnose`` and of the ``monitor`` state, estimated from shapes before
anything is allocated, and refused beyond the budget (``$GRADSTUDY_MEMORY_GB``, as sweeps
and trainings) with one line.

The reference for the diagnosis estimate is XLA's own accounting of the compiled program
(``compiled.memory_analysis()``): never below it, at most 3× above it (measured 1.5-2.2×).
The monitor state's estimate is exact: the bytes of the buffers ``init`` allocates."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy._seeds import seed_keys
from gradstudy.errors import ConfigError
from gradstudy.tools import _diagnose as diag, diagnose, make_probes, monitor, probe
from gradstudy.tools._monitor import BUDGET_ENV, _layout, state_bytes


class MLP(nn.Module):
    width: int = 64
    depth: int = 4

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width)(x))
        return nn.Dense(3)(x)


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = nn.relu(nn.Conv(8, (3,))(x))
        return nn.Dense(2)(x.reshape(x.shape[0], -1))


def _loss(y, b):
    return jnp.mean(y ** 2)


@pytest.mark.parametrize("module,batch", [
    (MLP(), jnp.ones((64, 32))),
    (MLP(width=16, depth=8), jnp.ones((256, 16))),
    (CNN(), jnp.ones((16, 20, 2))),
])
def test_estimate_bounds_xla_memory_analysis(module, batch):
    def init(key):
        return module.init(key, batch)

    example = jax.eval_shape(init, jax.random.PRNGKey(0))
    probes = make_probes(module, example, batch)
    estimate = (diag._network_bytes(example, probes.activation_bytes, len(probes.order))
                + diag._tree_bytes(batch))

    def one(v):
        out = probe(module, v, batch, _loss, probes=probes)
        return {"loss": out["loss"], "modules": out["modules"], "params": out["params"]}

    # the program diagnose runs for one network at a time
    program = jax.jit(lambda ks: jax.lax.map(lambda k: one(init(k)), ks, batch_size=1))
    xla = program.lower(seed_keys(0, 1)).compile().memory_analysis()
    measured = xla.temp_size_in_bytes + xla.output_size_in_bytes + xla.argument_size_in_bytes
    assert measured <= estimate <= 3.0 * measured, (estimate, measured)


def test_diagnosis_beyond_the_budget_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1e-5")  # 10 kB: one network of this MLP needs more
    with pytest.raises(ConfigError, match=r"^memory: this diagnosis needs ≈ .* per network "
                                          r"\(MLP: .*budget is 0 MB.*raise GRADSTUDY_MEMORY_GB$"):
        diagnose(MLP(), jnp.ones((8, 32)), _loss, seeds=2)
    variables = MLP().init(jax.random.PRNGKey(0), jnp.ones((8, 32)))
    with pytest.raises(ConfigError, match=r"^memory: this diagnosis needs"):
        diagnose(MLP(), jnp.ones((8, 32)), _loss, variables=variables)


def test_seeds_are_chunked_to_the_budget_and_a_given_seed_batch_is_refused(monkeypatch):
    """A budget for 3 networks at a time: 8 seeds run in equal chunks (numbers unchanged); an
    explicit seed_batch beyond it is refused naming seed_batch."""
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 32))
    full = diagnose(MLP(), x, _loss, seeds=8)
    example = jax.eval_shape(lambda k: MLP().init(k, x), jax.random.PRNGKey(0))
    probes = make_probes(MLP(), example, x)
    per_network = (diag._network_bytes(example, probes.activation_bytes, len(probes.order))
                   + diag._tree_bytes(x))
    budget = 3 * per_network + 1
    assert diag.plan_seed_batch(per_network, 8, 8, False, "MLP", budget=budget) == 3
    monkeypatch.setenv(BUDGET_ENV, repr(budget / 2**30))
    chunked = diagnose(MLP(), x, _loss, seeds=8)
    np.testing.assert_allclose(chunked.backprop_norm, full.backprop_norm, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"^seed_batch: 8 networks at once need ≈ .* use "
                                          r"seed_batch ≤ 3, or raise GRADSTUDY_MEMORY_GB$"):
        diagnose(MLP(), x, _loss, seeds=8, seed_batch=8)


def test_monitor_state_estimate_is_exact_and_large_capacity_is_refused(monkeypatch):
    # the 1 GB default is asserted below: not the budget of the environment running the test
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    params = {"w": jnp.ones((4, 3)), "stack": jnp.ones((5, 2, 2)),
              "b": jnp.ones(3, jnp.float64) if jax.config.jax_enable_x64 else jnp.ones(3)}

    def stacked(name, x):
        return name == "stack"

    state = monitor(every=1, capacity=37, stacked=stacked).init(params)
    allocated = sum(x.nbytes for x in jax.tree.leaves(
        (state.step, state.grad_norm, state.update_norm, state.param_norm,
         state.update_ratio, state.nonfinite)))
    leaves = jax.tree.leaves(params)
    assert state_bytes(leaves, _layout(params, stacked), 37) == allocated
    # the case: 10**7 rows pass the argument check, and the state (1.2 GB for six
    # leaves) is refused at init, before it is allocated
    big = {f"layer{i}": jnp.ones((2, 2)) for i in range(6)}
    tx = monitor(every=1, capacity=10**7)
    with pytest.raises(ConfigError, match=r"^capacity: the monitor state needs ≈ 1\.15 GB "
                                          r"\(capacity 10000000 × 6 leaf entries × 5 fields\)"
                                          r" but the budget is 1.00 GB; .*GRADSTUDY_MEMORY_GB$"):
        tx.init(big)
    monkeypatch.setenv(BUDGET_ENV, "1e-4")  # 105 kB
    with pytest.raises(ConfigError, match=r"^capacity: "):
        monitor(capacity=1000).init(big)
    state = monitor(capacity=10).init(big)  # a normal size is accepted
    updates, _ = optax.chain(monitor(capacity=10), optax.sgd(0.1)).update(
        big, optax.chain(monitor(capacity=10), optax.sgd(0.1)).init(big), big)
    assert state.step.shape == (10,) and jax.tree.leaves(updates)
