"""The recurrent family: vanishing and exploding gradients *through time*.

A recurrent network ``RecurrentNet(RNNSpec)`` reads a sequence x_1..x_T and updates a state

* vanilla (Elman) cells ``cell="tanh" | "relu" | "linear"``: h_t = φ(W h_{t−1} + U x_t + b);
* ``cell="lstm"``: :class:`flax.linen.LSTMCell` (Hochreiter & Schmidhuber 1997), state
  s_t = (c_t, h_t);
* ``cell="gru"``: :class:`flax.linen.GRUCell` (Cho et al. 2014), state h_t;

from h_0 = 0, and a readout maps the last output (``readout="last"``) or every output
(``"sequence"``) to ``out_dim``.  The flax cells are used as they are: their
``recurrent_kernel_init``, ``kernel_init`` and ``bias_init`` arguments give the control the
study needs.  Back-propagation through time multiplies the state Jacobians
∂h_t/∂h_{t−1} = diag φ'(·) W, so ‖∂h_T/∂h_t‖₂ ≤ (γ λ₁)^(T−t) with λ₁ = ‖W‖₂ and γ = sup|φ'|
(Pascanu, Mikolov & Bengio 2013): λ₁ < 1/γ suffices for vanishing gradients and λ₁ > 1/γ is
necessary for exploding ones; for a linear RNN the growth rate is the spectral radius.

Initialisation (``recurrent_init``, applied to every hidden-to-hidden matrix, each gate's
for LSTM/GRU; all biases 0):

* ``"orthogonal"``: ρ·Q, Q Haar-distributed (Saxe et al. 2014): λ₁ = spectral radius = ρ;
* ``"gaussian"``: entries N(0, ρ²/hidden).  By the circular law the eigenvalues fill the
  disc of radius ρ, so the spectral radius is ≈ ρ, while the largest singular value is
  ≈ 2ρ (the edge of the quarter-circle law): Pascanu's sufficient condition λ₁ < 1 then
  holds only for ρ < ½.  At finite width both are off: over 50 draws the spectral radius
  is (1.08 ± 0.17)ρ at hidden 8, (1.07 ± 0.05)ρ at 64, (1.04 ± 0.02)ρ at 256, and λ₁ is
  (1.71 ± 0.15)ρ, (1.94 ± 0.05)ρ, (1.98 ± 0.02)ρ.  The real numbers of every network are
  recorded (``recurrent_top_singular``, ``recurrent_spectral_radius``);
* ``"identity"``: ρ·I (IRNN with ``cell="relu"``, ρ = 1: Le, Jaitly & Hinton 2015).

Input kernels are N(0, input_scale²/in_dim), the readout kernel N(0, 1/hidden).  ρ
(``recurrent_scale``) and ``input_scale`` are *traced*: parameters are sampled at unit scale
(:func:`init_params`) and multiplied afterwards (:func:`scale_params`), so that a grid of ρ is
one compiled sweep program (:data:`RNN_FAMILY`).  ``RecurrentNet(spec).init`` gives the same
numbers as :func:`sample_params` (the factors are applied in the initializers), so that
generic tools (:func:`gradstudy.tools.diagnose`) see the spec's scales.

Parameter leaves ('/'-joined paths in ``params``; ``<kind>`` is ``elman``, ``lstm`` or
``gru``; modules whose name starts with ``i`` read the input, with ``h`` the state)::

    elman: cell/elman/ih/{kernel,bias}  cell/elman/hh/kernel
    lstm:  cell/lstm/i{i,f,g,o}/kernel  cell/lstm/h{i,f,g,o}/{kernel,bias}
    gru:   cell/gru/i{r,z,n}/{kernel,bias}  cell/gru/h{r,z}/kernel  cell/gru/hn/{kernel,bias}
    all:   readout/{kernel,bias}

Kernels are flax ``Dense`` kernels (``(in, out)``, y = x K), so the W above is Kᵀ; norms and
spectra do not see the transpose.

*The state* of a step is what the next step reads: h_t, or for the LSTM the full carry
s_t = [c_t, h_t] concatenated (c first; size 2·hidden).  For the LSTM the gradient through
time flows mainly through c (∂c_t/∂c_{t−1} = diag f_t, the forget gates), which is why the
whole carry is measured.  ``RecurrentNet(spec)(x, taps)`` adds ``taps[t]`` (zeros in normal
use; shape ``(T+1, batch, state)``) to the state: ``taps[0]`` to h_0, ``taps[t]`` to h_t
after reading x_t, so that ∂L/∂taps[t] = ∂L/∂h_t and ∂h_T/∂taps[t] = ∂h_T/∂h_t.

References:
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks.
    Le, Jaitly & Hinton (2015), A simple way to initialize recurrent networks of rectified
    linear units (IRNN).
    Hochreiter & Schmidhuber (1997), Long short-term memory.
    Cho et al. (2014), Learning phrase representations using RNN encoder-decoder for
    statistical machine translation (GRU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gradstudy._validate import (
    MAX_GAIN,
    MAX_UNITS,
    check_choice,
    check_dtype,
    check_int,
    check_real,
)

CELLS = ("tanh", "relu", "linear", "lstm", "gru")
VANILLA = ("tanh", "relu", "linear")
RECURRENT_INITS = ("orthogonal", "gaussian", "identity")
READOUTS = ("last", "sequence")
SCALAR_FIELDS = ("recurrent_scale", "input_scale")  # traced: one program for a grid of them
RNN_VERSION = 1  # bumped whenever what the family computes changes (cache keys)
MAX_LENGTH = 10**6
_GATES = {"elman": 1, "lstm": 4, "gru": 3}  # hidden-to-hidden matrices per cell
_GATE_ORDER = "ifgorznh"  # second letters of the cells' modules, in forward order


@dataclass(frozen=True)
class RNNSpec:
    """A recurrent network of ``length`` time steps (see the module docstring).

    Attributes:
        cell: "tanh", "relu", "linear" (Elman h_t = φ(W h_{t−1} + U x_t + b)), "lstm" or
            "gru" (flax's cells).
        hidden: hidden units (the LSTM state is 2·hidden: c and h).
        in_dim: input features per time step.
        out_dim: readout dimension.
        length: sequence length T (a sweep's "depth").
        dtype: "float32" or "float64" (float64 needs ``jax_enable_x64``).
        recurrent_init: "orthogonal" (ρ·Q, Q Haar), "gaussian" (N(0, ρ²/hidden)) or
            "identity" (ρ·I), for every hidden-to-hidden matrix.
        recurrent_scale: ρ (traced in sweeps).
        input_scale: input kernels N(0, input_scale²/in_dim) (traced in sweeps).
        readout: "last" (outputs (batch, out_dim) from the last step) or "sequence"
            ((batch, T, out_dim), one per step).
    """

    cell: str = "tanh"
    hidden: int = 32
    in_dim: int = 1
    out_dim: int = 1
    length: int = 50
    dtype: str = "float32"
    recurrent_init: str = "orthogonal"
    recurrent_scale: float = 1.0
    input_scale: float = 1.0
    readout: str = "last"

    def __post_init__(self):
        check_choice("cell", self.cell, CELLS)
        # NumPy scalars are accepted and stored as Python numbers (hashable, JSON-able)
        for name in ("hidden", "in_dim", "out_dim"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1, MAX_UNITS))
        object.__setattr__(self, "length", check_int("length", self.length, 1, MAX_LENGTH))
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        check_choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
        for name in SCALAR_FIELDS:
            object.__setattr__(self, name, check_real(name, getattr(self, name), 0.0,
                                                      MAX_GAIN))
        check_choice("readout", self.readout, READOUTS)

    @property
    def kind(self) -> str:
        """The cell module's name: "elman" (vanilla cells), "lstm" or "gru"."""
        return self.cell if self.cell in ("lstm", "gru") else "elman"

    @property
    def state_size(self) -> int:
        """Size of the state s_t: hidden, or 2·hidden for the LSTM (c and h)."""
        return 2 * self.hidden if self.cell == "lstm" else self.hidden

    def replace(self, **changes) -> "RNNSpec":
        return dataclasses.replace(self, **changes)

    def static_key(self) -> "RNNSpec":
        """The spec a compiled program is built from: the traced scalars (ρ, input_scale)
        set to 1, so that specs differing only in them share one program."""
        return dataclasses.replace(self, **{name: 1.0 for name in SCALAR_FIELDS})

    def describe(self) -> dict:
        """JSON-able description, for result attributes and cache keys (the cells are
        built in: ``rnn_version`` stands for their code)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["rnn_version"] = RNN_VERSION
        return d


def scalars(spec: RNNSpec) -> tuple[float, float]:
    """The traced scalars of ``spec``: (recurrent_scale ρ, input_scale)."""
    return (float(spec.recurrent_scale), float(spec.input_scale))
