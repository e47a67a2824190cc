"""Pure functional Flax Linen MLP with the hidden layers stacked by ``nn.scan``.

Parameters of layers 2..depth carry a leading layer axis (``params["hidden"]``), so every
per-layer quantity is one reduction over the non-layer axes.  Each layer adds two
perturbations (zeros in normal use): ``perturbation["h"]`` to its output pre-activation h_l,
whose gradient is the back-propagated signal ∂L/∂h_l, and ``perturbation["dense"]`` to the
dense output z_l = W_l a_l + b_l, whose gradient g_l gives ∂L/∂W_l = a_lᵀ g_l and
∂L/∂b_l = Σ_batch g_l (``Module.perturb``-style probing that also works inside the
scanned stack).  With ``with_gram=True`` a layer also returns the batch Gram matrix
a_l a_lᵀ of its dense input, so that ‖∂L/∂W_l‖_F² = Σ (a_l a_lᵀ) ⊙ (g_l g_lᵀ) is obtained
without forming the (fan_in x fan_out) weight gradient.

Gains are applied *after* sampling (:func:`apply_gains`): models are initialised at unit
gain and scaled by σ_w (kernels) and σ_b (biases), so one compiled program can vmap over
σ_w and σ_b.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gradstudy._numerics import max_abs_scale
from gradstudy._threefry import use_unrolled_threefry
from gradstudy._validate import require_dtype
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._initializers import get_initializer
from gradstudy.nn._normalize import Normalize


def _bias_init(key, shape, dtype=jnp.float32):
    # unit-variance biases; apply_gains multiplies by σ_b
    return jax.random.normal(key, shape, dtype)


def _dense(spec: MLPSpec, features: int, name: str) -> nn.Dense:
    dtype = jnp.dtype(spec.dtype)
    return nn.Dense(features, kernel_init=get_initializer(spec.init).sample,
                    bias_init=_bias_init, dtype=dtype, param_dtype=dtype, name=name)


def _stats(h, a, with_gram, blocked=None, a_from=None):
    # per-layer forward statistics of the pre-activations: mean and second moment q_l
    stats = {"preact_mean": jnp.mean(h), "preact_q": jnp.mean(h**2),
             # whether the forward pass is still finite here: the probes turn every gradient
             # of a network that overflowed into NaN (relu'(inf) = 0 would report 0)
             "finite": jnp.all(jnp.isfinite(h))}
    if with_gram:
        # scaled by max|a| so that squaring tiny activations cannot underflow
        scale = max_abs_scale(a)
        stats["dense_input_gram"] = (a / scale) @ (a / scale).T
        stats["dense_input_scale"] = scale
        # structural zeros, so that an exact 0 gradient is not mistaken for underflow:
        # every dense input is 0 (∂L/∂W_l = 0), or no path leads back through this layer
        # (φ' = 0 at every unit and example, e.g. all ReLUs dead)
        # (a = φ(h_{l-1}) all 0 because h_{l-1} underflowed to exact zeros is underflow)
        stats["input_zero"] = jnp.all(a == 0)
        if a_from is not None:
            stats["input_zero"] &= jnp.all(a_from != 0)
        stats["blocked"] = jnp.zeros((), bool) if blocked is None else blocked
    return stats


def no_path(phi, h) -> jax.Array:
    """True where φ'(h) = 0 for every entry of ``h``: nothing back-propagates through φ.

    Only by structure: if an entry of ``h`` is exactly 0 (a forward pass that underflowed,
    e.g. a float32 ReLU net at small σ_w, where relu'(0) = 0), the zero is not structural
    and this is False, so that the gradient's 0 is recorded as underflow.
    """
    return (jnp.all(jax.jvp(phi, (h,), (jnp.ones_like(h),))[1] == 0)
            & jnp.all(h != 0))


def zero_perturbation(batch: int, width: int, dtype, layers: int | None = None,
                      dense: bool = True) -> dict:
    """Zero perturbations; ``dense=False`` omits the dense-output one (then g_l is read off
    ∂L/∂h_l, valid when there is no normalisation between z_l and h_l)."""
    shape = (batch, width) if layers is None else (layers, batch, width)
    out = {"h": jnp.zeros(shape, dtype)}
    if dense:
        out["dense"] = jnp.zeros(shape, dtype)
    return out


def _add_dense_perturbation(z, perturbation):
    return z + perturbation["dense"] if "dense" in perturbation else z


class InputLayer(nn.Module):
    """h_1 = Norm(W_1 x + b_1) + perturbation."""

    spec: MLPSpec
    with_gram: bool = False

    @nn.compact
    def __call__(self, x, perturbation):
        z = _add_dense_perturbation(_dense(self.spec, self.spec.width, "dense")(x), perturbation)
        h = Normalize(self.spec.norm, jnp.dtype(self.spec.dtype), name="norm")(z)
        h = h + perturbation["h"]
        return h, _stats(h, x, self.with_gram)


class HiddenLayer(nn.Module):
    """h_l = Norm(W_l φ(h_{l-1}) + b_l) (+ h_{l-1} residual, branch scale α) + perturbation.

    Written as a scan body: ``(carry=h_{l-1}, x=perturbation) -> (h_l, stats_l)``.
    """

    spec: MLPSpec
    with_gram: bool = False

    @nn.compact
    def __call__(self, h, perturbation):
        h_in = h
        a = get_activation(self.spec.activation)(h)
        z = _add_dense_perturbation(_dense(self.spec, self.spec.width, "dense")(a), perturbation)
        z = Normalize(self.spec.norm, jnp.dtype(self.spec.dtype), name="norm")(z)
        if self.spec.residual_alpha is not None:
            z = h + self.spec.residual_alpha * z
        h = z + perturbation["h"]
        blocked = None
        if self.with_gram and self.spec.residual_alpha is None:
            blocked = no_path(get_activation(self.spec.activation), h_in)
        return h, _stats(h, a, self.with_gram, blocked, a_from=h_in)


class Readout(nn.Module):
    """y = W_out φ(h_depth) + b_out."""

    spec: MLPSpec

    @nn.compact
    def __call__(self, h):
        phi = get_activation(self.spec.activation)
        return _dense(self.spec, self.spec.out_dim, "dense")(phi(h))


def hidden_stack(spec: MLPSpec, length: int, with_gram: bool = False, name: str | None = None):
    """``length`` HiddenLayers scanned with independent parameters per layer."""
    scanned = nn.scan(HiddenLayer, variable_axes={"params": 0}, split_rngs={"params": True},
                      in_axes=0, out_axes=0, length=length)
    return scanned(spec, with_gram, name=name)


class MLP(nn.Module):
    """The whole network; ``__call__(x, perturbations=None) -> (y, per-layer stats)``.

    ``perturbations`` is ``{"dense": ..., "h": ...}`` of shape (depth, batch, width) each;
    per-layer stats have a leading layer axis of length ``depth``.
    """

    spec: MLPSpec

    def setup(self):
        self.input_layer = InputLayer(self.spec)
        if self.spec.depth > 1:
            self.hidden = hidden_stack(self.spec, self.spec.depth - 1)
        self.readout = Readout(self.spec)

    def __call__(self, x, perturbations=None):
        spec = self.spec
        require_dtype(spec)
        if perturbations is None:
            perturbations = zero_perturbation(x.shape[0], spec.width, x.dtype, spec.depth)
        h, stats = self.input_layer(x, jax.tree.map(lambda p: p[0], perturbations))
        stats = jax.tree.map(lambda s: s[None], stats)
        if spec.depth > 1:
            h, hidden_stats = self.hidden(h, jax.tree.map(lambda p: p[1:], perturbations))
            stats = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), stats, hidden_stats)
        return self.readout(h), stats


def init_params(spec: MLPSpec, key: jax.Array) -> dict:
    """Unit-gain parameters of ``MLP(spec)`` (apply :func:`apply_gains` for σ_w, σ_b)."""
    require_dtype(spec)
    use_unrolled_threefry()  # the same bits, 3x faster on a CPU (gradstudy._threefry)
    x = jnp.zeros((1, spec.input_dim), jnp.dtype(spec.dtype))
    return MLP(spec).init(key, x)["params"]


LAYER_KINDS = ("input_layer", "hidden", "readout")


def apply_gains(params: dict, kernel_scale, sigma_b) -> dict:
    """Scale dense kernels by ``kernel_scale`` and dense biases by σ_b (may be traced).

    ``kernel_scale`` is one number (σ_w), or three, for the input layer, the hidden stack
    and the readout (see ``MLPSpec.kernel_scales``).
    """
    scales = jnp.broadcast_to(jnp.asarray(kernel_scale), (3,))

    def scale(path, leaf):
        names = [getattr(k, "key", None) for k in path]
        if "dense" not in names:
            return leaf  # normalisation scale/offset keep their unit init
        if names[-1] == "kernel":
            return leaf * scales[LAYER_KINDS.index(names[0])].astype(leaf.dtype)
        return leaf * jnp.asarray(sigma_b, leaf.dtype)

    return jax.tree_util.tree_map_with_path(scale, params)


def sample_params(spec: MLPSpec, key: jax.Array) -> dict:
    """Parameters of ``MLP(spec)`` with its init and gains, drawn exactly as sweeps draw them
    (``static_key`` sampler × ``kernel_scales``)."""
    return apply_gains(init_params(spec.static_key(), key), spec.kernel_scales(), spec.sigma_b)
