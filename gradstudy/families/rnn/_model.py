"""The recurrent family's Linen modules and parameters: Elman, LSTM and GRU cells with
state taps, unit-scale initializers scaled afterwards (ρ and the input scale traced), and the
parameter layout (see :mod:`gradstudy.families.rnn._spec` for the cells, the initialisation
and the leaves)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from gradstudy._numerics import safe_norm
from gradstudy.families.rnn._spec import _GATES, RNNSpec


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
