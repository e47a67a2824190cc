"""Memory estimate from shapes, chunking to a budget, and refusal of what cannot fit.

The reference for the estimate is XLA's own accounting of the compiled program
(``compiled.memory_analysis()``): the estimate must never be below it (it is used to refuse
and to chunk) nor wastefully far above it.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy import MLPSpec, Sweep, engine
from gradstudy._seeds import seed_keys
from gradstudy.engine import compiled_program, run_sweep_arrays
from gradstudy.errors import ConfigError
from gradstudy.families import mlp
from gradstudy.families.mlp import init_and_probe

CASES = [
    (MLPSpec(width=64, depth=16, activation="tanh", dtype="float32"), (16,), 16),
    (MLPSpec(width=32, depth=24, activation="relu", dtype="float32"), (2, 4, 8, 16, 24), 8),
    (MLPSpec(width=48, depth=8, activation="tanh", norm="layernorm", dtype="float32"), (8,), 32),
]


@pytest.mark.parametrize("spec,depths,batch", CASES)
def test_estimate_bounds_xla_memory_analysis(spec, depths, batch):
    spec = spec.static_key()

    def one(key, scales, sigma_b):
        return init_and_probe(spec, depths, batch, 1.0, key, scales, sigma_b)

    keys = seed_keys(0, 1)
    compiled = jax.jit(jax.vmap(one)).lower(keys, jnp.ones((1, 3)), jnp.ones((1,))).compile()
    xla = compiled.memory_analysis()
    measured = xla.temp_size_in_bytes + xla.output_size_in_bytes
    estimate = mlp.network_bytes(spec, depths, batch)
    assert measured <= estimate <= 2.0 * measured, (estimate, measured)


def test_chunked_program_equals_one_vmap(monkeypatch):
    """A budget that allows 3 networks at a time (so 12 networks run as 4 chunks) gives the
    same numbers as all 12 in one vmap."""
    spec = MLPSpec(width=16, depth=6, activation="tanh", sigma_w=1.3)
    sweep = Sweep(points=[spec, spec.replace(sigma_w=0.7), spec.replace(sigma_w=2.0)],
                  depths=(3, 6), seeds=4, batch=4)
    full = run_sweep_arrays(sweep, progress=False)
    per_network = mlp.network_bytes(spec.static_key(), sweep.depths, sweep.batch)
    outputs = 12 * mlp.network_output_bytes(spec, sweep.depths, sweep.batch)
    budget = 3 * per_network + outputs + 1
    assert engine.plan_chunk(spec.static_key(), sweep.depths, 4, 12, budget=budget) == 3
    monkeypatch.setenv(engine.BUDGET_ENV, repr(budget / 2**30))
    compiled_program.cache_clear()
    chunked = run_sweep_arrays(sweep, progress=False)
    for name, value in full.items():
        np.testing.assert_allclose(chunked[name], value, rtol=1e-6, err_msg=name)


def test_plan_splits_into_equal_chunks():
    spec = MLPSpec(width=16, depth=4)
    per = mlp.network_bytes(spec, (4,), 4)
    out = mlp.network_output_bytes(spec, (4,), 4)
    assert engine.plan_chunk(spec, (4,), 4, 64, budget=9 * per + 64 * out) == 8
    assert engine.plan_chunk(spec, (4,), 4, 7, budget=4 * per + 7 * out) == 4  # 7 is prime
    # the cap (a sweep's gain_chunk · seeds) also gives equal chunks: 120 = 4 × 30, not 3 × 32
    big = 10**12
    assert engine.plan_chunk(spec, (4,), 4, 120, budget=big, most=32) == 30
    assert engine.plan_chunk(spec, (4,), 4, 127, budget=big, most=32) == 32  # 1 padded
    for n in range(1, 80):
        for most in range(1, 20):
            chunk = engine.plan_chunk(spec, (4,), 4, n, budget=big, most=most)
            n_chunks = -(-n // chunk)
            assert chunk <= most and n_chunks == -(-n // most)
            assert n_chunks * chunk - n < n_chunks  # padding: under one network per chunk


def test_uneven_chunks_are_padded_not_compiled_twice():
    """13 networks, 4 at a time: padded to 16 and one loop body, not a remainder program (it
    doubled compile time and the compiler's peak memory); the numbers equal one vmap."""
    spec = MLPSpec(width=8, depth=3, activation="tanh").static_key()
    keys = seed_keys(0, 13)
    scales, sigma_b = jnp.ones((1, 3)), jnp.zeros((1,))
    texts = {}
    for chunk in (4, 13):
        program = compiled_program.__wrapped__(spec, (3,), 2, 1.0, chunk)
        texts[chunk] = program.lower(keys, scales, sigma_b).as_text()
        if chunk == 4:
            padded = program(keys, scales, sigma_b)
        else:
            whole = program(keys, scales, sigma_b)
    assert texts[4].count("stablehlo.while") <= texts[13].count("stablehlo.while") + 1
    for name, value in whole.items():
        assert padded[name].shape == value.shape == (1, 13) + value.shape[2:]
        np.testing.assert_allclose(padded[name], value, rtol=1e-6, err_msg=name)


def test_too_large_is_refused_at_once_with_the_estimate():
    """The issue's example (width 20000, depth 500, 64 seeds): one line with the estimate,
    before anything is compiled or allocated."""
    spec = MLPSpec(width=20000, depth=500)
    sweep = Sweep(points=[spec], depths=(500,), seeds=64, batch=32)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        run_sweep_arrays(sweep, progress=False)
    assert time.perf_counter() - t0 < 5
    message = str(err.value)
    assert message.startswith("memory: ") and "\n" not in message
    assert "GB" in message and engine.BUDGET_ENV in message
    # ≈ 2.5 copies of 500 · 20000² float32 weights per network
    assert 1.5e3 < float(message.split("≈ ")[1].split(" GB")[0]) < 2e3


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "inf", "nan"])
def test_bad_budget_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv(engine.BUDGET_ENV, raw)
    with pytest.raises(ConfigError, match=f"^{engine.BUDGET_ENV}: "):
        engine.budget_bytes()
