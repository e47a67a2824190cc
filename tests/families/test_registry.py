"""The model-family seam and receptive-field fans.

A family that is not an MLP (a scalar linear recurrence, measured through time) plugs into
``Sweep``/``run_cached`` by registering a ``ModelFamily``; no line of the sweep engine,
storage or probe core changes.  Its stored numbers are checked against a closed form
computed in a per-seed Python loop, and its points that differ only in a scalar share one
compiled program.  Conv kernels get fan_in = C_in·∏k, as flax's ``variance_scaling`` does.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradstudy.engine._sweep as sweep_mod
import gradstudy.families._registry as family_mod
from gradstudy import MLPSpec, Sweep
from gradstudy._seeds import seed_keys
from gradstudy.engine import run_cached
from gradstudy.errors import ConfigError
from gradstudy.families import ModelFamily, family_of, register_family
from gradstudy.nn import fans, get_initializer


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    """h_t = w·h_(t−1) + x_t, t = 1..depth, w = gain·(1 + 0.1 ε) with ε ~ N(0, 1) per seed;
    L = h_T (so ∂L/∂h_t = w^(T−t) exactly)."""

    depth: int = 8
    gain: float = 1.0
    dtype: str = "float64"

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _chain_measure(spec, depths, batch, input_std, key, scalars, keep_backprop, loss):
    (gain,) = scalars
    k_w, k_x = jax.random.split(key)
    w = gain * (1 + 0.1 * jax.random.normal(k_w, (), jnp.float64))
    xs = input_std * jax.random.normal(k_x, (max(depths),), jnp.float64)

    # ∂L/∂h_t through the recurrence: perturb every h_t by a zero input added after it
    def with_taps(taps):
        def step(h, tx):
            tap, x = tx
            h = w * h + x + tap
            return h, h
        return jax.lax.scan(step, jnp.zeros((), jnp.float64), (taps, xs))[0]

    taps = jnp.zeros(max(depths), jnp.float64)
    return {"backprop_norm": jnp.abs(jax.grad(with_taps)(taps)),
            "final_state": with_taps(taps)}


CHAIN_FAMILY = ModelFamily(
    name="scalar_chain", spec_type=ChainSpec,
    at_depth=lambda spec, depth: dataclasses.replace(spec, depth=depth),
    program_key=lambda spec: dataclasses.replace(spec, gain=1.0),
    scalars=lambda spec: (spec.gain,),
    measure=_chain_measure,
    measured={"backprop_norm": (("time",), "|dL/dh_t| through the recurrence"),
              "final_state": ((), "h_T")},
    memory=lambda spec, depths, batch, keep: (64 * max(depths), 16 * max(depths), "a chain"),
    coords=lambda points: {"gain": [p.gain for p in points]},
    fingerprint=lambda spec: ("chain-v1",),
    why_unfingerprintable=lambda spec: None,
    label=lambda spec: f"chain of {spec.depth}",
)


@pytest.fixture
def chain_family(monkeypatch):
    monkeypatch.setattr(family_mod, "_FAMILIES", dict(family_mod._FAMILIES))
    register_family(CHAIN_FAMILY)
    sweep_mod.compiled_program.cache_clear()
    yield CHAIN_FAMILY
    sweep_mod.compiled_program.cache_clear()


def test_a_new_family_plugs_into_sweeps_and_storage(chain_family, tmp_path):
    gains = (0.5, 0.9, 1.1)
    sweep = Sweep(points=[ChainSpec(gain=g) for g in gains], depths=(12,), seeds=5, batch=1)
    assert len(sweep.groups()) == 1  # points differing only in the gain: one program
    ds = run_cached(sweep, tmp_path, "chain", progress=False)
    assert ds.backprop_norm.dims == ("point", "seed", "time")  # the family's own dims
    assert list(ds.gain.values) == list(gains)
    assert sweep_mod.compiled_program.cache_info().currsize == 1
    # closed form, per seed in a Python loop: |∂h_T/∂h_t| = |w|^(T−t), t = 1..T
    keys = seed_keys(sweep.base_seed, sweep.seeds)
    T = 12
    for p, gain in enumerate(gains):
        for s in range(sweep.seeds):
            k_w, _ = jax.random.split(keys[s])
            with jax.enable_x64(True):
                w = gain * (1 + 0.1 * float(jax.random.normal(k_w, (), jnp.float64)))
            expected = np.abs(w) ** (T - np.arange(1, T + 1))
            np.testing.assert_allclose(ds.backprop_norm.values[p, s], expected, rtol=1e-12)
    # stored and reloaded: the same file is verified and reused
    again = run_cached(sweep, tmp_path, "chain", progress=False)
    np.testing.assert_array_equal(again.backprop_norm.values, ds.backprop_norm.values)
    assert len(list(tmp_path.glob("chain-*.nc"))) == 1


def test_families_do_not_mix_and_unknown_specs_are_refused(chain_family):
    with pytest.raises(ConfigError, match=r"^points: all of one model family; item 0 is "
                                          r"mlp, item 1 scalar_chain$"):
        Sweep(points=[MLPSpec(width=4, depth=2), ChainSpec()], depths=(2,))
    with pytest.raises(ConfigError, match=r"^points: item 0: must be a model spec \(.*"
                                          r"ChainSpec.*MLPSpec.*\), got 'x'$"):
        Sweep(points=["x"], depths=(2,))
    assert family_of(MLPSpec()).name == "mlp"


# ---------------------------------------------------------------- receptive-field fans
@pytest.mark.parametrize("shape, expected", [((7, 5), (7, 5)), ((3, 16, 32), (48, 96)),
                                             ((3, 3, 8, 4), (72, 36))])
def test_fans_count_the_receptive_field(shape, expected):
    assert fans(shape) == expected


@pytest.mark.parametrize("name, flax_init", [
    ("he_normal", jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")),
    ("lecun_normal", jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")),
    ("glorot_uniform", jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")),
    ("glorot_normal", jax.nn.initializers.variance_scaling(1.0, "fan_avg", "normal")),
])
def test_conv_kernel_variance_matches_flax_variance_scaling(name, flax_init):
    shape = (5, 16, 32)  # (k, C_in, C_out): fan_in 80, fan_out 160
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    ours = jax.vmap(lambda k: get_initializer(name).sample(k, shape))(keys)
    theirs = jax.vmap(lambda k: flax_init(k, shape))(keys)
    n = ours.size  # 163840 entries: relative standard error of a variance ≈ √(2/n) ≈ 0.35 %
    var_ours, var_theirs = float(jnp.var(ours)), float(jnp.var(theirs))
    assert abs(var_ours / var_theirs - 1) < 6 * np.sqrt(4 / n)
    # counting only C_in (fan_in 16) would make the fan_in families' variance 5x too large
    fan_in, fan_out = 80, 160
    factor = get_initializer(name).variance_factor(fan_in, fan_out)
    assert abs(var_ours / (factor / fan_in) - 1) < 6 * np.sqrt(2 / n)


@pytest.mark.parametrize("shape", [(3, 8, 16), (3, 2, 16)])
def test_orthogonal_conv_kernel_variance_factor(shape):
    # flax orthogonalizes the (C_in·∏k, C_out) matrix: its variance factor takes those fans
    w = jax.vmap(lambda k: get_initializer("orthogonal").sample(k, shape))(
        jax.random.split(jax.random.PRNGKey(1), 256))
    fan_in = fans(shape)[0]
    factor = get_initializer("orthogonal").variance_factor(fan_in, shape[-1])
    np.testing.assert_allclose(fan_in * float(jnp.mean(w**2)), factor, rtol=0.02)
