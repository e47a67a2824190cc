"""Per-layer gradient probes at initialization, for every requested depth in one program.

The depth-d network is the first d layers of the max-depth stack with the shared readout
(nested networks: marginally each depth-d net has exactly its own init distribution).
``gradient_norms`` runs the forward pass once through ``max(depths)`` layers, cut into
segments at the requested depths, keeping per layer the dense input a_l = φ(h_{l-1}) and
φ'(h_{l-1}) (and z_l with normalisation), then back-propagates segment by segment from the
deepest output.  Entering segment j the cotangents of all depths ≥ d_j are stacked on a
leading axis and pulled back together by a hand-written reverse scan (∂L/∂h_{l-1} =
(g_l W_lᵀ) ⊙ φ'(h_{l-1}), plus ∂L/∂h_l on residual layers; ``jax.vjp`` only of the
normalisation), so a depth-d network never pays for layers it does not have: no masked
FLOPs, and the forward pass is shared.  The same numbers as ``jax.grad`` of each depth-d
network to float32 rounding (tested against it and against float64 finite differences).

Per layer: ‖∂L/∂h_l‖ (the back-propagated signal δ_l), ‖∂L/∂b_l‖ = ‖Σ_batch g_l‖ with
g_l = ∂L/∂z_l the cotangent of the dense output, and ‖∂L/∂W_l‖_F = ‖a_lᵀ g_l‖_F, through
the Gram identity ‖aᵀg‖_F² = Σ (a aᵀ) ⊙ (g gᵀ) (2·B²·w FLOPs per cotangent) where the fan-in
is at least the batch B, by forming aᵀg (2·B·fan_in·w) where it is smaller.

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
from gradstudy.families.mlp._jacobians import first_hidden_state, one_example_layer
from gradstudy.families.mlp._model import (
    Readout,
    no_path,
)
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._losses import LOSS_FUNCTIONS, PROBE_LOSSES
from gradstudy.nn._normalize import Normalize

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
    if loss not in PROBE_LOSSES:
        raise ConfigError(f"loss: unknown value {loss!r}; allowed: {', '.join(PROBE_LOSSES)}")
    loss_fn = jax.value_and_grad(_readout_loss(spec, loss), argnums=(0, 1), has_aux=True)
    fwd = _forward(spec, params, x, targets, bounds, loss_fn)
    bwd = _backward(spec, params, fwd, bounds, x.shape[0], keep_backprop)
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


class _Segment(NamedTuple):
    """What the shared forward pass keeps of one segment (layers [start, stop), 0 = the
    input layer) for its backward pass."""

    start: int
    stop: int
    input_layer: dict | None  # {"a": x, "z": dense output} if the segment holds layer 1
    hidden: dict | None  # stacked over its hidden layers: "a" (dense inputs φ(h_{l-1})),
    #   "d" (φ'(h_{l-1})), "z" (dense outputs, with normalisation only), "gram"/"scale"


def _norm_fn(spec: MLPSpec, norm_params):
    """The layer's normalisation as ``z -> Norm(z)`` (identity without one)."""
    if spec.norm == "none":
        return lambda z: z
    norm = Normalize(spec.norm, jnp.dtype(spec.dtype))
    return lambda z: norm.apply({"params": norm_params}, z)


def _dense(a, dense):
    return a @ dense["kernel"] + dense["bias"]


def _preact_stats(h) -> dict:
    # forward statistics of h_l; "finite": the probes turn every gradient of a network that
    # overflowed into NaN (relu'(inf) = 0 would report 0)
    return {"preact_mean": jnp.mean(h), "preact_q": jnp.mean(h * h),
            "finite": jnp.all(jnp.isfinite(h))}


def _uses_gram(fan_in: int, batch: int) -> bool:
    """‖aᵀg‖_F by the Gram identity (a aᵀ once, g gᵀ per cotangent: 2·B²·w FLOPs) or by
    forming aᵀg (2·B·fan_in·w): the Gram is cheaper once fan_in ≥ batch."""
    return fan_in >= batch


def _forward_segment(spec: MLPSpec, params: dict, h, start: int, stop: int):
    """Layers [start, stop) from h; (h_stop, :class:`_Segment`, per-layer stats)."""
    phi = get_activation(spec.activation)
    batch = h.shape[0]
    stats, input_layer, hidden = [], None, None
    if start == 0:
        p = params["input_layer"]
        z = _dense(h, p["dense"])
        x, h = h, _norm_fn(spec, p.get("norm"))(z)
        input_layer = {"a": x, "z": z}
        if _uses_gram(x.shape[1], batch):
            input_layer.update(_scaled_gram(x[None]))
        st = _preact_stats(h)
        # structural zeros: every dense input 0 (∂L/∂W_1 = 0); nothing blocks layer 1
        st.update(input_zero=jnp.all(x == 0), blocked=jnp.zeros((), bool))
        stats.append(jax.tree.map(lambda s: s[None], st))
    lo, hi = max(start, 1) - 1, stop - 1
    if hi > lo:
        layer_params = jax.tree.map(lambda p: p[lo:hi], params["hidden"])
        alpha = spec.residual_alpha

        def step(h_prev, p):
            # a = φ(h_{l-1}) and φ'(h_{l-1}) in one pass; the backward pass needs both
            a, d = jax.jvp(phi, (h_prev,), (jnp.ones_like(h_prev),))
            z = _dense(a, p["dense"])
            n = _norm_fn(spec, p.get("norm"))(z)
            h_new = n if alpha is None else h_prev + alpha * n
            st = _preact_stats(h_new)
            # structural zeros, so that an exact 0 gradient is not mistaken for underflow:
            # every dense input 0 (∂L/∂W_l = 0), or no path back through this layer (φ' = 0
            # at every unit and example, e.g. all ReLUs dead); an h_{l-1} that underflowed
            # to exact zeros is underflow, not structure
            nonzero = jnp.all(h_prev != 0)
            st["input_zero"] = jnp.all(a == 0) & nonzero
            st["blocked"] = (jnp.zeros((), bool) if alpha is not None
                             else jnp.all(d == 0) & nonzero)
            keep = {"a": a, "d": d}
            if spec.norm != "none":
                keep["z"] = z
            return h_new, (keep, st)

        h, (hidden, st) = jax.lax.scan(step, h, layer_params)
        if _uses_gram(spec.width, batch):
            hidden.update(_scaled_gram(hidden["a"]))
        stats.append(st)
    stats = jax.tree.map(lambda *s: jnp.concatenate(s), *stats)
    return h, _Segment(start, stop, input_layer, hidden), stats


def _scaled_gram(a) -> dict:
    """Per layer of ``a`` (layers, batch, fan_in): the Gram (a aᵀ) of max|a|-scaled values
    (squares of tiny activations cannot underflow) and that scale."""
    scale = max_abs_scale(a, axis=(1, 2))
    a = a / scale[:, None, None]
    return {"gram": jnp.einsum("lbi,lci->lbc", a, a), "scale": scale}


class _Forward(NamedTuple):
    """The shared forward pass: per segment (= per requested depth)."""

    segments: list  # :class:`_Segment`
    stats: list  # forward statistics of the segment's layers
    losses: list  # loss of the depth-d network
    loss_cts: list  # ∂L/∂h_d of the depth-d network
    readout_norms: list  # ‖∂L/∂(readout parameters)‖
    outputs_finite: list  # the depth-d network's output is finite
    readouts_blocked: list  # no path from the readout back to h_d


def _forward(spec: MLPSpec, params: dict, x, targets, bounds: tuple[int, ...],
             loss_fn) -> _Forward:
    """Once through L layers, keeping what each segment's backward pass needs and each
    depth's loss."""
    h = x
    fwd = _Forward([], [], [], [], [], [], [])
    for start, stop in zip(bounds[:-1], bounds[1:]):
        h, segment, stats = _forward_segment(spec, params, h, start, stop)
        fwd.segments.append(segment)
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


def _layer_norms(delta, g, a, gram=None, scale_a=None, keep_backprop=False) -> dict:
    """Norms of one layer for every cotangent row: ‖δ‖ (δ = ∂L/∂h_l), ‖Σ_batch g‖ and
    ‖aᵀg‖_F (g = ∂L/∂z_l, a the dense input), the latter from the Gram of a if given,
    else by forming aᵀg.  Every norm is taken of max|.|-scaled values: squares of 1e-20
    underflow in float32."""
    out = {"backprop": safe_norm(delta, (1, 2))}
    scale_g = max_abs_scale(g, axis=(1, 2))
    gs = g / scale_g[:, None, None]
    out["bias"] = scale_g * safe_norm(jnp.sum(gs, axis=1), (1,))
    if gram is not None:
        # an elementwise product and a sum: as one contraction (a matrix-vector product
        # over B²) XLA relays the Grams out first
        w2 = jnp.sum(gram * jnp.einsum("rbw,rcw->rbc", gs, gs), axis=(1, 2))
        out["weight"] = scale_a * scale_g * jnp.sqrt(jnp.maximum(w2, 0))
    else:
        scale_a = max_abs_scale(a)
        grad = jnp.einsum("bi,rbj->rij", a / scale_a, gs)  # (rows, fan_in, fan_out)
        out["weight"] = scale_a * scale_g * jnp.sqrt(jnp.sum(grad * grad, axis=(1, 2)))
    if keep_backprop:
        out["delta"] = delta
    return out


def _backward_segment(spec: MLPSpec, params: dict, seg: _Segment, ct, keep_backprop: bool):
    """Pull the stacked cotangents ``ct`` (rows, batch, width) = ∂L/∂h_stop back through
    the segment; (∂L/∂(segment input), per-layer norms (layers, rows))."""
    per_layer = []
    if seg.hidden is not None:
        lo, hi = max(seg.start, 1) - 1, seg.stop - 1
        layer_params = jax.tree.map(lambda p: p[lo:hi], params["hidden"])
        alpha = spec.residual_alpha

        def step(ct, xs):
            keep, p = xs
            delta = ct  # ∂L/∂h_l
            ct_n = delta if alpha is None else alpha * delta
            g = _norm_vjp(spec, p.get("norm"), keep.get("z"), ct_n)  # ∂L/∂z_l
            norms = _layer_norms(delta, g, keep["a"], keep.get("gram"), keep.get("scale"),
                                 keep_backprop)
            ct_prev = (g @ p["dense"]["kernel"].T) * keep["d"]  # ∂L/∂h_{l-1}
            if alpha is not None:
                ct_prev = ct_prev + delta
            return ct_prev, norms

        ct, norms = jax.lax.scan(step, ct, (seg.hidden, layer_params), reverse=True)
        per_layer.append(norms)
    if seg.input_layer is not None:
        keep, p = seg.input_layer, params["input_layer"]
        g = _norm_vjp(spec, p.get("norm"), keep["z"], ct)
        gram = keep.get("gram")
        norms = _layer_norms(ct, g, keep["a"], None if gram is None else gram[0],
                             None if gram is None else keep["scale"][0], keep_backprop)
        per_layer.insert(0, jax.tree.map(lambda v: v[None], norms))
        ct = g @ p["dense"]["kernel"].T  # ∂L/∂x
    norms = jax.tree.map(lambda *v: jnp.concatenate(v), *per_layer)
    return ct, norms


def _norm_vjp(spec: MLPSpec, norm_params, z, ct):
    """∂L/∂z from ∂L/∂Norm(z) for every row of ``ct`` (identity without normalisation)."""
    if spec.norm == "none":
        return ct
    _, vjp = jax.vjp(_norm_fn(spec, norm_params), z)
    return jax.vmap(lambda c: vjp(c)[0])(ct)


def _backward(spec: MLPSpec, params: dict, fwd: _Forward, bounds: tuple[int, ...],
              batch: int, keep_backprop: bool) -> _Backward:
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
        ct, norms = _backward_segment(spec, params, fwd.segments[j], ct, keep_backprop)
        weight_norm = weight_norm.at[j:, start:stop].set(norms["weight"].T)
        bias_norm = bias_norm.at[j:, start:stop].set(norms["bias"].T)
        backprop_norm = backprop_norm.at[j:, start:stop].set(norms["backprop"].T)
        if keep_backprop:
            backprop = backprop.at[j:, start:stop].set(jnp.swapaxes(norms["delta"], 0, 1))
    return _Backward(weight_norm, bias_norm, backprop_norm, backprop, ct)


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
    h1 = first_hidden_state(spec, params, x)

    def layer(h_prev, p):
        f = one_example_layer(spec, p)
        jac = jax.vmap(jax.jacrev(f))(h_prev)  # (batch, width, width)
        return jax.vmap(f)(h_prev), jnp.linalg.svd(jac, compute_uv=False)

    _, svals = jax.lax.scan(layer, h1, params["hidden"])
    return svals
