"""Gradient monitor for a user's own Optax training loop.

``monitor(every, capacity)`` is an :class:`optax.GradientTransformation` that returns its
updates unchanged and, every ``every`` steps, writes one row into a fixed-size ring buffer
kept in its state: per parameter leaf (per layer for stacked leaves) the norm of what it
received, the norm of what it returns, the parameter norm, the ratio of the two, and the
number of non-finite entries it received.  Everything is pure JAX with fixed shapes: no
host callbacks, no Python side effects, safe under ``jax.jit`` and ``jax.vmap``.

Where to put it.  A transform only sees the tree handed to it by the previous one, so the
placement in ``optax.chain`` decides what is measured:

* ``optax.chain(monitor(...), optax.adam(1e-3))`` (first): the monitor sees the raw
  gradients g = ∂L/∂W.  ``grad_norm`` is ‖g_l‖; ``update_ratio`` is ‖g_l‖/‖W_l‖.
* ``optax.chain(optax.adam(1e-3), monitor(...))`` (last): the monitor sees the final
  updates ΔW (learning rate and sign included: ``W_{t+1} = W_t + ΔW``).  ``grad_norm``
  is then ‖ΔW_l‖, not a gradient norm, and ``update_ratio`` is ‖ΔW_l‖/‖W_l‖.
* ``monitor(..., inner=optax.adam(1e-3))`` (wrapping; recommended): the monitor applies
  ``inner`` itself and sees both sides, so one state holds the raw gradient norms
  (``grad_norm``, non-finite counts of the gradients) and the actual step ΔW
  (``update_norm``, ``update_ratio`` = ‖ΔW_l‖/‖W_l‖).  Its updates are exactly ``inner``'s.

For update/parameter ratios use the wrapping form or the last position: only there is the
ratio the one of the step actually taken.  Without ``inner``, ``update_norm`` equals
``grad_norm`` (the monitor is the identity).  Two monitors (first and last) in one chain also
work; :func:`find_states` returns both.

The buffer is a ring: when all ``capacity`` rows are written, the next record overwrites
the oldest, so the state always holds the most recent ``capacity`` records (the end of a
run, where a blow-up happens, is kept).  ``n_records`` counts every record ever taken; the
valid rows are ``min(n_records, capacity)`` and :func:`monitor_dataset` returns them in step order.

This module holds the transformation, its state, the search for the state in an optax state
and the order of the buffer's rows; the Dataset is made in
:mod:`gradstudy.tools._monitor_dataset` and the heatmap drawn in
:mod:`gradstudy.tools._monitor_plot`.

References:
    You, Gitman & Ginsburg (2017), Large batch training of convolutional networks,
    arXiv:1708.03888 (LARS: per-layer ratio of ‖W_l‖ to ‖∇L(W_l)‖ and of the update to the
    weights, layer by layer).
    Karpathy, CS231n course notes, "Neural Networks Part 3" (folklore heuristic, not a
    derived result: the ratio of update to weight magnitudes should be around 1e-3).
    Blue (1978), A portable Fortran program to find the Euclidean norm of a vector,
    ACM TOMS 4(1) (scaling before squaring against underflow and overflow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradstudy._budget import BUDGET_ENV, budget_bytes, human
from gradstudy._numerics import safe_norm
from gradstudy._validate import check_int, short_repr
from gradstudy.errors import ConfigError

MAX_EVERY = 2**31 - 1  # the step counter is int32
MAX_CAPACITY = 10**7
MONITOR_FIELDS = ("grad_norm", "update_norm", "param_norm", "update_ratio", "nonfinite")

StackedFn = Callable[[str, Any], bool]

# the budget of sweeps and trainings (gradstudy._budget: tools sit below the engine)
memory_budget, human_bytes = budget_bytes, human


class MonitorState(NamedTuple):
    """State of :func:`monitor` (a pytree; every field has a fixed shape).

    The per-leaf fields are tuples with one array per parameter leaf, in the order of
    ``jax.tree.leaves(params)``; each array has shape ``(capacity,)``, or
    ``(capacity, layers)`` for a leaf marked as stacked.  Rows never written hold NaN (norms)
    and -1 (``step``, ``nonfinite``).

    Attributes:
        count: int32 scalar, update calls seen so far (the step index of the next call).
        n_records: int32 scalar, records taken so far, overwritten ones included.
        step: int32 ``(capacity,)``, the step index (value of ``count``) of each row.
        grad_norm: per leaf, ‖received tree‖ (raw gradients if the monitor comes first or
            wraps the optimizer), in the leaf's floating dtype.
        update_norm: per leaf, ‖returned tree‖ (= ``grad_norm`` unless ``inner`` is given).
        param_norm: per leaf, ‖W_l‖ (NaN where ``update`` got ``params=None``).
        update_ratio: per leaf, ``update_norm / param_norm`` (NaN without params, +inf where
            ‖W_l‖ = 0, e.g. zero-initialised biases).
        nonfinite: per leaf, int32 number of NaN/±inf entries in the received tree.
        inner_state: state of ``inner`` (``optax.EmptyState()`` without it).
    """

    count: jax.Array
    n_records: jax.Array
    step: jax.Array
    grad_norm: tuple
    update_norm: tuple
    param_norm: tuple
    update_ratio: tuple
    nonfinite: tuple
    inner_state: Any


# ------------------------------------------------------------------------------- helpers


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_name(path) -> str:
    """A pytree key path as a '/'-joined string, e.g. ``params/Dense_0/kernel`` (Linen) or
    ``layers/0/kernel`` (an ``nnx.State``: the trailing ``.value`` of a Variable dropped)."""
    path = tuple(path)
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        path = path[:-1]  # flax.nnx.Variable is a pytree node holding its array as .value
    return "/".join(_key_name(k) for k in path)


def leaf_names(tree) -> list[str]:
    """'/'-joined key paths of the leaves of ``tree``, in ``jax.tree.leaves`` order.

    For flax variables ``{"params": {"Dense_0": {"kernel": ...}}}`` these are the module
    paths, e.g. ``params/Dense_0/kernel``.
    """
    return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _real_float_dtype(dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.finfo(dtype).dtype  # |z| is real
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def leaf_norm(x, stacked: bool = False) -> jax.Array:
    """Frobenius norm of ``x`` (:func:`gradstudy._numerics.safe_norm`), in the floating
    dtype of ``x`` (float32 for integer arrays, the real dtype for complex ones).  With
    ``stacked=True`` the leading axis is a layer axis and one norm per layer is returned.
    """
    x = jnp.asarray(x)
    a = jnp.abs(x).astype(_real_float_dtype(x.dtype))
    # the axes spelled out also for a whole leaf: the scale keeps the reduced axes, as the
    # monitor always computed it (axis=None divides by a scalar, which XLA may round apart)
    return safe_norm(a, axis=tuple(range(1 if stacked else 0, x.ndim)))


def _nonfinite(x, stacked: bool) -> jax.Array:
    x = jnp.asarray(x)
    axes = tuple(range(1, x.ndim)) if stacked else None
    return jnp.sum(~jnp.isfinite(x), axis=axes, dtype=jnp.int32)


def _layout(tree, stacked: StackedFn | None) -> list[tuple[str, int | None]]:
    """Per leaf: (name, number of layers or None for a plain leaf)."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = path_name(path)
        if stacked is not None and stacked(name, leaf):
            if np.ndim(leaf) < 1:
                raise ConfigError(f"stacked: leaf {name!r} is a scalar; a stacked leaf needs a "
                                  f"leading layer axis")
            out.append((name, int(np.shape(leaf)[0])))
        else:
            out.append((name, None))
    return out


# ------------------------------------------------------------------------------ monitor


def monitor(every: int = 10, capacity: int = 100, *, stacked: StackedFn | None = None,
            inner: optax.GradientTransformation | None = None,
            ) -> optax.GradientTransformationExtraArgs:
    """A pass-through Optax transform that records gradient statistics into its state.

    Every ``every`` steps (steps 0, every, 2·every, ... counted in calls to ``update``),
    one row is written into a ring buffer of ``capacity`` rows (see :class:`MonitorState`):
    per leaf the norm of the received updates, of the returned updates, of the parameters,
    their ratio ‖ΔW_l‖/‖W_l‖ and the count of non-finite received entries.  When the buffer
    is full the oldest row is overwritten; ``n_records`` says how many were ever taken.

    Norms are Frobenius norms per leaf, scaled by max|x| before squaring (no underflow for
    tiny gradients, no overflow for huge ones), computed in the dtype of the received leaf
    and stored in the parameter leaf's floating dtype.  The update/parameter ratio needs
    ``params`` passed to ``update`` (``optax.chain`` passes them on); with ``params=None``
    ``param_norm`` and ``update_ratio`` are recorded as NaN.

    Placement (see the module docstring): first in a chain the monitor sees raw gradients;
    last it sees the final updates ΔW; with ``inner=opt`` it applies ``opt`` and sees both,
    which is the recommended form for update/parameter ratios.

    Example:
        >>> tx = optax.chain(monitor(every=10, capacity=100), optax.adam(1e-3))
        >>> tx = monitor(every=10, capacity=100, inner=optax.adam(1e-3))  # both sides
        >>> # ... train with tx as usual, then
        >>> ds = monitor_dataset(opt_state, params)  # finds the monitor state in opt_state

    Args:
        every: record every this many steps (integer ≥ 1).
        capacity: number of rows in the buffer (integer ≥ 1).
        stacked: optional predicate ``stacked(name, leaf) -> bool`` on the '/'-joined leaf
            name and the leaf; for a leaf where it is true, the leading axis is a layer
            axis (e.g. flax ``nn.scan`` stacks) and one norm per layer is recorded, e.g.
            ``stacked=lambda name, x: name.startswith("params/blocks/")``.
        inner: optional transform to apply inside the monitor; the monitor then records
            the gradients it receives and the updates ``inner`` returns.

    ``update`` also takes an optional keyword ``at_step``: the index of this step (the
    number of updates seen so far), when the caller has one that is the same for every run
    of a ``vmap`` (a ``lax.scan`` counter).  The monitor then decides from it whether to
    record; under ``vmap`` its own per-run counter would make that decision a ``select``
    that computes every norm at every step (measured: half the step time of a width-128,
    20-layer MLP), while an unbatched ``at_step`` keeps it a branch taken every ``every``
    steps.  It must equal the state's count, or records land at the wrong steps.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`MonitorState`
        (extra arguments are forwarded to ``inner``).

    Raises:
        ConfigError: a bad argument (one line naming it); at ``init``, a state beyond the
            memory budget ``$GRADSTUDY_MEMORY_GB`` (``capacity`` × leaf entries × 5 fields,
            estimated before it is allocated).

    References:
        You, Gitman & Ginsburg (2017), Large batch training of convolutional networks,
        arXiv:1708.03888 (per-layer ‖ΔW_l‖/‖W_l‖ and ‖W_l‖/‖∇L‖ ratios, LARS).
        Karpathy, CS231n notes (folklore: update/weight ratio ≈ 1e-3 is healthy).
    """
    every, capacity, inner_tx = _check_arguments(every, capacity, stacked, inner)

    def init_fn(params):
        return _init_state(params, capacity, stacked, inner_tx)

    def update_fn(updates, state, params=None, *, at_step=None, **extra_args):
        return _update(updates, state, params, at_step, extra_args, every=every,
                       capacity=capacity, stacked=stacked, inner_tx=inner_tx)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_arguments(every, capacity, stacked, inner):
    """``every`` and ``capacity`` as ints, and ``inner`` with extra-argument support (or
    None); ConfigError naming a bad argument."""
    every = check_int("every", every, 1, MAX_EVERY)
    capacity = check_int("capacity", capacity, 1, MAX_CAPACITY)
    if stacked is not None and not callable(stacked):
        raise ConfigError(f"stacked: must be None or a callable (name, leaf) -> bool, "
                          f"got {short_repr(stacked)}")
    if inner is not None and not (callable(getattr(inner, "init", None))
                                  and callable(getattr(inner, "update", None))):
        raise ConfigError(f"inner: must be None or an optax.GradientTransformation, "
                          f"got {short_repr(inner)}")
    return every, capacity, None if inner is None else optax.with_extra_args_support(inner)


def _init_state(params, capacity: int, stacked: StackedFn | None, inner_tx) -> MonitorState:
    """The state before the first step: no record, every row NaN (norms) or -1."""
    layout = _layout(params, stacked)
    leaves = jax.tree.leaves(params)
    _check_state_memory(leaves, layout, capacity)

    def buf(leaf, layers, fill, dtype):
        shape = (capacity,) if layers is None else (capacity, layers)
        return jnp.full(shape, fill, dtype)

    def floats():
        return tuple(buf(x, n, jnp.nan, _real_float_dtype(jnp.result_type(x)))
                     for x, (_, n) in zip(leaves, layout))

    return MonitorState(
        count=jnp.zeros((), jnp.int32),
        n_records=jnp.zeros((), jnp.int32),
        step=jnp.full((capacity,), -1, jnp.int32),
        grad_norm=floats(), update_norm=floats(), param_norm=floats(),
        update_ratio=floats(),
        nonfinite=tuple(buf(x, n, -1, jnp.int32) for x, (_, n) in zip(leaves, layout)),
        inner_state=optax.EmptyState() if inner_tx is None else inner_tx.init(params))


def state_bytes(leaves, layout, capacity: int) -> int:
    """Bytes of a :class:`MonitorState`'s buffers (``inner``'s state not included): per
    leaf entry (a leaf, or a layer of a stacked leaf) four float fields and one int32 count
    per row, and the int32 step of each row."""
    total = 4 * capacity
    for x, (_, layers) in zip(leaves, layout):
        itemsize = _real_float_dtype(jnp.result_type(x)).itemsize
        total += capacity * (layers or 1) * (4 * itemsize + 4)
    return total


def _check_state_memory(leaves, layout, capacity: int) -> None:
    """Refuse a state beyond the memory budget (before allocating it), naming capacity."""
    need, budget = state_bytes(leaves, layout, capacity), memory_budget()
    if need > budget:
        entries = sum(layers or 1 for _, layers in layout)
        raise ConfigError(f"capacity: the monitor state needs ≈ {human_bytes(need)} (capacity "
                          f"{capacity} × {entries} leaf entries × {len(MONITOR_FIELDS)} "
                          f"fields) but the budget is {human_bytes(budget)}; use a smaller "
                          f"capacity (and a larger every), or raise {BUDGET_ENV}")


def _update(updates, state: MonitorState, params, at_step, extra_args: dict, *, every: int,
            capacity: int, stacked: StackedFn | None, inner_tx):
    """One ``update`` call: the updates returned (``inner``'s, or the received ones) and
    the next state, with a row written if this step is recorded."""
    if inner_tx is None:
        out, inner_state = updates, state.inner_state
    else:
        out, inner_state = inner_tx.update(updates, state.inner_state, params,
                                           **extra_args)
    layout = _layout(updates, stacked)
    grads, outs, ps = _checked_leaves(updates, out, params, state, inner_tx is None)

    # a step index shared by every run of a vmapped batch (a scan counter) keeps the
    # decision a branch; the state's own counter is batched, and vmap would turn the
    # branch into a select that computes every norm at every step
    record = (state.count if at_step is None else at_step) % every == 0
    # at a recording step n_records = count // every; from an unbatched at_step the
    # slot is unbatched too, and the writes stay slice updates under vmap
    slot = (state.n_records if at_step is None else at_step // every) % capacity
    fields = (state.grad_norm, state.update_norm, state.param_norm, state.update_ratio,
              state.nonfinite)

    def write(fields):
        return _write_row(fields, grads, outs, ps, layout, slot, inner_tx is None)

    fields = jax.lax.cond(record, write, lambda f: f, fields)
    return out, MonitorState(
        count=optax.safe_increment(state.count),
        n_records=jnp.where(record, optax.safe_increment(state.n_records),
                            state.n_records),
        step=state.step.at[slot].set(jnp.where(record, state.count, state.step[slot])),
        grad_norm=fields[0], update_norm=fields[1], param_norm=fields[2],
        update_ratio=fields[3], nonfinite=fields[4], inner_state=inner_state)


def _checked_leaves(updates, out, params, state: MonitorState, identity: bool):
    """The leaves of the received tree, of the returned tree and of ``params`` (None
    without params); ConfigError if their numbers do not match the state's."""
    grads = jax.tree.leaves(updates)
    outs = grads if identity else jax.tree.leaves(out)
    if len(grads) != len(state.grad_norm) or len(outs) != len(grads):
        raise ConfigError(f"updates: {len(grads)} leaves, but the monitor state was "
                          f"initialised for {len(state.grad_norm)}")
    ps = None if params is None else jax.tree.leaves(params)
    if ps is not None and len(ps) != len(grads):
        raise ConfigError(f"params: {len(ps)} leaves, but updates have {len(grads)}")
    return grads, outs, ps


def _write_row(fields, grads, outs, ps, layout, slot, identity: bool):
    """``fields`` (one tuple of buffers per :data:`MONITOR_FIELDS` entry) with row
    ``slot`` set to this step's values."""
    new = tuple([] for _ in MONITOR_FIELDS)
    for i, (g, u, (_, layers)) in enumerate(zip(grads, outs, layout)):
        p = None if ps is None else ps[i]
        values = _leaf_values(g, u, p, layers is not None, identity, fields[2][i].dtype)
        for j, value in enumerate(values):
            buf = fields[j][i]
            new[j].append(jax.lax.dynamic_update_index_in_dim(
                buf, value.astype(buf.dtype), slot, 0))
    return tuple(tuple(f) for f in new)


def _leaf_values(g, u, p, stacked: bool, identity: bool, param_norm_dtype):
    """One leaf's row, in :data:`MONITOR_FIELDS` order: ‖g‖, ‖u‖ (= ‖g‖ if ``identity``),
    ‖p‖ and ‖u‖/‖p‖ (NaN if ``p`` is None), the number of non-finite entries of ``g``."""
    gn = leaf_norm(g, stacked)
    un = gn if identity else leaf_norm(u, stacked)
    if p is None:
        pn = jnp.full(gn.shape, jnp.nan, param_norm_dtype)
        ratio = jnp.full(un.shape, jnp.nan, un.dtype)
    else:
        pn = leaf_norm(p, stacked)
        ratio = (un / pn).astype(un.dtype)
    return gn, un, pn, ratio, _nonfinite(g, stacked)


# ------------------------------------------------------------------ finding the state


def find_states(opt_state) -> list[MonitorState]:
    """Every :class:`MonitorState` inside an optax state pytree, in tree order.

    Looks through chains, ``named_chain`` dicts, ``inject_hyperparams``, ``MultiSteps`` and
    any other nesting, including monitors wrapped by another monitor's ``inner``.
    """
    found = []

    def visit(tree):
        for x in jax.tree_util.tree_leaves(tree, is_leaf=lambda v: isinstance(v, MonitorState)):
            if isinstance(x, MonitorState):
                found.append(x)
                visit(x.inner_state)

    visit(opt_state)
    return found


def find_state(opt_state) -> MonitorState:
    """The one :class:`MonitorState` inside an optax state pytree.

    Raises:
        ConfigError: there is none, or more than one (then use :func:`find_states`).
    """
    found = find_states(opt_state)
    if len(found) != 1:
        raise ConfigError(f"opt_state: expected exactly one monitor state, found {len(found)}"
                          f"{'; use find_states' if found else ''}")
    return found[0]


# ------------------------------------------------------------------ reading the buffer


def valid_rows(state: MonitorState) -> np.ndarray:
    """Buffer row indices of the valid records, oldest first (an unbatched state)."""
    capacity = int(np.shape(state.step)[0])
    n = int(state.n_records)
    start = n % capacity if n > capacity else 0
    return (start + np.arange(min(n, capacity))) % capacity


__all__ = ["MAX_CAPACITY", "MAX_EVERY", "MONITOR_FIELDS", "MonitorState", "find_state",
           "find_states", "leaf_names", "leaf_norm", "monitor", "path_name",
           "valid_rows"]
