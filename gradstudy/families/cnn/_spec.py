"""The spec of a 1-D convolutional network, :class:`CNNSpec`, and the family's constants.

A ``ConvNet`` maps signals ``(batch, length[, in_channels])`` (MNIST-1D: length 40, one
channel) through ``depth`` convolutional layers (:class:`Conv1D`; ``padding`` "same", zeros
beyond the ends, or "circular"): an input layer
(in_channels → channels), then ``depth − 1`` identical layers stacked with ``nn.scan``
(their parameters carry a leading layer axis, ``params["hidden"]``), then a global average
pool over the length and a dense readout to ``out_dim`` logits.  Three kinds of layer
(``block``):

* "plain": h_l = φ(conv_l(h_(l−1)));
* "batchnorm": h_l = φ(BN(conv_l(h_(l−1)))), BN with the batch statistics over
  (batch, length) per channel (:class:`gradstudy.nn.Normalize`; no
  running averages; the conv has no bias, BN's offset plays its part);
* "residual" (pre-activation, He et al. 2016b): h_1 = conv_1(x),
  h_l = h_(l−1) + α·conv_l(φ(h_(l−1))), readout of φ(h_depth).  The branch scale
  α defaults to 1/√(depth − 1), one over the square root of the number of branches: with
  a critical branch (He init + ReLU: Var conv(φ(h)) = Var h) the forward and backward
  variances grow by (1 + α²) per block, so over the stack by (1 + 1/(depth−1))^(depth−1)
  < e whatever the depth, instead of 2^(depth−1) with α = 1.  This is the scaling of
  De & Smith (2020, SkipInit: α ≤ 1/√depth trains unnormalised ResNets) and of Hanin &
  Rolnick (2018, Σ_l α_l² bounded); ``residual_alpha`` sets another α.

Gains follow :class:`gradstudy.families.mlp.MLPSpec`: parameters are sampled at unit gain from
``static_key()`` and the kernels scaled by ``kernel_scales()`` (σ_w times, for a scaled
Gaussian/uniform family such as He, its per-layer std at the receptive-field fans
fan_in = C_in·k), so a grid over σ_w, or over He/LeCun/Glorot, is one compiled program.
A conv kernel ``(k, C_in, C_out)`` drawn by ``he_normal`` has entries N(0, 2/(C_in·k)) (the
critical ReLU init); ``delta_orthogonal`` (Xiao et al. 2018) is an orthogonal centre tap
times σ_w: an isometry for a linear net at σ_w = 1, critical for ReLU at σ_w = √2
(``sigma_w2()`` is the mean-field σ_w² of a hidden layer: 2σ_w² for He, σ_w² for
delta-orthogonal).  Biases start at 0; BN's scale at 1 and offset at 0.

The network's Linen modules are in :mod:`gradstudy.families.cnn._model`, its sweep
measurement in :mod:`gradstudy.families.cnn._measure`, its family record
(:data:`CNN_FAMILY`) in :mod:`gradstudy.families.cnn._family`.

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

from gradstudy._validate import (
    MAX_UNITS,
    check_choice,
    check_dtype,
    check_int,
    check_name_or_callable,
    check_real,
    short_repr,
)
from gradstudy.errors import ConfigError
from gradstudy.nn._activations import get_activation
from gradstudy.nn._fingerprint import (
    activation_fingerprint,
    fingerprint_label,
    initializer_fingerprint,
)
from gradstudy.nn._initializers import UNIT_SAMPLERS, get_initializer

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
        activation: a name from ``gradstudy.nn`` or a callable ``jnp -> jnp``.
        block: "plain", "batchnorm" or "residual".
        init: a name from ``gradstudy.nn`` (default "he_normal"; e.g.
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
        (receptive-field fans, :func:`gradstudy.nn.fans`)."""
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
        :meth:`gradstudy.families.mlp.MLPSpec.describe`)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = "cnn"
        d["activation_fingerprint"] = activation_fingerprint(self.activation)
        d["init_fingerprint"] = initializer_fingerprint(self.init)
        d["activation"] = fingerprint_label(self.activation, d["activation_fingerprint"])
        d["init"] = fingerprint_label(self.init, d["init_fingerprint"])
        return d
