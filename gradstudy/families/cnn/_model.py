"""The 1-D convolutional family: ``CNNSpec`` networks in sweeps and in training.

A ``ConvNet`` maps signals ``(batch, length[, in_channels])`` (MNIST-1D: length 40, one
channel) through ``depth`` convolutional layers (:class:`Conv1D`; ``padding`` "same", zeros
beyond the ends, or "circular"): an input layer
(in_channels → channels), then ``depth − 1`` identical layers stacked with ``nn.scan``
(their parameters carry a leading layer axis, ``params["hidden"]``), then a global average
pool over the length and a dense readout to ``out_dim`` logits.  Three kinds of layer
(``block``):

* "plain": h_l = φ(conv_l(h_(l−1)));
* "batchnorm": h_l = φ(BN(conv_l(h_(l−1)))), BN with the batch statistics over
  (batch, length) per channel (:class:`gradstudy.models.Normalize`; no
  running averages; the conv has no bias, BN's offset plays its part);
* "residual" (pre-activation, He et al. 2016b): h_1 = conv_1(x),
  h_l = h_(l−1) + α·conv_l(φ(h_(l−1))), readout of φ(h_depth).  The branch scale
  α defaults to 1/√(depth − 1), one over the square root of the number of branches: with
  a critical branch (He init + ReLU: Var conv(φ(h)) = Var h) the forward and backward
  variances grow by (1 + α²) per block, so over the stack by (1 + 1/(depth−1))^(depth−1)
  < e whatever the depth, instead of 2^(depth−1) with α = 1.  This is the scaling of
  De & Smith (2020, SkipInit: α ≤ 1/√depth trains unnormalised ResNets) and of Hanin &
  Rolnick (2018, Σ_l α_l² bounded); ``residual_alpha`` sets another α.

Gains follow :class:`gradstudy.config.MLPSpec`: parameters are sampled at unit gain from
``static_key()`` and the kernels scaled by ``kernel_scales()`` (σ_w times, for a scaled
Gaussian/uniform family such as He, its per-layer std at the receptive-field fans
fan_in = C_in·k), so a grid over σ_w, or over He/LeCun/Glorot, is one compiled program.
A conv kernel ``(k, C_in, C_out)`` drawn by ``he_normal`` has entries N(0, 2/(C_in·k)) (the
critical ReLU init); ``delta_orthogonal`` (Xiao et al. 2018) is an orthogonal centre tap
times σ_w: an isometry for a linear net at σ_w = 1, critical for ReLU at σ_w = √2
(``sigma_w2()`` is the mean-field σ_w² of a hidden layer: 2σ_w² for He, σ_w² for
delta-orthogonal).  Biases start at 0; BN's scale at 1 and offset at 0.

A sweep measures one network per (point, seed) with the probe core
(:func:`gradstudy.probe.probe`): ‖∂L/∂h_l‖ at every layer's output h_l (l = 1..depth)
and ‖∂L/∂W_l‖ of every conv kernel, on inputs x ~ N(0, input_std²) and targets ~ N(0, 1).

References:
    Xiao et al. (2018), Dynamical isometry and a mean field theory of CNNs.
    He et al. (2016b), Identity mappings in deep residual networks.
    De & Smith (2020), Batch normalization biases residual blocks towards the identity
    function in deep networks (SkipInit).
    Hanin & Rolnick (2018), How to start training: the effect of initialization and
    architecture.
    Greydanus (2020), Scaling down deep learning (MNIST-1D).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import status
from gradstudy._validate import (
    MAX_UNITS,
    check_choice,
    check_dtype,
    check_int,
    check_name_or_callable,
    check_real,
    require_dtype,
    short_repr,
)
from gradstudy.errors import ConfigError
from gradstudy.families._base import ModelFamily, TrainHooks
from gradstudy.nn._activations import activation_name, get_activation
from gradstudy.nn._fingerprint import (
    activation_fingerprint,
    fingerprint_label,
    initializer_fingerprint,
    spec_fingerprint,
    why_spec_unfingerprintable,
)
from gradstudy.nn._initializers import UNIT_SAMPLERS, get_initializer
from gradstudy.nn._losses import LOSS_FUNCTIONS
from gradstudy.nn._normalize import Normalize
from gradstudy.tools._probe import probe

BLOCKS = ("plain", "batchnorm", "residual")
PADDINGS = ("same", "circular")
LAYER_KINDS = ("input_layer", "hidden", "readout")  # kernel_scales order


@dataclass(frozen=True)
class CNNSpec:
    """A 1-D convolutional network (see the module docstring for the blocks).

    Attributes:
        depth: conv layers (input conv + ``depth − 1`` stacked ones), ≥ 2.
        channels: channels of every conv layer's output.
        kernel_size: taps of every conv kernel (odd, so that the padding is centred).
        in_channels: input channels (a ``(batch, length)`` input has 1).
        length: signal length (MNIST-1D: 40).
        out_dim: readout dimension (classes).
        activation: a name from ``gradstudy.activations`` or a callable ``jnp -> jnp``.
        block: "plain", "batchnorm" or "residual".
        init: a name from ``gradstudy.initializers`` (default "he_normal"; e.g.
            "delta_orthogonal") or a unit-gain callable ``(key, shape, dtype) -> array``;
            it draws every kernel (convs ``(k, C_in, C_out)`` and the readout).
        sigma_w: kernel gain (traced in sweeps and training), multiplying the init.
        residual_alpha: branch scale α of "residual" blocks; None: 1/√(depth − 1).
        padding: "same" (zeros beyond the ends: the edge positions see fewer taps, so each
            layer's variance is ≈ (1 − (k−1)/(4·length))× smaller than mean field's) or
            "circular" (periodic signals: every position sees k taps, as the mean-field
            theory of CNNs assumes; Xiao et al. 2018).
        dtype: "float32" or "float64" (float64 needs ``jax_enable_x64``).
    """

    depth: int = 16
    channels: int = 32
    kernel_size: int = 5
    in_channels: int = 1
    length: int = 40
    out_dim: int = 10
    activation: Any = "relu"
    block: str = "plain"
    init: Any = "he_normal"
    sigma_w: float = 1.0
    residual_alpha: float | None = None
    padding: str = "same"
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "depth", check_int("depth", self.depth, 2))
        for name in ("channels", "in_channels", "length", "out_dim"):
            object.__setattr__(self, name, check_int(name, getattr(self, name)))
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) \
                or not 1 <= k <= MAX_UNITS or k % 2 == 0:
            raise ConfigError(f"kernel_size: must be an odd integer in [1, {MAX_UNITS}], "
                              f"got {short_repr(k)}")
        object.__setattr__(self, "kernel_size", int(k))
        check_name_or_callable("activation", self.activation, get_activation)
        check_choice("block", self.block, BLOCKS)
        check_choice("padding", self.padding, PADDINGS)
        check_name_or_callable("init", self.init, get_initializer)
        object.__setattr__(self, "sigma_w", check_real("sigma_w", self.sigma_w))
        if self.residual_alpha is not None:
            if self.block != "residual":
                raise ConfigError(f"residual_alpha: only for block='residual' (None for "
                                  f"{self.block!r}), got {short_repr(self.residual_alpha)}")
            object.__setattr__(self, "residual_alpha",
                               check_real("residual_alpha", self.residual_alpha))
        object.__setattr__(self, "dtype", check_dtype(self.dtype))

    @property
    def alpha(self) -> float:
        """The residual branch scale (NaN for blocks without a residual branch)."""
        if self.block != "residual":
            return math.nan
        if self.residual_alpha is not None:
            return float(self.residual_alpha)
        return 1.0 / math.sqrt(self.depth - 1)

    def replace(self, **changes) -> "CNNSpec":
        return dataclasses.replace(self, **changes)

    def kernel_fans(self) -> tuple[tuple[int, int], ...]:
        """(fan_in, fan_out) of the input conv, a stacked conv and the readout kernel
        (receptive-field fans, :func:`gradstudy.initializers.fans`)."""
        k, c = self.kernel_size, self.channels
        return ((k * self.in_channels, k * c), (k * c, k * c), (c, self.out_dim))

    def static_key(self) -> "CNNSpec":
        """The spec a compiled program is built from: σ_w = 1, and a scaled family (He,
        LeCun, Glorot, Gaussian, standard uniform) replaced by its unit-variance sampler,
        so that specs differing only there share one program (:meth:`kernel_scales`)."""
        family = get_initializer(self.init)
        init = UNIT_SAMPLERS[family.unit] if family.unit else self.init
        return dataclasses.replace(self, init=init, sigma_w=1.0)

    def kernel_scales(self) -> tuple[float, float, float]:
        """Kernel multipliers (input conv, stacked convs, readout) for parameters of
        ``static_key()``."""
        family = get_initializer(self.init)
        if family.unit is None:
            return (float(self.sigma_w),) * 3
        return tuple(float(self.sigma_w * family.std(fi, fo)) for fi, fo in self.kernel_fans())

    def sigma_w2(self) -> float:
        """Mean-field σ_w² = fan_in · Var W of a stacked (C x C, k taps) conv kernel."""
        fan_in, fan_out = self.kernel_fans()[1]
        return self.sigma_w**2 * get_initializer(self.init).variance_factor(fan_in, fan_out)

    def describe(self) -> dict:
        """JSON-able description (functions by label and fingerprint, as
        :meth:`gradstudy.config.MLPSpec.describe`)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = "cnn"
        d["activation_fingerprint"] = activation_fingerprint(self.activation)
        d["init_fingerprint"] = initializer_fingerprint(self.init)
        d["activation"] = fingerprint_label(self.activation, d["activation_fingerprint"])
        d["init"] = fingerprint_label(self.init, d["init_fingerprint"])
        return d


# ------------------------------------------------------------------------------ model
class Conv1D(nn.Module):
    """``nn.Conv`` with one spatial axis, 'SAME' or circular padding, as a sum over the
    taps of shifted matrix products: y_l = Σ_j x_(l+j−p) W_j (+ b), p = (k − 1)/2.

    The same parameters (``kernel`` (k, C_in, C_out), ``bias``) and numbers as ``nn.Conv``
    (tested), but under ``vmap`` (many networks trained at once) XLA's CPU backend runs
    batched matmuls where a vmapped convolution becomes a grouped one: 4.3x faster
    (measured, 8 networks, 50 layers, 16 channels, k = 3, fwd+bwd: 184 vs 789 ms).
    """

    features: int
    kernel_size: int
    padding: str = "same"
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        k, length = self.kernel_size, x.shape[-2]
        kernel = self.param("kernel", self.kernel_init, (k, x.shape[-1], self.features),
                            self.dtype)
        p = (k - 1) // 2
        pad = [(0, 0)] * (x.ndim - 2) + [(p, p), (0, 0)]
        xp = jnp.pad(x, pad, mode="wrap" if self.padding == "circular" else "constant")
        y = sum(jnp.einsum("...lc,cd->...ld", xp[..., j:j + length, :], kernel[j])
                for j in range(k))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), self.dtype)
        return y


def _conv(spec: CNNSpec, name: str) -> Conv1D:
    return Conv1D(spec.channels, spec.kernel_size, padding=spec.padding,
                  use_bias=spec.block != "batchnorm",
                  kernel_init=get_initializer(spec.init).sample,
                  dtype=jnp.dtype(spec.dtype), name=name)


class ConvLayer(nn.Module):
    """One layer, ``(h_(l−1), unused) -> (h_l, None)`` (an ``nn.scan`` body); ``first``:
    the input layer (for "residual": h_1 = conv_1(x), no skip)."""

    spec: CNNSpec
    first: bool = False

    @nn.compact
    def __call__(self, h, _=None):
        spec = self.spec
        phi = get_activation(spec.activation)
        conv = _conv(spec, "conv")
        if spec.block == "residual":
            h = conv(h) if self.first else h + spec.alpha * conv(phi(h))
        else:
            z = conv(h)
            if spec.block == "batchnorm":
                z = Normalize("batchnorm", jnp.dtype(spec.dtype), name="norm")(z)
            h = phi(z)
        return h, None


class Readout(nn.Module):
    """y = W_out · mean over the length of h_depth (of φ(h_depth) for "residual") + b."""

    spec: CNNSpec

    @nn.compact
    def __call__(self, h):
        spec = self.spec
        if spec.block == "residual":
            h = get_activation(spec.activation)(h)
        dtype = jnp.dtype(spec.dtype)
        return nn.Dense(spec.out_dim, kernel_init=get_initializer(spec.init).sample,
                        bias_init=nn.initializers.zeros, dtype=dtype, param_dtype=dtype,
                        name="dense")(jnp.mean(h, axis=-2))


def conv_stack(spec: CNNSpec, length: int, name: str | None = None):
    """``length`` ConvLayers scanned with independent parameters (leading layer axis)."""
    scanned = nn.scan(ConvLayer, variable_axes={"params": 0}, split_rngs={"params": True},
                      in_axes=0, out_axes=0, length=length)
    return scanned(spec, name=name)


class ConvNet(nn.Module):
    """The whole network; ``__call__(x) -> logits (batch, out_dim)`` for x of shape
    ``(batch, length)`` or ``(batch, length, in_channels)``."""

    spec: CNNSpec

    def setup(self):
        self.input_layer = ConvLayer(self.spec, first=True)
        self.hidden = conv_stack(self.spec, self.spec.depth - 1)
        self.readout = Readout(self.spec)

    def __call__(self, x):
        require_dtype(self.spec)
        if x.ndim == 2:
            x = x[..., None]
        h, _ = self.input_layer(x, None)
        h, _ = self.hidden(h, None)
        return self.readout(h)


def init_params(spec: CNNSpec, key: jax.Array) -> dict:
    """Unit-gain parameters of ``ConvNet(spec)`` (``spec.init`` at σ_w = 1)."""
    require_dtype(spec)
    x = jnp.zeros((1, spec.length, spec.in_channels), jnp.dtype(spec.dtype))
    return ConvNet(spec).init(key, x)["params"]


def apply_gains(params: dict, kernel_scale) -> dict:
    """Kernels times ``kernel_scale`` (one number, or three: input conv, stacked convs,
    readout; may be traced).  Biases (0) and BN scale/offset keep their init."""
    scales = jnp.broadcast_to(jnp.asarray(kernel_scale), (3,))

    def scale(path, leaf):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] != "kernel":
            return leaf
        return leaf * scales[LAYER_KINDS.index(names[0])].astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(scale, params)


def sample_params(spec: CNNSpec, key: jax.Array, scalars=None) -> dict:
    """Parameters with the spec's init and gains, drawn as sweeps and training draw them:
    ``static_key()`` sampler × kernel scales; ``scalars`` (the family scalars
    ``(kernel_scales,)``, may be traced) replaces the spec's own."""
    (kernel_scales,) = family_scalars(spec) if scalars is None else scalars
    return apply_gains(init_params(spec.static_key(), key), kernel_scales)


def apply(spec: CNNSpec):
    """``f(params, x) -> logits (batch, out_dim)``."""
    model = ConvNet(spec)

    def f(params, x):
        return model.apply({"params": params}, x)

    return f


def family_scalars(spec: CNNSpec) -> tuple:
    """What enters a compiled program traced: ``(kernel_scales,)``."""
    return (spec.kernel_scales(),)


def param_count(spec: CNNSpec) -> int:
    """Parameters of ``ConvNet(spec)``."""
    k, c = spec.kernel_size, spec.channels
    per_layer = c if spec.block != "batchnorm" else 2 * c  # conv bias, or BN scale + offset
    return (k * spec.in_channels * c + per_layer + (spec.depth - 1) * (k * c * c + per_layer)
            + c * spec.out_dim + spec.out_dim)


def _tensors_per_layer(spec: CNNSpec) -> int:
    # (batch, length, channels) arrays a layer's forward pass computes: conv output and
    # φ (plain), + normalised (batchnorm), φ(h) and the sum (residual)
    return 3 if spec.block == "batchnorm" else 2


def activation_bytes(spec: CNNSpec, examples: int) -> int:
    """Forward activations of one network on ``examples`` examples (float32)."""
    per_example = (spec.length * spec.in_channels
                   + (_tensors_per_layer(spec) + spec.kernel_size) * spec.depth
                   * spec.length * spec.channels
                   + spec.channels + spec.out_dim)
    return 4 * examples * per_example


# ------------------------------------------------------------------------------ sweeps
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


# ------------------------------------------------------------------------------ training
STACK = "hidden/"
READOUT = "readout/"


def is_stacked(name: str, leaf=None) -> bool:
    """Leaves of the scanned conv stack (leading layer axis of length depth − 1)."""
    return name.startswith(STACK)


def is_output(name: str) -> bool:
    return name.startswith(READOUT)


def layer_leaves(names) -> list[str]:
    """The conv kernels in forward order (input conv, the stack), then the readout kernel."""
    order = ("input_layer/conv/kernel", "hidden/conv/kernel", "readout/dense/kernel")
    names = list(names)
    missing = [n for n in order if n not in names]
    if missing:
        raise ConfigError(f"params: not a cnn parameter tree (no {missing[0]!r})")
    return list(order)


def check_data(spec: CNNSpec, data) -> str | None:
    """Why ``data`` (a :class:`gradstudy.data.Dataset`) does not fit ``spec``, or None."""
    x = np.asarray(data.x)
    if x.ndim not in (2, 3):
        return (f"is a cnn on signals (examples, length[, channels]); the data's inputs "
                f"have shape {x.shape}")
    length, channels = x.shape[1], (1 if x.ndim == 2 else x.shape[2])
    outputs = data.classes or int(np.asarray(data.y).shape[1])
    if (length, channels, outputs) != (spec.length, spec.in_channels, spec.out_dim):
        return (f"has length {spec.length}, in_channels {spec.in_channels}, out_dim "
                f"{spec.out_dim}; the data need {length}, {channels} and {outputs}")
    return None


CNN_TRAIN_HOOKS = TrainHooks(
    init=sample_params,
    apply=apply,
    stacked=is_stacked,
    is_output=is_output,
    layer_leaves=layer_leaves,
    layers=lambda spec: spec.depth + 1,
    param_count=param_count,
    activation_bytes=activation_bytes,
    check_data=check_data,
    coords=train_coords,
)

CNN_FAMILY = ModelFamily(
    name="cnn",
    spec_type=CNNSpec,
    at_depth=lambda spec, depth: spec.replace(depth=depth),
    program_key=CNNSpec.static_key,
    scalars=family_scalars,
    measure=_measure,
    measured=MEASURED,
    memory=_memory,
    coords=coords,
    fingerprint=spec_fingerprint,
    why_unfingerprintable=why_spec_unfingerprintable,
    label=_label_of,
    train=CNN_TRAIN_HOOKS,
)
