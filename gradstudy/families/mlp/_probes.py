"""Per-layer gradient probes at initialization, for every requested depth in one program.

The depth-d network is the first d layers of the max-depth stack with the shared readout
(nested networks: marginally each depth-d net has exactly its own init distribution).
``gradient_norms`` runs the forward pass once through ``max(depths)`` layers, cut into
segments at the requested depths, then back-propagates segment by segment from the
deepest output.  Entering segment j the cotangents of all depths ≥ d_j are stacked on a
leading axis and pulled back together with one vmapped VJP, so a depth-d network never
pays for layers it does not have: no masked FLOPs, and the forward pass is shared.

Per-layer quantities are read off perturbations (see :mod:`gradstudy.families.mlp`):
‖∂L/∂h_l‖ directly, and ‖∂L/∂W_l‖_F through the Gram identity
‖aᵀg‖_F² = Σ (a aᵀ) ⊙ (g gᵀ), which never forms the (fan_in x fan_out) gradient.

References:
    Schoenholz et al. (2017), Deep information propagation (back-propagated signal q̃_l).
    Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward
    neural networks (histograms of back-propagated gradients, layer Jacobians).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from gradstudy import status
from gradstudy._numerics import max_abs_scale, safe_global_norm, safe_norm
from gradstudy._validate import require_dtype
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._model import (
    InputLayer,
    Readout,
    hidden_stack,
    no_path,
    zero_perturbation,
)
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._losses import LOSS_FUNCTIONS, PROBE_LOSSES

# What ``gradient_norms`` returns for one network: name -> (dims, description).  A sweep
# puts (point, seed) in front; storage takes the dims from here.
MEASURED = {
    "weight_grad_norm": (("depth", "layer"), "Frobenius norm of dL/dW_l"),
    "bias_grad_norm": (("depth", "layer"), "L2 norm of dL/db_l"),
    "backprop_norm": (("depth", "layer"),
                      "L2 norm of dL/dh_l over batch and units (back-propagated signal)"),
    "loss": (("depth",), "loss at initialization"),
    "input_grad_norm": (("depth",), "L2 norm of dL/dx"),
    "readout_grad_norm": (("depth",), "L2 norm of the readout parameters' gradient"),
    "preact_mean": (("layer",), "mean of the pre-activations h_l"),
    "preact_q": (("layer",), "second moment q_l of the pre-activations h_l"),
    "backprop": (("depth", "layer", "example", "unit"), "back-propagated signal dL/dh_l"),
}


def _check_depths(spec: MLPSpec, depths: Sequence[int]) -> tuple[int, ...]:
    depths = tuple(sorted({int(d) for d in depths}))
    if not depths or depths[0] < 1 or depths[-1] > spec.depth:
        raise ConfigError(f"depths: must be integers in [1, {spec.depth}] (spec.depth), "
                         f"got {depths}")
    return depths


def _segment_fn(spec: MLPSpec, start: int, stop: int):
    """Layers [start, stop) (0 = input layer) as ``(h_in, perturbation, params) -> h_out``."""
    n_hidden = stop - max(start, 1)

    def run(h, perturbation, params):
        stats = []
        offset = 0
        if start == 0:
            p0 = jax.tree.map(lambda p: p[0], perturbation)
            h, st = InputLayer(spec, with_gram=True).apply({"params": params["input_layer"]},
                                                           h, p0)
            stats.append(jax.tree.map(lambda s: s[None], st))
            offset = 1
        if n_hidden > 0:
            rest = jax.tree.map(lambda p: p[offset:], perturbation)
            h, st = hidden_stack(spec, n_hidden, with_gram=True).apply(
                {"params": params["hidden"]}, h, rest)
            stats.append(st)
        stats = jax.tree.map(lambda *s: jnp.concatenate(s), *stats)
        return h, stats

    return run


def _segment_params(params: dict, start: int, stop: int) -> dict:
    seg = {}
    if start == 0:
        seg["input_layer"] = params["input_layer"]
    lo, hi = max(start, 1) - 1, stop - 1
    if hi > lo:
        seg["hidden"] = jax.tree.map(lambda p: p[lo:hi], params["hidden"])
    return seg


def _readout_loss(spec: MLPSpec, loss_name: str):
    loss_fn = LOSS_FUNCTIONS[loss_name]

    def loss(h, readout_params, targets):
        y = Readout(spec).apply({"params": readout_params}, h)
        blocked = no_path(get_activation(spec.activation), h)
        return loss_fn(y, targets), (jnp.all(jnp.isfinite(y)), blocked)

    return loss


def gradient_norms(spec: MLPSpec, params: dict, x: jax.Array, targets: jax.Array,
                   depths: Sequence[int], keep_backprop: bool = False,
                   loss: str = "mse") -> dict:
    """Per-layer gradient norms of the loss for every depth in ``depths``.

    Args:
        spec: the model; ``spec.depth`` must be ≥ ``max(depths)``.
        params: parameters of ``MLP(spec)`` (gains already applied).
        x: inputs (batch, in_dim).
        targets: regression targets (batch, out_dim).
        depths: depths to measure (sorted, de-duplicated).
        keep_backprop: also return the raw back-propagated signals ∂L/∂h_l.
        loss: "mse" (½‖y − t‖², batch mean) or "linear" (⟨y, t⟩, batch mean: an output
            cotangent independent of the network, as mean-field theory assumes).

    Returns:
        dict of arrays; ``n`` = len(depths), ``L`` = max(depths); entries for layers
        l > d of a depth-d network are NaN:
        ``weight_grad_norm`` (n, L) ‖∂L/∂W_l‖_F; ``bias_grad_norm`` (n, L);
        ``backprop_norm`` (n, L) ‖∂L/∂h_l‖ over batch and units;
        ``loss``, ``input_grad_norm`` ‖∂L/∂x‖, ``readout_grad_norm`` (n,);
        ``preact_mean``, ``preact_q`` (L,) forward statistics of h_l;
        ``backprop`` (n, L, batch, width) if ``keep_backprop``;
        ``<name>_status`` (int8, same shape) for each of the above but ``backprop``: why a
        value is not a normal number (:mod:`gradstudy.status`). Every gradient of a network
        whose forward pass is not finite is NaN (status ``FORWARD_NONFINITE``).
    """
    require_dtype(spec)
    depths = _check_depths(spec, depths)
    bounds = (0,) + depths
    # Without normalisation ∂L/∂z_l is ∂L/∂h_l (times α on residual layers), so the second
    # perturbation, and the cotangent it costs in every backward step, is not needed.
    dense_pert = spec.norm != "none"
    if loss not in PROBE_LOSSES:
        raise ConfigError(f"loss: unknown value {loss!r}; allowed: {', '.join(PROBE_LOSSES)}")
    loss_fn = jax.value_and_grad(_readout_loss(spec, loss), argnums=(0, 1), has_aux=True)
    fwd = _forward(spec, params, x, targets, bounds, dense_pert, loss_fn)
    bwd = _backward(spec, fwd, bounds, x.shape[0], dense_pert, keep_backprop)
    stats = jax.tree.map(lambda *s: jnp.concatenate(s), *fwd.stats)
    finite = _finiteness(stats, depths, fwd.outputs_finite)
    per_depth = {"weight_grad_norm": bwd.weight_norm, "bias_grad_norm": bwd.bias_norm,
                 "backprop_norm": bwd.backprop_norm}
    per_network = {"loss": jnp.stack(fwd.losses), "input_grad_norm": safe_norm(bwd.ct, (1, 2)),
                   "readout_grad_norm": jnp.stack(fwd.readout_norms)}
    structural = _structural_zeros(stats, depths, fwd.readouts_blocked)
    out = _with_status(per_depth, per_network, stats, finite, structural)
    if keep_backprop:
        out["backprop"] = status.mask_forward(bwd.backprop,
                                              finite.network[:, None, None, None])
    return out


class _Forward(NamedTuple):
    """What the shared forward pass keeps, one entry per segment (= per requested depth)."""

    vjps: list  # the segment's VJP: cotangent of its output -> (of its input, perturbations)
    grams: list  # (Gram a aᵀ of every dense input, its max-abs scale)
    stats: list  # forward statistics of the segment's layers
    losses: list  # loss of the depth-d network
    loss_cts: list  # ∂L/∂h_d of the depth-d network
    readout_norms: list  # ‖∂L/∂(readout parameters)‖
    outputs_finite: list  # the depth-d network's output is finite
    readouts_blocked: list  # no path from the readout back to h_d


def _forward(spec: MLPSpec, params: dict, x, targets, bounds: tuple[int, ...],
             dense_pert: bool, loss_fn) -> _Forward:
    """Once through L layers, keeping each segment's VJP and each depth's loss."""
    batch, width, dtype = x.shape[0], spec.width, jnp.dtype(spec.dtype)
    h = x
    fwd = _Forward([], [], [], [], [], [], [], [])
    for start, stop in zip(bounds[:-1], bounds[1:]):
        pert = zero_perturbation(batch, width, dtype, stop - start, dense=dense_pert)
        seg = _segment_params(params, start, stop)
        fn = _segment_fn(spec, start, stop)
        h, vjp, stats = jax.vjp(lambda h_, p_, seg=seg, fn=fn: fn(h_, p_, seg), h, pert,
                                has_aux=True)
        fwd.vjps.append(vjp)
        fwd.grams.append((stats.pop("dense_input_gram"), stats.pop("dense_input_scale")))
        fwd.stats.append(stats)
        (loss, (output_finite, blocked)), (ct_h, ct_readout) = loss_fn(h, params["readout"],
                                                                         targets)
        fwd.losses.append(loss)
        fwd.outputs_finite.append(output_finite)
        fwd.readouts_blocked.append(blocked)
        fwd.loss_cts.append(ct_h)
        fwd.readout_norms.append(safe_global_norm(ct_readout))
    return fwd


class _Backward(NamedTuple):
    """Per-(depth, layer) norms (NaN where the layer is deeper than the network), the
    cotangent of the inputs, and the raw signals (None unless kept)."""

    weight_norm: jax.Array
    bias_norm: jax.Array
    backprop_norm: jax.Array
    backprop: jax.Array | None
    ct: jax.Array


def _backward(spec: MLPSpec, fwd: _Forward, bounds: tuple[int, ...], batch: int,
              dense_pert: bool, keep_backprop: bool) -> _Backward:
    """Deepest segment first; the cotangent stack grows by one depth per segment."""
    n, L = len(bounds) - 1, bounds[-1]
    width, dtype = spec.width, jnp.dtype(spec.dtype)
    nan = jnp.full((n, L), jnp.nan, dtype)
    weight_norm, bias_norm, backprop_norm = nan, nan, nan
    backprop = jnp.full((n, L, batch, width), jnp.nan, dtype) if keep_backprop else None

    ct = jnp.zeros((0, batch, width), dtype)
    for j in reversed(range(n)):
        start, stop = bounds[j], bounds[j + 1]
        ct = jnp.concatenate([fwd.loss_cts[j][None], ct])  # rows: depths j..n-1
        ct, ct_pert = jax.vmap(fwd.vjps[j])(ct)
        delta = ct_pert["h"]  # (rows, layers, batch, width)
        g = ct_pert["dense"] if dense_pert else delta * _dense_scale(spec, start, stop, dtype)
        weight_norm = weight_norm.at[j:, start:stop].set(_weight_norms(*fwd.grams[j], g))
        bias_norm = bias_norm.at[j:, start:stop].set(safe_norm(jnp.sum(g, axis=2), (2,)))
        backprop_norm = backprop_norm.at[j:, start:stop].set(safe_norm(delta, (2, 3)))
        if keep_backprop:
            backprop = backprop.at[j:, start:stop].set(delta)
    return _Backward(weight_norm, bias_norm, backprop_norm, backprop, ct)


def _weight_norms(gram_a: jax.Array, scale_a: jax.Array, g: jax.Array) -> jax.Array:
    """‖∂L/∂W_l‖_F = ‖aᵀg‖_F per (row, layer) from the scaled Gram of the inputs a and
    the cotangents g (rows, layers, batch, width), without forming aᵀg."""
    # every norm is taken of max|.|-scaled values: squares of 1e-20 underflow in float32
    scale_g = max_abs_scale(g, axis=(2, 3))[..., None, None]
    gs = g / scale_g
    w2 = jnp.einsum("lbc,rlbc->rl", gram_a, jnp.einsum("rlbw,rlcw->rlbc", gs, gs))
    return scale_a * scale_g[..., 0, 0] * jnp.sqrt(jnp.maximum(w2, 0))


class _Finiteness(NamedTuple):
    """Which forward values are finite."""

    network: jax.Array  # (n,) the depth-d network's h_1..h_d and output
    present: jax.Array  # (n, L) layer l exists in the depth-d network
    before: jax.Array  # (L,) h_1..h_{l-1}


def _finiteness(stats: dict, depths: tuple[int, ...], outputs_finite: list) -> _Finiteness:
    """A depth-d network's forward pass is finite if h_1..h_d and its output are; otherwise
    none of its gradients means anything (relu'(inf) = 0 turns a NaN cotangent into 0)."""
    L = depths[-1]
    layers_finite = jnp.cumprod(stats["finite"].astype(jnp.int32)).astype(bool)  # h_1..h_l
    network_finite = layers_finite[jnp.asarray(depths) - 1] & jnp.stack(outputs_finite)  # (n,)
    present = jnp.arange(L)[None, :] < jnp.asarray(depths)[:, None]  # (n, L)
    before = jnp.concatenate([jnp.ones((1,), bool), layers_finite[:-1]])  # h_1..h_{l-1}
    return _Finiteness(network_finite, present, before)


def _structural_zeros(stats: dict, depths: tuple[int, ...], readouts_blocked: list) -> dict:
    """Per per-depth quantity, (n, L): where it is exactly 0 by structure."""
    # δ_l of a depth-d network is exactly 0 by structure if no path leads back from the
    # output to h_l: φ' = 0 everywhere at some h_m, l ≤ m ≤ d (HiddenLayer m+1 or readout)
    blocked = stats["blocked"].astype(jnp.int32)  # (L,): layer l's input h_{l-1} blocks
    after = jnp.concatenate([jnp.cumsum(blocked[::-1])[::-1], jnp.zeros((1,), jnp.int32)])
    d = jnp.asarray(depths)[:, None]
    blocked_between = (after[None, 1:] - after[d]) > 0  # any blocked layer m in (l, d]
    no_path = blocked_between | jnp.stack(readouts_blocked)[:, None]  # (n, L)
    return {"weight_grad_norm": no_path | stats["input_zero"][None, :],
            "bias_grad_norm": no_path, "backprop_norm": no_path}


def _with_status(per_depth: dict, per_network: dict, stats: dict, finite: _Finiteness,
                 structural: dict) -> dict:
    """Every value (gradients of non-finite networks NaN) and its ``<name>_status``."""
    out = {}
    for name, value in per_depth.items():
        out[name] = status.mask_forward(value, finite.network[:, None])
        out[name + "_status"] = status.classify(value, finite.network[:, None],
                                                finite.present, structural[name])
    for name, value in per_network.items():
        # the loss of an overflowed network is itself the non-finite forward value: keep it
        out[name] = value if name == "loss" else status.mask_forward(value, finite.network)
        out[name + "_status"] = status.classify(value, finite.network)
    for name in ("preact_mean", "preact_q"):
        out[name] = stats[name]
        out[name + "_status"] = status.classify(stats[name], finite.before)
    return out


def _dense_scale(spec: MLPSpec, start: int, stop: int, dtype) -> jax.Array:
    """∂h_l/∂z_l per layer in [start, stop) without normalisation: α on residual layers."""
    alpha = 1.0 if spec.residual_alpha is None else spec.residual_alpha
    scale = jnp.array([1.0 if l == 0 else alpha for l in range(start, stop)], dtype)
    return scale[None, :, None, None]


def backprop_histograms(backprop: jax.Array, edges: jax.Array) -> jax.Array:
    """Histogram counts of back-propagated gradients per leading index.

    Args:
        backprop: (..., batch, width) signals, e.g. ``gradient_norms(..)["backprop"]``.
        edges: (n_bins + 1,) increasing bin edges; bins are [e_i, e_{i+1}) and the last
            one closed, as in ``numpy.histogram``; values outside are not counted.

    Returns:
        (..., n_bins) counts.
    """
    flat = backprop.reshape(backprop.shape[:-2] + (-1,))
    n_bins = edges.shape[0] - 1
    bins = jnp.searchsorted(edges, flat, side="right") - 1
    bins = jnp.where(flat == edges[-1], n_bins - 1, bins)  # last bin closed, as numpy's
    inside = (flat >= edges[0]) & (flat <= edges[-1])
    onehot = (bins[..., None] == jnp.arange(n_bins)) & inside[..., None]
    return jnp.sum(onehot, axis=-2)


def layer_jacobian_singular_values(spec: MLPSpec, params: dict, x: jax.Array) -> jax.Array:
    """Singular values of the layer Jacobians ∂h_l/∂h_{l-1}, l = 2..depth, per example.

    For a plain layer J_l = W_lᵀ diag(φ'(h_{l-1})); normalisation (LayerNorm) and residual
    branches are included through ``jax.jacrev`` of the layer itself, one example at a time.

    Returns:
        (depth - 1, batch, width) singular values, descending.
    """
    if spec.depth < 2:
        raise ConfigError("depth: layer Jacobians need depth >= 2")
    if spec.norm == "batchnorm":
        raise ConfigError("norm: per-example layer Jacobians are undefined with batchnorm")
    require_dtype(spec)
    dtype = jnp.dtype(spec.dtype)
    one = zero_perturbation(1, spec.width, dtype, 1, dense=False)
    h1, _ = InputLayer(spec).apply({"params": params["input_layer"]}, x,
                                   zero_perturbation(x.shape[0], spec.width, dtype, dense=False))

    def layer(h_prev, p):
        def f(hv):  # one example through one hidden layer
            out, _ = hidden_stack(spec, 1).apply(
                {"params": jax.tree.map(lambda a: a[None], p)}, hv[None], one)
            return out[0]

        jac = jax.vmap(jax.jacrev(f))(h_prev)  # (batch, width, width)
        return jax.vmap(f)(h_prev), jnp.linalg.svd(jac, compute_uv=False)

    _, svals = jax.lax.scan(layer, h1, params["hidden"])
    return svals
