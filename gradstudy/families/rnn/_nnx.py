"""The recurrent family's Flax NNX twin: the network of an :class:`RNNSpec` as an
``nnx.Module``.

Same computation as the Linen :class:`~gradstudy.families.rnn.RecurrentNet` without its
taps: the cell (:class:`NNXElmanCell`, :class:`NNXLSTMCell` or :class:`NNXGRUCell`, the
math of gradstudy's :class:`ElmanCell` and of flax's Linen ``LSTMCell``/``GRUCell``: the
same gate equations and the same Dense layers with and without bias) scanned over time by
``nnx.RNN`` (``rnn``; so that :func:`gradstudy.tools.diagnose` measures the gates at every
time step), then the ``readout`` of the last output or of every output.  The gate modules
are named as in Linen (``ii``, ``hf``, ``ir``, ``hn``, ...), with ``if_`` and ``in_`` for
the Python keywords (as flax's ``nnx.LSTMCell``).  Its weights are drawn by the family's
own sampler (:func:`sample_params`), so ``nnx_recurrent_net(spec, nnx.Rngs(key))`` holds
exactly the weights that sweeps draw for ``key``; :func:`nnx_recurrent_net_from_params`
builds the twin of given Linen parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gradstudy.families.rnn._model import _ACTIVATIONS, sample_params
from gradstudy.families.rnn._spec import RNNSpec

_KEYWORDS = {"if": "if_", "in": "in_"}  # Linen gate names that are not Python attributes


class NNXLinear(nnx.Module):
    """``y = x K (+ b)``: flax's ``Dense`` with given ``kernel`` (in, out) and ``bias``
    (None: no bias)."""

    def __init__(self, kernel, bias=None):
        self.kernel = nnx.Param(jnp.asarray(kernel))
        self.bias = None if bias is None else nnx.Param(jnp.asarray(bias))

    def __call__(self, x):
        y = x @ self.kernel[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return y


def _linear(params: dict, name: str) -> NNXLinear:
    p = params[name]
    return NNXLinear(p["kernel"], p.get("bias"))


class _Cell(nnx.RNNCellBase):
    """What the three cells share: the carry (zeros) and the feature axes."""

    features: int
    dtype: str

    def _zeros(self, input_shape):
        return jnp.zeros(tuple(input_shape[:-1]) + (self.features,), jnp.dtype(self.dtype))

    def initialize_carry(self, input_shape, rngs=None):
        """The zero carry for inputs of shape ``input_shape`` (batch dims, in_dim);
        ``rngs`` is unused (the carry starts at 0, as in the Linen network)."""
        del rngs
        return self._zeros(input_shape)

    @property
    def num_feature_axes(self) -> int:
        return 1


class NNXElmanCell(_Cell):
    """gradstudy's :class:`ElmanCell`: ``h' = φ(x U + b + h W)`` (``ih`` reads x, with the
    bias; ``hh`` reads h, without bias)."""

    def __init__(self, params: dict, activation: str = "tanh", dtype: str = "float32"):
        self.ih = _linear(params, "ih")
        self.hh = _linear(params, "hh")
        self.activation = activation
        self.features = int(self.hh.kernel.shape[-1])
        self.dtype = dtype

    def __call__(self, carry, inputs):
        h = _ACTIVATIONS[self.activation](self.ih(inputs) + self.hh(carry))
        return h, h


class NNXLSTMCell(_Cell):
    """flax's Linen ``LSTMCell`` (carry ``(c, h)``): input kernels ``ii``, ``if_``, ``ig``,
    ``io`` without bias, recurrent ``hi``, ``hf``, ``hg``, ``ho`` with bias::

        i = σ(x W_ii + h W_hi + b_hi)    f = σ(x W_if + h W_hf + b_hf)
        g = tanh(x W_ig + h W_hg + b_hg)  o = σ(x W_io + h W_ho + b_ho)
        c' = f c + i g                   h' = o tanh(c')
    """

    def __init__(self, params: dict, dtype: str = "float32"):
        for gate in ("ii", "if", "ig", "io", "hi", "hf", "hg", "ho"):
            setattr(self, _KEYWORDS.get(gate, gate), _linear(params, gate))
        self.features = int(self.hi.kernel.shape[-1])
        self.dtype = dtype

    def __call__(self, carry, inputs):
        c, h = carry
        i = jax.nn.sigmoid(self.ii(inputs) + self.hi(h))
        f = jax.nn.sigmoid(self.if_(inputs) + self.hf(h))
        g = jnp.tanh(self.ig(inputs) + self.hg(h))
        o = jax.nn.sigmoid(self.io(inputs) + self.ho(h))
        new_c = f * c + i * g
        new_h = o * jnp.tanh(new_c)
        return (new_c, new_h), new_h

    def initialize_carry(self, input_shape, rngs=None):
        """The zero carry ``(c, h)``; ``rngs`` is unused."""
        del rngs
        return self._zeros(input_shape), self._zeros(input_shape)


class NNXGRUCell(_Cell):
    """flax's Linen ``GRUCell``: input kernels ``ir``, ``iz``, ``in_`` with bias, recurrent
    ``hr``, ``hz`` without and ``hn`` with bias::

        r = σ(x W_ir + b_ir + h W_hr)    z = σ(x W_iz + b_iz + h W_hz)
        n = tanh(x W_in + b_in + r (h W_hn + b_hn))    h' = (1 − z) n + z h
    """

    def __init__(self, params: dict, dtype: str = "float32"):
        for gate in ("ir", "iz", "in", "hr", "hz", "hn"):
            setattr(self, _KEYWORDS.get(gate, gate), _linear(params, gate))
        self.features = int(self.hr.kernel.shape[-1])
        self.dtype = dtype

    def __call__(self, carry, inputs):
        h = carry
        r = jax.nn.sigmoid(self.ir(inputs) + self.hr(h))
        z = jax.nn.sigmoid(self.iz(inputs) + self.hz(h))
        n = jnp.tanh(self.in_(inputs) + r * self.hn(h))
        new_h = (1.0 - z) * n + z * h
        return new_h, new_h


def nnx_cell(spec: RNNSpec, params: dict) -> _Cell:
    """The NNX cell of ``spec`` holding the Linen cell parameters ``params``
    (``params["cell"][spec.kind]``)."""
    if spec.cell == "lstm":
        return NNXLSTMCell(params, spec.dtype)
    if spec.cell == "gru":
        return NNXGRUCell(params, spec.dtype)
    return NNXElmanCell(params, spec.cell, spec.dtype)


class NNXRecurrentNet(nnx.Module):
    """The NNX twin of ``RecurrentNet(spec)`` (without taps): ``rnn`` (``nnx.RNN`` of the
    cell, ``rnn/cell``), ``readout``; ``__call__(x) -> outputs`` for ``x`` (batch, T,
    in_dim): (batch, out_dim) with ``readout="last"``, (batch, T, out_dim) with
    ``"sequence"``."""

    def __init__(self, spec: RNNSpec, params: dict):
        self.spec = spec
        cell = nnx_cell(spec, params["cell"][spec.kind])
        # rngs=False: no RNG state (the carry starts at zeros, as in the Linen network)
        self.rnn = nnx.RNN(cell, return_carry=True, rngs=False)
        self.readout = _linear(params, "readout")

    def __call__(self, x):
        x = jnp.asarray(x, jnp.dtype(self.spec.dtype))
        _, outputs = self.rnn(x)
        features = outputs[..., -1, :] if self.spec.readout == "last" else outputs
        return self.readout(features)


def nnx_recurrent_net_from_params(spec: RNNSpec, params: dict) -> NNXRecurrentNet:
    """The NNX twin of ``RecurrentNet(spec)`` holding the given Linen parameters (as
    :func:`sample_params` returns them)."""
    return NNXRecurrentNet(spec, params)


def nnx_recurrent_net(spec: RNNSpec, rngs: nnx.Rngs) -> NNXRecurrentNet:
    """An NNX network of ``spec`` with weights drawn as sweeps draw them: those of
    ``sample_params(spec, rngs.params())``."""
    return NNXRecurrentNet(spec, sample_params(spec, rngs.params()))
