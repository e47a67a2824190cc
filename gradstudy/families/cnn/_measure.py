"""A :class:`CNNSpec` network in a sweep: what is measured, and its memory.

A sweep measures one network per (point, seed) with the probe core
(:func:`gradstudy.tools.probe`): ‖∂L/∂h_l‖ at every layer's output h_l (l = 1..depth)
and ‖∂L/∂W_l‖ of every conv kernel, on inputs x ~ N(0, input_std²) and targets ~ N(0, 1).
Per-point coordinates of sweep and training Datasets (:func:`coords`,
:func:`train_coords`) and the memory estimate of one measurement (:func:`network_bytes`,
fitted to XLA) are here too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import status
from gradstudy._validate import short_repr
from gradstudy.errors import ConfigError
from gradstudy.families.cnn._model import ConvNet, param_count, sample_params
from gradstudy.families.cnn._spec import CNNSpec
from gradstudy.nn._activations import activation_name
from gradstudy.nn._losses import LOSS_FUNCTIONS
from gradstudy.tools._probe import probe

MEASURED = {
    "backprop_norm": (("layer",), "L2 norm of dL/dh_l over batch, positions and channels "
                                  "(h_l: output of conv layer l)"),
    "weight_grad_norm": (("layer",), "Frobenius norm of dL/dW_l of conv kernel l"),
    "output_q": (("layer",), "second moment of h_l"),
    "loss": ((), "loss at initialization"),
    "readout_grad_norm": ((), "Frobenius norm of dL/dW of the readout kernel"),
}


def sample_network(spec: CNNSpec, key: jax.Array, batch: int, input_std: float = 1.0,
                   scalars=None):
    """Parameters, inputs x ~ N(0, input_std²) of shape (batch, length, in_channels) and
    targets ~ N(0, 1) of shape (batch, out_dim), all drawn from one ``key``."""
    k_init, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    params = sample_params(spec, k_init, scalars)
    x = input_std * jax.random.normal(k_x, (batch, spec.length, spec.in_channels), dtype)
    targets = jax.random.normal(k_t, (batch, spec.out_dim), dtype)
    return params, x, targets


def _check_depths(spec: CNNSpec, depths) -> None:
    depths = tuple(depths)
    if len(depths) != 1 or depths[0] != spec.depth:
        raise ConfigError(f"depths: the cnn family measures one depth per sweep "
                          f"({spec.depth} here), got {short_repr(depths)}; run one sweep "
                          "per depth")


def measure_network(spec: CNNSpec, params, x, targets, loss: str = "mse") -> dict:
    """Per-layer gradient norms of one network (probe core; jit- and vmap-safe).

    Returns ``backprop_norm`` (depth,) ‖∂L/∂h_l‖, ``weight_grad_norm`` (depth,) ‖∂L/∂W_l‖
    of the conv kernels (layer 1 = input conv), ``output_q`` (depth,), ``loss`` and
    ``readout_grad_norm``, each with a ``<name>_status`` (:mod:`gradstudy.status`); the
    values of a network whose forward pass is not finite are NaN.
    """

    loss_fn = LOSS_FUNCTIONS[loss]
    got = probe(ConvNet(spec), {"params": params}, (x, targets),
                lambda out, batch: loss_fn(out, batch[1]), call_args=lambda batch: (batch[0],))
    mods, grads = got["modules"], got["params"]

    def per_layer(first, rest):
        return jnp.concatenate([jnp.reshape(first, (1,)), jnp.reshape(rest, (-1,))])

    layer_stats = {s: per_layer(mods["input_layer"][s], mods["hidden"][s])
                   for s in ("backprop_norm", "out_q", "out_mean")}
    out = {
        "backprop_norm": layer_stats["backprop_norm"],
        "weight_grad_norm": per_layer(grads["input_layer/conv/kernel"],
                                      grads["hidden/conv/kernel"]),
        "output_q": layer_stats["out_q"],
        "loss": got["loss"],
        "readout_grad_norm": grads["readout/dense/kernel"],
    }
    # the forward pass is finite if every layer's output is (a tanh would hide an
    # overflowed h_l from the loss) and the loss is
    finite = jnp.all(jnp.isfinite(layer_stats["out_mean"])) & jnp.isfinite(got["loss"])
    result = {}
    for name, value in out.items():
        result[name] = value if name == "loss" else status.mask_forward(value, finite)
        result[name + "_status"] = status.classify(value, finite)
    return result


def _measure(spec, depths, batch, input_std, key, scalars, keep_backprop, loss):
    _check_depths(spec, depths)
    if keep_backprop:
        raise ConfigError("keep_backprop: not available for the cnn family")
    params, x, targets = sample_network(spec, key, batch, input_std, scalars)
    return measure_network(spec, params, x, targets, loss)


# words per unit of every layer that a measurement keeps, fitted to XLA (network_bytes)
_KEPT_PER_UNIT = {"plain": 3.0, "residual": 3.0, "batchnorm": 5.5}


def network_bytes(spec: CNNSpec, batch: int) -> int:
    """Estimated working memory of one network's measurement (bytes).

    Fitted to XLA's ``compiled.memory_analysis()`` on CPU (float32; depth 6-30, 8-128
    channels, batch 8-512, chunks of 1 and 4 networks, all three blocks): XLA kept
    ≈ 2.3 (plain, residual) and ≈ 4.4 (batchnorm) words per unit of every layer besides
    ≈ 3-4 copies of the parameters; the estimate errs high, by at most ≈ 30 %.
    """
    itemsize = np.dtype(spec.dtype).itemsize
    activations = batch * spec.length * spec.channels * spec.depth
    # Conv1D's shifted views of the input: ≈ 2.5 more words per tap and unit (measured
    # against memory_analysis after the switch from nn.Conv)
    kept = _KEPT_PER_UNIT[spec.block] + 2.5 * spec.kernel_size + 2
    words = 4 * param_count(spec) + kept * activations \
        + batch * spec.length * spec.in_channels
    return int(itemsize * words) + output_bytes(spec)


def output_bytes(spec: CNNSpec) -> int:
    """Bytes of one network's recorded results (values and status codes)."""
    return (np.dtype(spec.dtype).itemsize + 1) * (3 * spec.depth + 2)


def _memory(spec, depths, batch, keep_backprop):
    _check_depths(spec, depths)
    if keep_backprop:
        raise ConfigError("keep_backprop: not available for the cnn family")
    return network_bytes(spec, batch), output_bytes(spec), _label_of(spec) + f", batch {batch}"


def coords(points) -> dict:
    """Per-point coordinates of sweep Datasets.

    No per-point depth: a sweep builds every point at its own ``depths`` (its ``depth``
    coordinate); ``residual_alpha`` is the field (NaN where None: for "residual" blocks
    the default 1/√(depth − 1) at the built depth; other blocks have no branch).
    """
    described = [p.describe() for p in points]
    return {
        "block": [p.block for p in points],
        "init": [d["init"] for d in described],
        "activation": [d["activation"] for d in described],
        "sigma_w": [float(p.sigma_w) for p in points],
        "sigma_w2": [float(p.sigma_w2()) for p in points],
        "channels": [p.channels for p in points],
        "kernel_size": [p.kernel_size for p in points],
        "padding": [p.padding for p in points],
        "residual_alpha": [np.nan if p.residual_alpha is None else float(p.residual_alpha)
                           for p in points],
    }


def train_coords(points) -> dict:
    """Per-point coordinates of training Datasets: :func:`coords`, the depth, and the
    branch scale α in use (``alpha``: NaN for blocks without a residual branch)."""
    return {**coords(points), "depth": [p.depth for p in points],
            "alpha": [p.alpha for p in points]}


def _label_of(spec) -> str:

    return (f"{activation_name(spec.activation).split('#')[0]} {spec.block} cnn, "
            f"{spec.channels} channels, kernel {spec.kernel_size}, depth {spec.depth}, "
            f"{spec.dtype}")
