"""Bad arguments of ``diagnose()`` are one-line ConfigErrors naming the argument (and, for
the user's code, the step that failed), never a traceback from inside JAX or Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from gradstudy.errors import ConfigError
from gradstudy.tools import diagnose


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(jnp.tanh(nn.Dense(8)(x)))


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.a = nnx.Linear(3, 8, rngs=rngs)
        self.b = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        return self.b(jnp.tanh(self.a(x)))


X = jnp.ones((4, 3))


def _loss(y, b):
    return jnp.mean(y ** 2)


OTHER = nn.Dense(5).init(jax.random.PRNGKey(0), jnp.ones((2, 7)))  # another model's
WIDER = Net().init(jax.random.PRNGKey(0), jnp.ones((2, 5)))  # same tree, other shapes

CASES = {
    "non_module": (dict(module=3), r"^module: must be a flax.linen.Module"),
    "linen_class": (dict(module=Net), r"^module: .*a Linen class: pass an instance"),
    "loss_not_callable": (dict(loss_fn="mse"), r"^loss_fn: must be callable"),
    "batch_none": (dict(batch=None), r"^batch: must be an array or a pytree"),
    "batch_empty_dict": (dict(batch={}), r"^batch: must be an array"),
    "batch_no_examples": (dict(batch=jnp.ones((0, 3))), r"^batch: an array of the batch has "
                          r"no entries \(shape \(0, 3\)\)"),
    "variables_other_model": (dict(variables=OTHER),
                              r"^variables: the variables do not match the module on this "
                              r"batch \(the module's params/Dense_\d/bias is missing"),
    "variables_other_shapes": (dict(variables=WIDER),
                               r"^variables: the variables do not match the module on this "
                               r"batch \(params/Dense_1/kernel has shape \(5, 8\), "
                               r"module.init on this batch gives \(3, 8\)"),
    "variables_not_a_dict": (dict(variables=jnp.ones(3)), r"^variables: must be Linen "
                             r"variables, a dict \{'params'"),
    "base_seed_float": (dict(base_seed=1.5), r"^base_seed: must be an integer in "
                        r"\[0, 4294967295\], got 1.5$"),
    "base_seed_negative": (dict(base_seed=-1), r"^base_seed: must be an integer"),
    "init_fn_returns_array": (dict(init_fn=lambda key: jnp.ones(3)),
                              r"^init_fn: must return Linen variables, a dict .* got an "
                              r"array$"),
    "init_fn_other_model": (dict(init_fn=lambda key: OTHER), r"^init_fn: the variables do "
                            r"not match the module"),
    "init_fn_raises": (dict(init_fn=lambda key: 1 / 0), r"^init_fn: initialising the model "
                       r"with init_fn raised ZeroDivisionError"),
    "init_fn_not_callable": (dict(init_fn=3), r"^init_fn: must be None or a callable"),
    "loss_tuple": (dict(loss_fn=lambda y, b: (jnp.mean(y), 0.0)),
                   r"^loss_fn: must return a scalar \(a 0-d float array\), got tuple"),
    "loss_int": (dict(loss_fn=lambda y, b: jnp.sum(y > 0)),
                 r"^loss_fn: must return a floating scalar"),
    "loss_raises": (dict(loss_fn=lambda y, b: b["y"]),
                    r"^loss_fn: calling the loss raised TypeError"),
    "call_args_not_callable": (dict(call_args=3), r"^call_args: must be None or a callable"),
    "call_args_not_tuple": (dict(call_args=lambda b: b), r"^call_args: must return a tuple"),
    "wrong_feature_count": (dict(batch=jnp.ones((4, 7)), variables=Net().init(
        jax.random.PRNGKey(0), X)), r"^variables: .* has shape \(3, 8\), module.init on "
                                    r"this batch gives \(7, 8\)"),
    "model_call_fails": (dict(kwargs_train=True), r"^module: initialising the model "
                         r"\(module.init\) raised TypeError: .*train"),
    "dict_batch_without_call_args": (dict(batch={"x": X, "y": X}),
                                     r"^module: initialising the model \(module.init\) "
                                     r"raised \w+Error: .* choose the call's arguments "
                                     r"with the call_args option"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_linen_arguments_are_one_line(case):
    kwargs, match = CASES[case]
    args = {"module": Net(), "batch": X, "loss_fn": _loss, "seeds": 2, **kwargs}
    if "kwargs_train" in args:  # a keyword the model's call does not take
        args["train"] = args.pop("kwargs_train")
    with pytest.raises(ConfigError, match=match) as info:
        diagnose(args.pop("module"), args.pop("batch"), args.pop("loss_fn"), **args)
    assert "\n" not in str(info.value)


NNX_CASES = {
    "batch_none": (dict(batch=None), r"^batch: must be an array"),
    "loss_tuple": (dict(loss_fn=lambda y, b: (jnp.mean(y), 0.0)),
                   r"^loss_fn: must return a scalar \(a 0-d float array\), got tuple"),
    "base_seed_float": (dict(base_seed=2.5), r"^base_seed: must be an integer"),
    "dict_batch": (dict(batch={"x": X}), r"^module: calling the model on the batch raised "
                   r".*call_args option"),
    "factory_returns_array": (dict(module=lambda rngs: jnp.ones(3)),
                              r"^module: a callable model must be a factory"),
}


@pytest.mark.parametrize("case", list(NNX_CASES))
@pytest.mark.parametrize("form", ["factory", "instance"])
def test_bad_nnx_arguments_are_one_line(case, form):
    kwargs, match = NNX_CASES[case]
    model = NNXNet if form == "factory" else NNXNet(nnx.Rngs(0))
    if form == "instance" and "module" in kwargs:
        pytest.skip("a factory case")
    args = {"module": model, "batch": X, "loss_fn": _loss, **kwargs}
    if form == "factory":
        args["seeds"] = 2
    with pytest.raises(ConfigError, match=match) as info:
        diagnose(args.pop("module"), args.pop("batch"), args.pop("loss_fn"), **args)
    assert "\n" not in str(info.value)


def test_good_variables_and_init_fn_still_run():
    variables = Net().init(jax.random.PRNGKey(1), X)
    ds = diagnose(Net(), X, _loss, variables=variables)
    assert ds.sizes["seed"] == 1
    ds = diagnose(Net(), X, _loss, init_fn=lambda key: Net().init(key, X), seeds=3,
                  base_seed=2**32 - 1)
    assert ds.sizes["seed"] == 3
