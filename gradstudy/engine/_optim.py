"""Optimizers and gradient clipping as a frozen, validated spec → an Optax transformation.

``OptimizerSpec`` names what a study trains with: SGD, SGD with (Nesterov) momentum,
RMSProp or Adam; a learning rate with an optional schedule (constant, or linear warm-up then
cosine decay); and clipping: none, by value (``optax.clip``), by global norm
(``optax.clip_by_global_norm``) or adaptive (``optax.adaptive_grad_clip``, unit-wise,
never on the output layer), chained before the optimizer with ``optax.chain``.

``build(spec, learning_rate)`` takes the learning rate separately so that it can be a
traced scalar: a grid of learning rates is a ``vmap`` axis of one compiled program.

References:
    Rumelhart, Hinton & Williams (1986), Learning representations by back-propagating
    errors (SGD with momentum).
    Tieleman & Hinton (2012), Lecture 6.5 — RMSProp, COURSERA: Neural Networks for
    Machine Learning.
    Kingma & Ba (2015), Adam: a method for stochastic optimization.
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
    networks (clipping by norm).
    Brock, De, Smith & Simonyan (2021), High-performance large-scale image recognition
    without normalization (adaptive gradient clipping, not on the final layer).
    Loshchilov & Hutter (2017), SGDR: stochastic gradient descent with warm restarts
    (cosine schedule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from gradstudy._validate import check_choice, check_int, check_real
from gradstudy.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
SCHEDULES = ("constant", "warmup_cosine")
CLIPS = ("none", "value", "global_norm", "adaptive")
MAX_STEPS = 10**8
MIN_EPS = 1.1754944e-38  # float32's smallest normal number: eps must be > 0 in float32


@dataclass(frozen=True)
class OptimizerSpec:
    """What a network is trained with.

    Attributes:
        name: "sgd", "momentum" (heavy ball), "nesterov", "rmsprop" or "adam".
        learning_rate: peak learning rate (a sweep may override it per run, traced).
        momentum: β of momentum / Nesterov.
        decay: ρ of RMSProp (ν ← ρν + (1−ρ)g²; first step lr·g/√((1−ρ)g² + ε)).
        b1, b2: Adam's moment decays.
        eps: ε of RMSProp (inside the square root, as optax's default) and Adam (outside:
            first step lr·g/(|g| + ε)); > 0 (at least float32's smallest normal number),
            since ε = 0 makes an exactly-zero gradient entry 0/0 = NaN.
        schedule: "constant" or "warmup_cosine" (linear warm-up from 0 over
            ``warmup_steps``, then cosine decay to 0 at ``decay_steps``:
            :func:`warmup_cosine`).
        warmup_steps, decay_steps: of the schedule.
        clip: "none", "value" (each entry to [−t, t]), "global_norm" (g·min(1, t/‖g‖)) or
            "adaptive" (unit-wise, per output unit i: ‖g_i‖ ≤ t·max(‖W_i‖, 10⁻³); not the
            output layer).
        clip_threshold: t.
    """

    name: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    decay: float = 0.9
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int = 1000
    clip: str = "none"
    clip_threshold: float = 1.0

    def __post_init__(self):
        check_choice("name", self.name, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("clip", self.clip, CLIPS)
        for field in ("learning_rate", "eps", "clip_threshold"):
            object.__setattr__(self, field, check_real(field, getattr(self, field), 0.0,
                                                       1e6))
        for field in ("momentum", "decay", "b1", "b2"):
            value = check_real(field, getattr(self, field), 0.0, 1.0)
            if value >= 1.0:
                raise _error(field, value, "a number in [0, 1)")
            object.__setattr__(self, field, value)
        if self.eps < MIN_EPS:
            # Adam divides by √v̂ + ε and RMSProp by √(ν + ε): with ε = 0 (or a value that
            # is 0 in float32) an exactly-zero gradient entry gives 0/0 = NaN, which the
            # engine would record as a divergence of a healthy run
            raise _error("eps", self.eps, f"a number >= {MIN_EPS:.3g} (the smallest normal "
                         "float32; eps = 0 turns an exactly-zero gradient entry into NaN)")
        if self.clip != "none" and self.clip_threshold <= 0:
            raise _error("clip_threshold", self.clip_threshold, "a number > 0 when clipping")
        object.__setattr__(self, "warmup_steps",
                           check_int("warmup_steps", self.warmup_steps, 0, MAX_STEPS))
        object.__setattr__(self, "decay_steps",
                           check_int("decay_steps", self.decay_steps, 1, MAX_STEPS))
        if self.schedule == "warmup_cosine" and self.warmup_steps >= self.decay_steps:
            raise _error("warmup_steps", self.warmup_steps,
                         f"fewer than decay_steps ({self.decay_steps})")

    def replace(self, **changes) -> "OptimizerSpec":
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _error(field, value, allowed):

    return ConfigError(f"{field}: must be {allowed}, got {value!r}")


def schedule(spec: OptimizerSpec, learning_rate=None) -> Callable | jax.Array:
    """The learning rate (a number, possibly traced) or schedule ``step -> rate``."""
    peak = spec.learning_rate if learning_rate is None else learning_rate
    if spec.schedule == "constant":
        return peak
    return warmup_cosine(peak, spec.warmup_steps, spec.decay_steps)


def warmup_cosine(peak, warmup_steps: int, decay_steps: int, end_value=0.0) -> Callable:
    """``step -> rate``: linear warm-up from 0 to ``peak`` over ``warmup_steps``, then a
    half cosine from ``peak`` down to ``end_value`` at ``decay_steps`` (held there after).

    For concrete numbers it is ``optax.warmup_cosine_decay_schedule(0, peak, warmup_steps,
    decay_steps, end_value)``, written out in ``jnp`` with optax's operations in optax's
    order: optax's version tests ``peak_value == 0.0`` in Python, which fails on a traced
    ``peak`` (:class:`jax.errors.TracerBoolConversionError`), and a grid of learning rates
    is traced.

    Args:
        peak: the learning rate at the end of the warm-up; may be traced.
        warmup_steps: steps of the linear warm-up (0: none).
        decay_steps: the step at which the decay ends, warm-up included (> warmup_steps).
        end_value: the rate from ``decay_steps`` on; may be traced.
    """
    cosine_steps = float(decay_steps - warmup_steps)
    # optax's alpha = end / peak (0 for a zero peak): in Python for numbers, as optax
    # (bit for bit), a select where either may be traced
    if isinstance(peak, (int, float)) and isinstance(end_value, (int, float)):
        alpha = 0.0 if peak == 0.0 else end_value / peak
    else:
        zero_peak = jnp.asarray(peak) == 0.0
        alpha = jnp.where(zero_peak, 0.0, end_value / jnp.where(zero_peak, 1.0, peak))

    def rate(step):
        step = jnp.asarray(step)
        if warmup_steps > 0:  # optax.linear_schedule(0, peak, warmup_steps)
            frac = 1 - jnp.clip(step, 0, warmup_steps) / warmup_steps
            warm = (0.0 - peak) * frac + peak
        else:  # optax: a constant schedule, never selected (no step is < 0)
            warm = jnp.zeros_like(jnp.asarray(peak, jnp.result_type(float)))
        # optax.cosine_decay_schedule(peak, decay_steps - warmup_steps, alpha) at
        # step - warmup_steps
        count = jnp.minimum(step - warmup_steps, cosine_steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / cosine_steps))
        decayed = peak * ((1 - alpha) * cosine + alpha)
        return jnp.where(step < warmup_steps, warm, decayed)

    return rate


def clipping(spec: OptimizerSpec, output_layer: Callable[[str], bool] | None = None,
             stacked: Callable[[str], bool] | None = None,
             threshold=None) -> optax.GradientTransformation:
    """The clipping transform of ``spec`` (identity for "none").

    Args:
        output_layer: ``path -> bool`` on '/'-joined parameter paths: the leaves adaptive
            clipping leaves alone (Brock et al. 2021 do not clip the final layer).
        stacked: ``path -> bool``: leaves whose leading axis is a layer axis (``nn.scan``
            stacks); adaptive clipping takes its units layer by layer there.
        threshold: replaces ``spec.clip_threshold``; may be a traced scalar, so that runs
            clipped at different thresholds share one compiled program.
    """
    t = spec.clip_threshold if threshold is None else threshold
    if spec.clip == "none":
        return optax.identity()
    if spec.clip == "value":
        return optax.clip(t)
    if spec.clip == "global_norm":
        return optax.clip_by_global_norm(t)
    return adaptive_grad_clip(t, output_layer=output_layer, stacked=stacked)


AGC_EPS = 1e-3  # optax's and Brock et al.'s default: zero-initialised parameters may move


def adaptive_grad_clip(clipping: float, eps: float = AGC_EPS,
                       output_layer: Callable[[str], bool] | None = None,
                       stacked: Callable[[str], bool] | None = None
                       ) -> optax.GradientTransformation:
    """Unit-wise adaptive gradient clipping, with layer stacks and the output layer handled.

    Per unit i (optax's ``unitwise_norm``: a whole vector, the input axis of a matrix, the
    input axes of a conv kernel), g_i ← g_i · min(1, λ·max(‖W_i‖, eps)/‖g_i‖).  Leaves with
    a leading layer axis are treated layer by layer (optax alone would take a (layers, in,
    out) stack for a conv kernel and pool the layers); output-layer leaves pass unchanged.

    References:
        Brock, De, Smith & Simonyan (2021), High-performance large-scale image recognition
        without normalization, §4.1 (AGC; the final linear layer is not clipped).
    """
    from optax import transforms

    def clip_leaf(g, w):
        g_norm, w_norm = transforms.unitwise_norm(g), transforms.unitwise_norm(w)
        return transforms.unitwise_clip(g_norm, clipping * jnp.maximum(w_norm, eps), g)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("adaptive gradient clipping needs the params")

        def one(path, g, w):
            name = path_string(path)
            if output_layer is not None and output_layer(name):
                return g
            if stacked is not None and stacked(name):
                return jax.vmap(clip_leaf)(g, w)
            return clip_leaf(g, w)

        return jax.tree_util.tree_map_with_path(one, updates, params), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def optimizer(spec: OptimizerSpec, learning_rate=None) -> optax.GradientTransformation:
    """The optimizer of ``spec`` without clipping; ``learning_rate`` may be traced."""
    lr = schedule(spec, learning_rate)
    if spec.name == "sgd":
        return optax.sgd(lr)
    if spec.name in ("momentum", "nesterov"):
        return optax.sgd(lr, momentum=spec.momentum, nesterov=spec.name == "nesterov")
    if spec.name == "rmsprop":
        return optax.rmsprop(lr, decay=spec.decay, eps=spec.eps)
    return optax.adam(lr, b1=spec.b1, b2=spec.b2, eps=spec.eps)


def build(spec: OptimizerSpec, learning_rate=None,
          output_layer: Callable[[str], bool] | None = None,
          stacked: Callable[[str], bool] | None = None,
          clip_threshold=None) -> optax.GradientTransformation:
    """``optax.chain(clipping, optimizer)`` of ``spec``; ``learning_rate`` and
    ``clip_threshold`` override the spec's and may be traced (other arguments as
    :func:`clipping`)."""
    return optax.chain(clipping(spec, output_layer, stacked, clip_threshold),
                       optimizer(spec, learning_rate))


def program_key(spec: OptimizerSpec) -> OptimizerSpec:
    """The part of ``spec`` a compiled program is built from: the learning rate and the
    clipping threshold removed (they enter traced), so that specs differing only in those
    share one program."""
    return spec.replace(learning_rate=0.0, clip_threshold=1.0)


def select(index, trees: list):
    """``trees[index]`` leaf by leaf, for a (traced, possibly vmapped) integer ``index``;
    every tree is computed, the others' values (NaN included) do not reach the result."""
    def pick(*leaves):
        out = leaves[0]
        for i, leaf in enumerate(leaves[1:], 1):
            out = jnp.where(index == i, leaf, out)
        return out

    return jax.tree.map(pick, *trees)


def switch(transforms: list[optax.GradientTransformation], index
           ) -> optax.GradientTransformation:
    """One transformation that applies ``transforms[index]``, ``index`` a traced integer.

    Runs with different optimizers (or clipping methods) then share one compiled program: a
    ``vmap`` over runs with per-run indices computes every transform at every step and
    keeps each run's own (the cost is the elementwise work of the others, small next to the
    network's matmuls).  The state holds every transform's state; only the selected one is
    meaningful.  With one transform it is that transform.
    """
    if len(transforms) == 1:
        return transforms[0]

    def init_fn(params):
        return tuple(t.init(params) for t in transforms)

    def update_fn(updates, state, params=None):
        outs = [t.update(updates, s, params) for t, s in zip(transforms, state)]
        return select(index, [u for u, _ in outs]), tuple(s for _, s in outs)

    return optax.GradientTransformation(init_fn, update_fn)


def clip_fired(spec: OptimizerSpec, grads, params,
               output_layer: Callable[[str], bool] | None = None,
               stacked: Callable[[str], bool] | None = None,
               threshold=None) -> jax.Array:
    """Whether ``spec``'s clipping changes ``grads`` at this step (bool scalar);
    ``threshold`` (possibly traced) replaces ``spec.clip_threshold``."""
    t = spec.clip_threshold if threshold is None else threshold
    if spec.clip == "none":
        return jnp.zeros((), bool)
    if spec.clip == "value":
        return jnp.any(jnp.stack([jnp.any(jnp.abs(g) > t) for g in jax.tree.leaves(grads)]))
    if spec.clip == "global_norm":
        return optax.tree.norm(grads) > t
    from optax import transforms

    def fired_leaf(g, w):
        return jnp.any(transforms.unitwise_norm(g)
                       > t * jnp.maximum(transforms.unitwise_norm(w), AGC_EPS))

    fired = []
    for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(grads)[0],
                            jax.tree.leaves(params)):
        name = path_string(path)
        if output_layer is not None and output_layer(name):
            continue
        fired.append(jnp.any(jax.vmap(fired_leaf)(g, w)) if stacked is not None
                     and stacked(name) else fired_leaf(g, w))
    return jnp.any(jnp.stack(fired)) if fired else jnp.zeros((), bool)


def path_string(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def trajectory(loss, start, spec: OptimizerSpec, steps: int):
    """The path of ``spec``'s optimizer on ``loss`` (a function of one parameter vector)
    from ``start``: positions (steps + 1, dim), gradients and updates (steps, dim), one
    ``lax.scan``.  Full-batch, deterministic; float64 when ``start`` is (under x64)."""
    steps = check_int("steps", steps, 1, MAX_STEPS)
    tx = build(spec)
    start = jnp.asarray(start)

    def step(carry, _):
        w, state = carry
        g = jax.grad(loss)(w)
        update, state = tx.update(g, state, w)
        return (optax.apply_updates(w, update), state), (w, g, update)

    (last, _), (ws, gs, us) = jax.lax.scan(step, (start, tx.init(start)), None, length=steps)
    return jnp.concatenate([ws, last[None]]), gs, us
