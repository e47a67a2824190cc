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
generic tools (:func:`gradstudy.diagnose.diagnose`) see the spec's scales.

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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gradstudy._numerics import safe_norm
from gradstudy._validate import (
    MAX_GAIN,
    MAX_UNITS,
    check_choice,
    check_dtype,
    check_int,
    check_real,
)
from gradstudy.errors import ConfigError
from gradstudy.families._base import ModelFamily, TrainHooks
from gradstudy.nn._losses import LOSS_FUNCTIONS, PROBE_LOSSES

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


# ---------------------------------------------------------------- unit-scale initializers
def _normal_fan_in(key, shape, dtype=jnp.float32):
    """Entries N(0, 1/fan_in) (fan_in = shape[0])."""
    return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.asarray(shape[0], dtype))


def _identity(key, shape, dtype=jnp.float32):
    del key
    return jnp.eye(shape[0], shape[1], dtype=dtype)


def haar_orthogonal(key, shape, dtype=jnp.float32):
    """A Haar-distributed orthogonal (n x n) matrix, without a QR library call.

    Q of the QR decomposition G = QR of a Gaussian matrix G, with the columns' signs fixed
    so that R has a positive diagonal, is Haar-distributed (Mezzadri 2007; the distribution
    of flax's ``orthogonal`` initializer).  Here the QR is n − 1 Householder reflections
    written as matrix-vector products in a ``fori_loop``: on XLA CPU (jax 0.10.2) the
    batched LAPACK QR that a *vmapped* ``jnp.linalg.qr`` becomes deadlocked sweeps of
    several networks (reproduced: a sweep of 3 × 8 LSTMs of width 64 hung, 5 s of CPU in
    150 s of wall time, while Gaussian init ran in 10 s).
    """
    n = shape[0]
    if len(shape) != 2 or shape[1] != n:
        raise ValueError(f"haar_orthogonal: needs a square shape, got {shape}")
    g = jax.random.normal(key, (n, n), dtype)
    rows = jnp.arange(n)

    def reflect(k, state):
        r, q = state
        x = jnp.where(rows >= k, r[:, k], 0)
        x_k = r[k, k]
        # v = x + sign(x_k)‖x‖e_k; H = I − 2vvᵀ/‖v‖² maps x to −sign(x_k)‖x‖e_k
        v = x + jnp.where(x_k >= 0, 1, -1).astype(dtype) * safe_norm(x) * (rows == k)
        vv = jnp.sum(v * v)
        beta = jnp.where(vv > 0, 2 / jnp.where(vv > 0, vv, 1), 0)
        return r - beta * jnp.outer(v, v @ r), q - beta * jnp.outer(q @ v, v)

    r, q = jax.lax.fori_loop(0, n - 1, reflect, (g, jnp.eye(n, dtype=dtype)))
    signs = jnp.where(jnp.diagonal(r) >= 0, 1, -1).astype(dtype)
    return q * signs[None, :]


_RECURRENT_INIT = {"orthogonal": haar_orthogonal, "gaussian": _normal_fan_in,
                   "identity": _identity}


# ------------------------------------------------------------------------------- modules
_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "linear": lambda z: z}


class ElmanCell(nn.RNNCellBase):
    """Vanilla cell h' = φ(h W + x U + b) (flax ``Dense`` layout: "ih" reads x, with the
    bias b; "hh" reads h, without bias).

    Attributes:
        features: hidden units.
        activation: "tanh", "relu" or "linear".
        kernel_init, recurrent_kernel_init, bias_init: initializers of U, W and b.
        dtype, param_dtype: as flax's cells.
    """

    features: int
    activation: str = "tanh"
    kernel_init: Any = _normal_fan_in
    recurrent_kernel_init: Any = haar_orthogonal
    bias_init: Any = nn.initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, inputs):
        dense = dict(features=self.features, dtype=self.dtype, param_dtype=self.param_dtype)
        z = (nn.Dense(use_bias=True, kernel_init=self.kernel_init, bias_init=self.bias_init,
                      name="ih", **dense)(inputs)
             + nn.Dense(use_bias=False, kernel_init=self.recurrent_kernel_init, name="hh",
                        **dense)(carry))
        h = _ACTIVATIONS[self.activation](z)
        return h, h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        return jnp.zeros(input_shape[:-1] + (self.features,), self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


def _scaled(init, factor: float):
    """``init`` times ``factor``, multiplied as :func:`scale_params` does (same bits)."""
    if factor == 1.0:
        return init

    def scaled(key, shape, dtype=jnp.float32):
        return init(key, shape, dtype) * jnp.asarray(factor, dtype)

    return scaled


def _inner_cell(spec: RNNSpec) -> nn.Module:
    dtype = jnp.dtype(spec.dtype)
    common = dict(features=spec.hidden,
                  kernel_init=_scaled(_normal_fan_in, spec.input_scale),
                  recurrent_kernel_init=_scaled(_RECURRENT_INIT[spec.recurrent_init],
                                                spec.recurrent_scale),
                  bias_init=nn.initializers.zeros_init(), dtype=dtype, param_dtype=dtype,
                  name=spec.kind)
    if spec.cell == "lstm":
        return nn.LSTMCell(**common)
    if spec.cell == "gru":
        return nn.GRUCell(**common)
    return ElmanCell(activation=spec.cell, **common)


def state_vector(spec: RNNSpec, carry) -> jax.Array:
    """A cell's carry as one state vector (..., state_size): [c, h] for the LSTM."""
    return jnp.concatenate(carry, axis=-1) if spec.cell == "lstm" else carry


def state_carry(spec: RNNSpec, state: jax.Array):
    """The inverse of :func:`state_vector`."""
    if spec.cell == "lstm":
        return (state[..., :spec.hidden], state[..., spec.hidden:])
    return state


class TappedCell(nn.RNNCellBase):
    """One time step of ``spec``'s cell, then the tap added to the new state.

    ``inputs`` is x_t (..., in_dim), or x_t and tap_t concatenated (..., in_dim + state);
    the output is the h part of the (tapped) state.
    """

    spec: RNNSpec

    @nn.compact
    def __call__(self, carry, inputs):
        spec = self.spec
        x = inputs[..., :spec.in_dim]
        carry, _ = _inner_cell(spec)(carry, x)
        if inputs.shape[-1] > spec.in_dim:
            carry = state_carry(spec, state_vector(spec, carry) + inputs[..., spec.in_dim:])
        h = carry[1] if spec.cell == "lstm" else carry
        return carry, h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        zeros = jnp.zeros(input_shape[:-1] + (self.spec.state_size,), self.spec.dtype)
        return state_carry(self.spec, zeros)

    @property
    def num_feature_axes(self) -> int:
        return 1


class RecurrentNet(nn.Module):
    """``spec``'s recurrent network: the cell scanned over time by ``nn.RNN`` (parameters
    broadcast over time), then the readout.

    Call ``(x, taps=None, final_state=False)``: ``x`` (batch, T, in_dim); ``taps``
    (T+1, batch, state) added to the states (see the module docstring); returns the
    readout's outputs ((batch, out_dim) or (batch, T, out_dim)), or with
    ``final_state=True`` the final state s_T (batch, state) (the readout is not run).
    Submodules: ``cell`` (one time step; :class:`TappedCell`), ``rnn`` (the scan),
    ``readout``.
    """

    spec: RNNSpec

    @nn.compact
    def __call__(self, x, taps=None, final_state: bool = False):
        spec = self.spec
        dtype = jnp.dtype(spec.dtype)
        x = jnp.asarray(x, dtype)
        state = jnp.zeros(x.shape[:-2] + (spec.state_size,), dtype)
        inputs = x
        if taps is not None:
            taps = jnp.asarray(taps, dtype)
            state = state + taps[0]
            inputs = jnp.concatenate([x, jnp.moveaxis(taps[1:], 0, -2)], axis=-1)
        cell = TappedCell(spec, name="cell")
        carry, outputs = nn.RNN(cell, return_carry=True, name="rnn")(
            inputs, initial_carry=state_carry(spec, state))
        if final_state:
            return state_vector(spec, carry)
        features = outputs[..., -1, :] if spec.readout == "last" else outputs
        return nn.Dense(spec.out_dim, kernel_init=_normal_fan_in,
                        bias_init=nn.initializers.zeros_init(), dtype=dtype, param_dtype=dtype,
                        name="readout")(features)


# ---------------------------------------------------------------------------- parameters
def leaf_kind(path: str) -> str:
    """What a '/'-joined parameter path is: "input" (input kernels U), "recurrent"
    (hidden-to-hidden kernels W), "bias" (the cell's biases) or "readout"."""
    parts = path.split("/")
    if "readout" in parts:
        return "readout"
    if parts[-1] == "bias":
        return "bias"
    return "input" if parts[-2].startswith("i") else "recurrent"


def _paths(params) -> dict[str, Any]:
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(params)).items()}


def init_params(spec: RNNSpec, key: jax.Array) -> dict:
    """Parameters of ``spec`` at unit scale (ρ = 1, input_scale = 1: those of
    ``spec.static_key()``; the spec's own scalars are applied by :func:`sample_params`)."""
    spec = spec.static_key()
    x = jnp.zeros((1, 1, spec.in_dim), jnp.dtype(spec.dtype))
    return RecurrentNet(spec).init(key, x)["params"]


def scale_params(params: dict, recurrent_scale, input_scale) -> dict:
    """Recurrent kernels times ρ and input kernels times ``input_scale`` (may be traced)."""
    factors = {"recurrent": recurrent_scale, "input": input_scale}

    def scale(path, leaf):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        factor = factors.get(leaf_kind(name))
        return leaf if factor is None else leaf * jnp.asarray(factor, leaf.dtype)

    return jax.tree_util.tree_map_with_path(scale, params)


def sample_params(spec: RNNSpec, key: jax.Array, scalars=None) -> dict:
    """Parameters of ``spec``: sampled at unit scale from ``key``, then scaled by
    ``scalars`` = (ρ, input_scale) (default the spec's; a sweep passes them traced)."""
    if scalars is None:
        scalars = (float(spec.recurrent_scale), float(spec.input_scale))
    rho, input_scale = scalars
    return scale_params(init_params(spec, key), rho, input_scale)


def apply(spec: RNNSpec):
    """``f(params, x, taps=None) -> outputs`` of ``spec``'s network."""
    net = RecurrentNet(spec)

    def f(params, x, taps=None):
        return net.apply({"params": params}, x, taps)

    return f


def recurrent_kernels(params) -> list[jax.Array]:
    """The hidden-to-hidden kernels, one per gate (flax layout: W = Kᵀ)."""
    return [v for k, v in _paths(params).items() if leaf_kind(k) == "recurrent"]


def kernel_names(spec: RNNSpec) -> list[str]:
    """The kernels' paths in forward order: input kernels, recurrent kernels, readout."""
    gates = {"elman": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}[spec.kind]
    if spec.kind == "elman":
        inputs, recurrent = ["ih"], ["hh"]
    else:
        inputs, recurrent = [f"i{g}" for g in gates], [f"h{g}" for g in gates]
    return ([f"cell/{spec.kind}/{m}/kernel" for m in inputs + recurrent]
            + ["readout/kernel"])


def param_count(spec: RNNSpec) -> int:
    """Parameters of one network."""
    n, i, o = spec.hidden, spec.in_dim, spec.out_dim
    gates = _GATES[spec.kind]
    biases = {"elman": n, "lstm": 4 * n, "gru": 4 * n}[spec.kind]
    return gates * (i * n + n * n) + biases + n * o + o


# --------------------------------------------------------------------------------- probes
def spectral_norm(m: jax.Array) -> jax.Array:
    """Largest singular value of each matrix (..., a, b), computed on m / max|m| so that
    neither tiny nor huge entries under- or overflow; 0 for a zero matrix."""
    scale = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe = jnp.where((scale > 0) & jnp.isfinite(scale), scale, jnp.ones_like(scale))
    top = jnp.linalg.svd(m / safe[..., None, None], compute_uv=False)[..., 0]
    return jnp.where(scale > 0, top * safe, jnp.where(jnp.isfinite(scale), 0.0, jnp.nan))


def spectral_radius(w: jax.Array, squarings: int = 40) -> jax.Array:
    """max |λ| of a square matrix by Gelfand's formula ρ(W) = lim ‖W^k‖^(1/k), k = 2^m.

    W is squared m times with renormalisation, A_0 = W/‖W‖, A_(j+1) = A_j²/‖A_j²‖, so
    log ‖W^(2^m)‖ / 2^m = log ‖W‖ + Σ_j 2^−(j+1) log ‖A_j²‖ (Frobenius norms) without
    overflow; the truncation error, O(log(cond)/2^m), is far below rounding at m = 40.
    Matrix products only: jit- and vmap-safe on every backend (``jnp.linalg.eigvals`` is
    not implemented on every accelerator).  0 for a nilpotent matrix.
    """
    norm0 = safe_norm(w)

    def body(j, state):
        a, log_rate, zero = state
        sq = a @ a
        n = jnp.sqrt(jnp.sum(jnp.square(sq)))
        zero = zero | (n == 0)
        n_safe = jnp.where(n > 0, n, 1.0)
        weight = jnp.exp2(-(j + 1.0)).astype(w.dtype)
        return sq / n_safe, log_rate + weight * jnp.log(n_safe), zero

    a0 = w / jnp.where(norm0 > 0, norm0, 1.0)
    _, log_rate, zero = jax.lax.fori_loop(0, squarings, body,
                                          (a0, jnp.zeros((), w.dtype), norm0 == 0))
    return jnp.where(zero, 0.0, norm0 * jnp.exp(log_rate))


def state_jacobians(spec: RNNSpec, params: dict, x: jax.Array) -> jax.Array:
    """State-to-state Jacobians of every example: ``J[k, s] = ∂s_T/∂s_(T−k)``.

    Row i of every example's Jacobian at every time is one VJP of the final state with the
    cotangent e_i (the examples are independent); the ``state_size`` VJPs are vmapped.

    Args:
        spec: the network.
        params: its parameters.
        x: (n, T, in_dim) inputs.

    Returns:
        (T+1, n, state, state) Jacobians along the lag k = T − t (k = 0 is the identity).
        Memory O(T·n·state²).
    """
    n, T, size = x.shape[0], x.shape[1], spec.state_size
    dtype = jnp.dtype(spec.dtype)
    net = RecurrentNet(spec)

    def final(taps):
        return net.apply({"params": params}, x, taps, final_state=True)

    _, vjp = jax.vjp(final, jnp.zeros((T + 1, n, size), dtype))
    rows = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, (n, size)))[0])(jnp.eye(size, dtype=dtype))
    return jnp.transpose(rows, (1, 2, 0, 3))[::-1]  # (lag, example, i, j)


THROUGH_TIME = {
    "state_grad_norm": (("lag",), "‖∂L/∂s_t‖ over batch and state, lag k = T − t "
                                  "(k = T is the initial state)"),
    "jacobian_norm": (("lag",), "‖∂s_T/∂s_t‖₂ (largest singular value), mean over the first "
                                "jacobian_samples examples, lag k = T − t"),
    "input_weight_grad_norm": ((), "‖∂L/∂U‖_F over the input kernels (all gates)"),
    "recurrent_weight_grad_norm": ((), "‖∂L/∂W‖_F over the recurrent kernels (all gates)"),
    "bias_grad_norm": ((), "‖∂L/∂b‖ over the cell's biases"),
    "readout_grad_norm": ((), "‖∂L/∂(readout kernel, bias)‖"),
    "recurrent_top_singular": ((), "λ₁ = ‖W‖₂ (largest over the gates' W)"),
    "recurrent_spectral_radius": ((), "max|eig W| of a vanilla cell (NaN for gated cells)"),
    "loss": ((), "loss at initialization"),
}


def through_time(spec: RNNSpec, params: dict, x: jax.Array, targets: jax.Array,
                 loss: str = "mse", jacobian_samples: int = 4) -> dict:
    """How the gradient flows back through time in one network on one batch.

    With states s_t (t = 0..T, s_0 = 0) and lag k = T − t:

    * ``state_grad_norm[k]`` = ‖∂L/∂s_t‖_F over batch and state (one ``jax.grad`` with
      respect to the taps);
    * ``jacobian_norm[k]`` = ‖∂s_T/∂s_t‖₂, the largest singular value of the
      (state × state) Jacobian, averaged over the first ``jacobian_samples`` examples
      (``jacobian_norm[0]`` = 1).  For vanilla cells
      ∂s_T/∂s_t = Π_τ diag φ'(z_τ) W, so ‖·‖₂ ≤ (γ λ₁)^k (Pascanu et al. 2013);
    * gradient norms of the parameters by kind (input / recurrent kernels, cell biases,
      readout);
    * ``recurrent_top_singular`` λ₁ = ‖W‖₂ (the largest over the gates) and, for vanilla
      cells, ``recurrent_spectral_radius`` (:func:`spectral_radius`; NaN for gated cells);
    * ``loss``.

    Pure and jit/vmap-safe (``jacobian_samples`` and ``loss`` are static).

    Args:
        spec: the network.
        params: its parameters (scaled: :func:`sample_params`).
        x: (batch, T, in_dim) inputs.
        targets: (batch, out_dim), or (batch, T, out_dim) for ``readout="sequence"``.
        loss: "mse" or "linear" (:data:`gradstudy.nn.PROBE_LOSSES`).
        jacobian_samples: examples whose Jacobians are measured (at most the batch).

    Returns:
        dict of arrays, named and shaped as :data:`THROUGH_TIME` (``lag`` has T+1 entries).

    References:
        Pascanu, Mikolov & Bengio (2013); Le, Jaitly & Hinton (2015); Hochreiter &
        Schmidhuber (1997); Cho et al. (2014).
    """
    loss = check_choice("loss", loss, PROBE_LOSSES)
    jacobian_samples = check_int("jacobian_samples", jacobian_samples)
    batch, T = x.shape[0], x.shape[1]
    dtype = jnp.dtype(spec.dtype)
    net = RecurrentNet(spec)
    loss_fn = LOSS_FUNCTIONS[loss]

    def objective(params, taps):
        return loss_fn(net.apply({"params": params}, x, taps), targets)

    taps = jnp.zeros((T + 1, batch, spec.state_size), dtype)
    value, (g_params, g_taps) = jax.value_and_grad(objective, argnums=(0, 1))(params, taps)
    out = {"state_grad_norm": jax.vmap(safe_norm)(g_taps)[::-1]}
    jac = state_jacobians(spec, params, x[:min(jacobian_samples, batch)])
    out["jacobian_norm"] = jnp.mean(spectral_norm(jac), axis=1)
    by_kind: dict[str, list] = {}
    for name, g in _paths(g_params).items():
        by_kind.setdefault(leaf_kind(name), []).append(safe_norm(g))
    for kind, key in (("input", "input_weight_grad_norm"),
                      ("recurrent", "recurrent_weight_grad_norm"),
                      ("bias", "bias_grad_norm"), ("readout", "readout_grad_norm")):
        out[key] = safe_norm(jnp.stack(by_kind[kind]))
    ws = recurrent_kernels(params)
    out["recurrent_top_singular"] = jnp.max(spectral_norm(jnp.stack(ws)))
    out["recurrent_spectral_radius"] = (spectral_radius(ws[0]) if spec.kind == "elman"
                                        else jnp.asarray(jnp.nan, dtype))
    out["loss"] = value
    return out


# ------------------------------------------------------------------------------- family
def sample_network(spec: RNNSpec, key: jax.Array, batch: int, input_std: float = 1.0,
                   scalars=None):
    """Parameters (:func:`sample_params`), inputs x ~ N(0, input_std²) (batch, T, in_dim)
    and targets ~ N(0, 1) drawn from ``key`` split in three (init, x, targets)."""
    k_init, k_x, k_t = jax.random.split(key, 3)
    dtype = jnp.dtype(spec.dtype)
    params = sample_params(spec, k_init, scalars)
    x = input_std * jax.random.normal(k_x, (batch, spec.length, spec.in_dim), dtype)
    out_shape = (batch, spec.out_dim) if spec.readout == "last" else \
        (batch, spec.length, spec.out_dim)
    return params, x, jax.random.normal(k_t, out_shape, dtype)


def _one_length(depths) -> int:
    depths = tuple(depths)
    if len(depths) != 1:
        raise ConfigError(f"depths: the rnn family measures one sequence length per sweep, "
                          f"got {len(depths)} ({', '.join(map(str, depths))})")
    return int(depths[0])


def _check_keep_backprop(keep_backprop: bool) -> None:
    if keep_backprop:
        raise ConfigError("keep_backprop: not supported by the rnn family (it records "
                          "state_grad_norm through time)")


JACOBIAN_SAMPLES = 4  # examples per network whose state Jacobians a sweep measures


def _measure(spec, depths, batch, input_std, key, scalars, keep_backprop, loss):
    _check_keep_backprop(keep_backprop)
    spec = spec.replace(length=_one_length(depths))
    params, x, targets = sample_network(spec, key, batch, input_std, scalars)
    return through_time(spec, params, x, targets, loss, JACOBIAN_SAMPLES)


def activation_bytes(spec: RNNSpec, examples: int) -> int:
    """Forward activations of one network on ``examples`` sequences (float32): the states
    and the cell's gates/pre-activations at every step."""
    per_step = {"elman": 2, "lstm": 8, "gru": 6}[spec.kind] * spec.hidden + spec.in_dim
    return 4 * examples * spec.length * (per_step + spec.out_dim)


def _memory(spec, depths, batch, keep_backprop):
    _check_keep_backprop(keep_backprop)
    T = _one_length(depths)
    spec = spec.replace(length=T)
    itemsize = np.dtype(spec.dtype).itemsize
    size, n = spec.state_size, min(JACOBIAN_SAMPLES, batch)
    forward = activation_bytes(spec, batch) * itemsize // 4
    jacobians = 3 * (T + 1) * n * size * size * itemsize  # rows, transposed, SVD input
    rows = size * activation_bytes(spec, n) * itemsize // 4  # vmapped VJP residuals
    working = 3 * forward + jacobians + rows + 4 * param_count(spec) * itemsize
    output = (2 * (T + 1) + len(THROUGH_TIME)) * itemsize
    what = (f"{spec.cell}, hidden {spec.hidden}, length {T}, batch {batch}, {spec.dtype}")
    return working, output, what


def _coords(points) -> dict:
    return {
        "cell": [p.cell for p in points],
        "hidden": [p.hidden for p in points],
        "recurrent_init": [p.recurrent_init for p in points],
        "recurrent_scale": [float(p.recurrent_scale) for p in points],
        "input_scale": [float(p.input_scale) for p in points],
        "length": [p.length for p in points],
        "readout": [p.readout for p in points],
        "in_dim": [p.in_dim for p in points],
        "out_dim": [p.out_dim for p in points],
    }


def _label(spec) -> str:
    return (f"{spec.cell} RNN, hidden {spec.hidden}, length {spec.length}, "
            f"{spec.recurrent_init} init, {spec.dtype}")


# --------------------------------------------------------------------------- training
def _layer_leaves(names) -> list[str]:
    """The kernels among ``names`` in forward order: input, recurrent, readout."""
    kernels = [n for n in names if n.endswith("kernel")]
    kinds = {"input": 0, "recurrent": 1, "readout": 2}

    def position(name):  # gates in the cells' order: LSTM i, f, g, o; GRU r, z, n
        module = name.split("/")[-2]
        return kinds[leaf_kind(name)], _GATE_ORDER.find(module[1:2])

    return sorted(kernels, key=position)


def check_data(spec: RNNSpec, data) -> str | None:
    """Why ``data`` (a :class:`gradstudy.data.Dataset`) does not fit ``spec``, or None."""
    x = np.shape(data.x)
    if len(x) != 3:
        return f"x: the rnn family needs sequences (examples, time, features), got shape {x}"
    if x[1] != spec.length:
        return f"x: sequences of length {x[1]}, the spec's length is {spec.length}"
    if x[2] != spec.in_dim:
        return f"x: {x[2]} features per time step, the spec's in_dim is {spec.in_dim}"
    y = np.shape(data.y)
    per_step = spec.readout == "sequence"
    if data.classes:
        if spec.out_dim != data.classes:
            return f"out_dim: {spec.out_dim}, the data have {data.classes} classes"
        want = (x[0], x[1]) if per_step else (x[0],)
    else:
        want = (x[0], x[1], spec.out_dim) if per_step else (x[0], spec.out_dim)
    if y != want:
        return (f"y: shape {y}, readout {spec.readout!r} with out_dim {spec.out_dim} "
                f"needs {want}")
    return None


RNN_TRAIN_HOOKS = TrainHooks(
    init=sample_params,
    apply=apply,
    stacked=lambda name, leaf: False,
    is_output=lambda name: leaf_kind(name) == "readout",
    layer_leaves=_layer_leaves,
    layers=lambda spec: len(kernel_names(spec)),
    param_count=param_count,
    activation_bytes=activation_bytes,
    check_data=check_data,
    coords=_coords,
)

RNN_FAMILY = ModelFamily(
    name="rnn",
    spec_type=RNNSpec,
    at_depth=lambda spec, depth: spec.replace(length=depth),
    program_key=RNNSpec.static_key,
    scalars=scalars,
    measure=_measure,
    measured=THROUGH_TIME,
    memory=_memory,
    coords=_coords,
    fingerprint=lambda spec: (f"rnn-v{RNN_VERSION}",),
    why_unfingerprintable=lambda spec: None,
    label=_label,
    train=RNN_TRAIN_HOOKS,
)

__all__ = ["RNNSpec", "RecurrentNet", "ElmanCell", "TappedCell", "RNN_FAMILY", "THROUGH_TIME",
           "init_params", "sample_params", "scale_params", "apply", "scalars",
           "through_time", "state_jacobians", "spectral_norm", "spectral_radius",
           "sample_network", "check_data", "param_count", "activation_bytes",
           "kernel_names", "leaf_kind", "recurrent_kernels", "haar_orthogonal",
           "state_vector", "state_carry"]
