"""Valid calls of ``diagnose()`` that earlier versions refused or crashed on (issue 16):
``method=`` with the full variables, a typed PRNG key in the batch, 0-d integer arrays as
seeds, an unused empty leaf of a dict batch; and the user's exception kept as the cause of
the one-line error."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradstudy.errors import ConfigError
from gradstudy.tools import diagnose

X = jax.random.normal(jax.random.PRNGKey(0), (4, 5))


def _loss(y, b):
    return jnp.mean(y ** 2)


class EncDec(nn.Module):
    def setup(self):
        self.enc = nn.Dense(3)
        self.dec = nn.Dense(5)

    def encode(self, x):
        return nn.tanh(self.enc(x))

    def __call__(self, x):
        return self.dec(self.encode(x))


class Encoder(nn.Module):
    """``EncDec.encode`` alone: the reference for a ``method=EncDec.encode`` call."""

    def setup(self):
        self.enc = nn.Dense(3)

    def __call__(self, x):
        return nn.tanh(self.enc(x))


def test_method_with_full_variables_measures_the_method():
    full = EncDec().init(jax.random.PRNGKey(1), X)
    ds = diagnose(EncDec(), X, _loss, variables=full, method=EncDec.encode)
    # the same numbers as the encoder alone on its part of the variables
    part = {"params": {"enc": full["params"]["enc"]}}
    ref = diagnose(Encoder(), X, _loss, variables=part)
    np.testing.assert_allclose(ds.backprop_norm.values, ref.backprop_norm.values, rtol=1e-6)
    np.testing.assert_allclose(ds.loss.values, ref.loss.values, rtol=1e-6)
    # and with an init_fn of the whole model
    ds = diagnose(EncDec(), X, _loss, seeds=2, method=EncDec.encode,
                  init_fn=lambda k: EncDec().init(k, X))
    assert np.isfinite(ds.backprop_norm.values).all()


class Noisy(nn.Module):
    @nn.compact
    def __call__(self, b):
        return nn.Dense(2)(b["x"] + 0.01 * jax.random.normal(b["key"], b["x"].shape))


def test_typed_prng_key_in_the_batch():
    batch = {"x": jnp.ones((4, 5)).at[0, 0].set(jnp.nan), "key": jax.random.key(0)}
    ds = diagnose(Noisy(), batch, _loss, seeds=2)
    assert ds.attrs["batch_nonfinite"] == 1  # the NaN counted, the key skipped
    batch = {"x": jnp.ones((4, 5)), "key": jax.random.key(0)}
    ds = diagnose(Noisy(), batch, _loss, seeds=2)
    assert ds.attrs["batch_nonfinite"] == 0 and np.isfinite(ds.backprop_norm.values).all()


class Raises(nn.Module):
    @nn.compact
    def __call__(self, x):
        raise ValueError("boom in the model")


def test_the_users_exception_is_the_cause():
    with pytest.raises(ConfigError, match="^module: .*ValueError: boom") as info:
        diagnose(Raises(), X, _loss, seeds=1)
    assert isinstance(info.value.__cause__, ValueError)

    def bad_loss(y, b):
        raise KeyError("t")
    with pytest.raises(ConfigError, match="^loss_fn: calling the loss raised KeyError") as info:
        diagnose(nn.Dense(2), X, bad_loss, seeds=1)
    assert isinstance(info.value.__cause__, KeyError)

    def bad_args(b):
        raise IndexError("no x")
    with pytest.raises(ConfigError, match="^call_args: calling it") as info:
        diagnose(nn.Dense(2), {"x": X}, _loss, seeds=1, call_args=bad_args)
    assert isinstance(info.value.__cause__, IndexError)


class DictModel(nn.Module):
    @nn.compact
    def __call__(self, b):
        return nn.Dense(2)(b["x"]) * b["missing"]


def test_call_args_hint_only_when_the_dict_is_used_as_an_array():
    # a dict model that fails for another reason: no call_args hint
    with pytest.raises(ConfigError) as info:
        diagnose(DictModel(), {"x": X}, _loss, seeds=1)
    assert "KeyError" in str(info.value) and "call_args" not in str(info.value)
    # the dict given to an array model: the hint
    with pytest.raises(ConfigError, match="call_args option"):
        diagnose(nn.Dense(2), {"x": X, "y": X}, _loss, seeds=1)


def test_zero_d_integer_arrays_as_seeds():
    ref = diagnose(nn.Dense(2), X, _loss, seeds=3, base_seed=5)
    for seeds, base in [(jnp.int32(3), jnp.int32(5)), (np.int64(3), np.array(5))]:
        ds = diagnose(nn.Dense(2), X, _loss, seeds=seeds, base_seed=base)
        np.testing.assert_array_equal(ds.backprop_norm.values, ref.backprop_norm.values)
    with pytest.raises(ConfigError, match=r"^base_seed: must be an integer in \[0, "):
        diagnose(nn.Dense(2), X, _loss, seeds=1, base_seed=jnp.int32(-1))
    with pytest.raises(ConfigError, match=r"^base_seed: must be an integer"):
        diagnose(nn.Dense(2), X, _loss, seeds=1, base_seed=jnp.float32(1))


def test_unused_empty_leaf_of_a_dict_batch():
    batch = {"x": X, "mask": jnp.zeros((0,))}
    ds = diagnose(nn.Dense(2), batch, _loss, seeds=2, call_args=lambda b: (b["x"],))
    ref = diagnose(nn.Dense(2), X, _loss, seeds=2)
    np.testing.assert_array_equal(ds.backprop_norm.values, ref.backprop_norm.values)
    with pytest.raises(ConfigError, match=r"^batch: an array of the batch has no entries"):
        diagnose(nn.Dense(2), batch, _loss, seeds=2, call_args=lambda b: (b["mask"],))
