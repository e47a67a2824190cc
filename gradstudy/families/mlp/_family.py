"""The fully connected family: ``MLPSpec`` networks in sweeps (:mod:`gradstudy.families`).

Points that differ only in their gains (σ_w, σ_b), or only in the scale of a Gaussian or
uniform init family (Gaussian, Xavier, He, LeCun, standard uniform), share a program: their
``static_key()`` is equal and the per-layer kernel scales and σ_b enter traced.  One network
is measured by the nested-depth fast path :func:`gradstudy.families.mlp.gradient_norms` (all
depths from one forward pass), whose per-network dims are :data:`gradstudy.families.mlp.MEASURED`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy._seeds import seed_keys
from gradstudy.families._base import ModelFamily, TrainHooks
from gradstudy.families.mlp._memory import network_bytes, network_output_bytes, param_count
from gradstudy.families.mlp._model import MLP, apply_gains, init_params
from gradstudy.families.mlp._probes import MEASURED, gradient_norms, layer_jacobian_singular_values
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import activation_name
from gradstudy.nn._fingerprint import spec_fingerprint, why_spec_unfingerprintable


def sample_network(spec: MLPSpec, key: jax.Array, batch: int, input_std: float = 1.0,
                   kernel_scales=None, sigma_b=None):
    """Weights, inputs x ~ N(0, input_std²) and targets ~ N(0, 1) drawn from one ``key``.

    Weights are drawn from ``spec.static_key()`` and scaled by ``kernel_scales`` (default
    ``spec.kernel_scales()``) and σ_b (default the spec's); a sweep passes them, traced.
    """
    k_init, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    kernel_scales = spec.kernel_scales() if kernel_scales is None else kernel_scales
    sigma_b = spec.sigma_b if sigma_b is None else sigma_b
    params = apply_gains(init_params(spec.static_key(), k_init), kernel_scales, sigma_b)
    x = input_std * jax.random.normal(k_x, (batch, spec.input_dim), dtype)
    targets = jax.random.normal(k_t, (batch, spec.out_dim), dtype)
    return params, x, targets


def init_and_probe(spec: MLPSpec, depths: tuple[int, ...], batch: int, input_std: float,
                   key: jax.Array, kernel_scales=None, sigma_b=None,
                   keep_backprop: bool = False, loss: str = "mse") -> dict:
    """One network: sample weights and data from ``key``, then ``gradient_norms``."""
    params, x, targets = sample_network(spec, key, batch, input_std, kernel_scales, sigma_b)
    return gradient_norms(spec, params, x, targets, depths, keep_backprop=keep_backprop,
                          loss=loss)


def measured_jacobian_mean_singular_values(spec: MLPSpec, seeds: int, batch: int,
                                  base_seed: int = 0) -> np.ndarray:
    """Mean singular value of the layer Jacobians of each of ``seeds`` networks.

    Glorot & Bengio's (2010) statistic: per network (weights and inputs drawn as in a
    sweep, by :func:`sample_network` from ``seed_keys(base_seed, seeds)``), the mean over
    examples, layers 2..depth and singular values of ∂h_l/∂h_(l−1)
    (:func:`gradstudy.families.mlp.layer_jacobian_singular_values`).  One jitted program, vmapped
    over the seeds.

    Args:
        spec: the network (its own gains and σ_b); depth >= 2, no batchnorm.
        seeds: number of networks.
        batch: examples per network, x ~ N(0, 1).
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).

    Returns:
        (seeds,) float64 mean singular values.
    """
    @functools.partial(jax.vmap, in_axes=0)
    def per_seed(key):
        params, x, _ = sample_network(spec, key, batch)
        return layer_jacobian_singular_values(spec, params, x).mean()

    return np.asarray(jax.jit(per_seed)(seed_keys(base_seed, seeds)), float)


def _measure(spec, depths, batch, input_std, key, scalars, keep_backprop, loss):
    kernel_scales, sigma_b = scalars
    return init_and_probe(spec, depths, batch, input_std, key, kernel_scales, sigma_b,
                          keep_backprop, loss)


def _memory(spec, depths, batch, keep_backprop):
    what = (f"width {spec.width}, depth {max(depths)}, batch {batch}, {spec.dtype}"
            + (", raw back-propagated signals kept" if keep_backprop else ""))
    return (network_bytes(spec, depths, batch, keep_backprop),
            network_output_bytes(spec, depths, batch, keep_backprop), what)


def _coords(points) -> dict:
    described = [p.describe() for p in points]
    return {
        "activation": [d["activation"] for d in described],
        "init": [d["init"] for d in described],
        "sigma_w": [float(p.sigma_w) for p in points],
        "sigma_b": [float(p.sigma_b) for p in points],
        "sigma_w2": [float(p.sigma_w2()) for p in points],
        "width": [p.width for p in points],
        "norm": [p.norm for p in points],
        "residual_alpha": [np.nan if p.residual_alpha is None else p.residual_alpha
                           for p in points],
    }


def _label(spec) -> str:

    return (f"{activation_name(spec.activation).split('#')[0]}, width {spec.width}, "
            f"depth {spec.depth}, {spec.dtype}")


# ------------------------------------------------------------------------- training
def _train_init(spec, key, scalars):
    kernel_scales, sigma_b = scalars
    return apply_gains(init_params(spec, key), kernel_scales, sigma_b)


def _train_apply(spec):
    model = MLP(spec)
    return lambda params, x: model.apply({"params": params}, x)[0]


LAYER_LEAVES = ("input_layer/dense/kernel", "hidden/dense/kernel", "readout/dense/kernel")


def _check_data(spec, data) -> str | None:
    if data.x.ndim != 2:
        return (f"is an MLP: it needs x of shape (examples, features), got "
                f"{tuple(data.x.shape)}")
    if spec.input_dim != data.features or spec.out_dim != data.outputs:
        return (f"has in_dim {spec.input_dim}, out_dim {spec.out_dim}; the data need "
                f"{data.features} and {data.outputs}")
    return None


def _activation_bytes(spec, examples: int) -> int:
    return 4 * examples * max(spec.width, spec.input_dim) * (spec.depth + 2)


def _train_coords(points) -> dict:
    described = [p.describe() for p in points]
    return {"activation": [d["activation"] for d in described],
            "init": [d["init"] for d in described],
            "sigma_w": [float(p.sigma_w) for p in points],
            "norm": [p.norm for p in points],
            "depth": [p.depth for p in points]}


def _param_count(spec) -> int:

    return param_count(spec, spec.depth)


MLP_TRAIN_HOOKS = TrainHooks(
    init=_train_init,
    apply=_train_apply,
    stacked=lambda name, leaf=None: name.startswith("hidden/"),
    is_output=lambda name: name.startswith("readout/"),
    layer_leaves=lambda names: [n for n in LAYER_LEAVES if n in names],
    layers=lambda spec: spec.depth + 1,
    param_count=_param_count,
    activation_bytes=_activation_bytes,
    check_data=_check_data,
    coords=_train_coords,
)


MLP_FAMILY = ModelFamily(
    name="mlp",
    spec_type=MLPSpec,
    at_depth=lambda spec, depth: spec.replace(depth=depth),
    program_key=MLPSpec.static_key,
    scalars=lambda spec: (spec.kernel_scales(), spec.sigma_b),
    measure=_measure,
    measured=MEASURED,
    memory=_memory,
    coords=_coords,
    fingerprint=spec_fingerprint,
    why_unfingerprintable=why_spec_unfingerprintable,
    label=_label,
    train=MLP_TRAIN_HOOKS,
)
