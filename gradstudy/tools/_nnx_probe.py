"""Probe a Flax NNX module: the same measurements as :func:`gradstudy.tools.probe` for Linen.

NNX modules are Python objects holding their own variables; there is no interceptor API as
in Linen.  The model is split once (``nnx.split``: a static graph definition and a state of
arrays), and every measurement runs on a copy rebuilt inside the traced function
(``nnx.merge``), so the user's model is never changed.  On that copy each submodule is
marked with its path (a static attribute, so it survives ``nnx.scan``/``nnx.vmap``, which
rebuild modules from their graph definition), and, for the duration of the call, the
classes of the model's submodules get a ``__call__`` that wraps the output of every selected
submodule in the identity with a custom VJP of :mod:`gradstudy.tools._probe` (``tap(y,
p)``): the cotangent of the zero probe ``p`` carries ‖∂L/∂output‖ and the forward
statistics, so one ``jax.grad`` with respect to the parameters and the probes gives every
measurement.  Classes are restored when the call returns (not thread-safe: do not trace two
probes of one model class in parallel threads).

Time.  Inside an ``nnx.RNN`` (``nnx.scan`` over time) a probe closed over from outside would
sum all time steps.  For the modules of an RNN's cell, a probe table with one row per step
rides in the cell's state (carried through the scan, as ``nnx.RNN`` carries its cell's
state) together with a step counter, and row t taps step t: the gradient of the table is
the BPTT signal at every step, ``per_step`` as for Linen.  Modules called inside other
scans (e.g. a stack of layers applied by ``nnx.scan``) are measured as one module whose
numbers are averages over its calls (``calls`` = number of applications).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gradstudy._numerics import safe_norm
from gradstudy.errors import ConfigError
from gradstudy.tools._probe import (
    STATS,
    _per_call,
    _tap_output,
    checked_loss,
    param_grad_norm,
    path_label,
    selection,
)

PATH_ATTR = "_gradstudy_probe_path"
TABLE_ATTR = "_gradstudy_probe_table"
STEP_ATTR = "_gradstudy_probe_step"


class ProbeTable(nnx.Variable):
    """Per-time-step probe rows of a module inside an ``nnx.RNN`` (zeros; see module doc)."""


class ProbeStep(nnx.Variable):
    """The time-step counter of an ``nnx.RNN``'s cell while it is probed."""


def is_nnx_module(obj) -> bool:
    """Whether ``obj`` is a Flax NNX module (an instance of ``flax.nnx.Module``)."""
    return isinstance(obj, nnx.Module)


def _modules(model) -> list[tuple[tuple[str, ...], Any]]:
    return [(tuple(str(k) for k in path), m) for path, m in nnx.iter_modules(model)]


def _mark(model) -> list[tuple[tuple[str, ...], Any]]:
    """Give every submodule of ``model`` (a fresh copy) its path as a static attribute."""
    modules = _modules(model)
    for path, m in modules:
        object.__setattr__(m, PATH_ATTR, path)
    return modules


# ------------------------------------------------------------------------ the tapping call


@dataclass
class _Context:
    """What the patched ``__call__`` of one forward pass needs to know and records."""

    selected: frozenset  # module paths whose outputs are tapped
    values: dict | None  # path -> probe (or per-step table); None while discovering
    steps: dict  # path -> time steps, for modules inside an nnx.RNN
    entered: list  # module paths in the order their calls started
    tapped: dict  # path -> dtype of the output, in the order outputs were produced
    busy: set  # ids of modules whose call is running (super().__call__ chains)
    time_steps: list  # the step counter of each enclosing RNN's cell (a tracer), innermost last
    rnn_lengths: list  # sequence length of each enclosing RNN call
    recurrent: bool = False
    sizes: list | None = None  # while discovering: (path, bytes of its output) per call


_ACTIVE: list[_Context] = []


def _rnn_length(rnn, args, kwargs) -> int:
    """The number of time steps of ``rnn(*args, **kwargs)``, as ``nnx.RNN`` computes it."""
    inputs = args[0] if args else kwargs["inputs"]
    time_major = kwargs.get("time_major")
    time_major = rnn.time_major if time_major is None else time_major
    axis = 0 if time_major else inputs.ndim - (rnn.cell.num_feature_axes + 1)
    return int(inputs.shape[axis % inputs.ndim])


def _call_rnn(ctx: _Context, rnn, orig, args, kwargs):
    """Run an ``nnx.RNN`` with per-step probe tables in its cell's state (module doc)."""
    ctx.recurrent = True
    ctx.rnn_lengths.append(_rnn_length(rnn, args, kwargs))
    attached = []
    try:
        if ctx.values is not None:
            for _, sub in _modules(rnn.cell):
                path = sub.__dict__.get(PATH_ATTR)
                if path in ctx.steps:
                    setattr(sub, TABLE_ATTR, ProbeTable(ctx.values[path]))
                    attached.append((sub, TABLE_ATTR))
            setattr(rnn.cell, STEP_ATTR, ProbeStep(jnp.zeros((), jnp.int32)))
            attached.append((rnn.cell, STEP_ATTR))
        return orig(rnn, *args, **kwargs)
    finally:
        ctx.rnn_lengths.pop()
        for sub, name in reversed(attached):
            delattr(sub, name)


def _tap(ctx: _Context, module, path, out):
    leaves = [x for x in jax.tree.leaves(out)
              if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)]
    if not leaves:
        return out
    if ctx.values is None:  # discovering: record the order, dtype and time steps
        ctx.tapped.setdefault(path, leaves[0].dtype)
        if ctx.rnn_lengths:
            ctx.steps.setdefault(path, ctx.rnn_lengths[-1])
        return out
    if path in ctx.steps:
        if not ctx.time_steps or TABLE_ATTR not in vars(module):
            raise ConfigError(f"select: module {path_label(path)} ran inside an nnx.RNN "
                              "while discovering, and outside one now")
        p = getattr(module, TABLE_ATTR).get_value()[ctx.time_steps[-1]]
    else:
        p = ctx.values[path]
    return _tap_output(out, p)


def _wrap(orig: Callable) -> Callable:
    @functools.wraps(orig)
    def call(self, *args, **kwargs):
        ctx = _ACTIVE[-1] if _ACTIVE else None
        path = self.__dict__.get(PATH_ATTR)
        if ctx is None or path is None or id(self) in ctx.busy:
            return orig(self, *args, **kwargs)
        if path not in ctx.entered:
            ctx.entered.append(path)
        counter = vars(self).get(STEP_ATTR)
        ctx.busy.add(id(self))
        if counter is not None:  # an RNN's cell: one call per time step
            ctx.time_steps.append(counter.get_value())
        try:
            if isinstance(self, nnx.RNN):
                out = _call_rnn(ctx, self, orig, args, kwargs)
            else:
                out = orig(self, *args, **kwargs)
        finally:
            ctx.busy.discard(id(self))
            if counter is not None:
                ctx.time_steps.pop()
                counter.set_value(counter.get_value() + 1)
        if ctx.sizes is not None:
            ctx.sizes.append((path, sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(out)
                                        if isinstance(x, jax.Array))))
        if path not in ctx.selected:
            return out
        return _tap(ctx, self, path, out)
    call.__gradstudy_wrapped__ = orig
    return call


class _Patched:
    """Context: the ``__call__`` of the given module classes wrapped by :func:`_wrap`."""

    def __init__(self, classes, ctx: _Context):
        self.classes = [c for c in dict.fromkeys(classes)
                        if not hasattr(c.__call__, "__gradstudy_wrapped__")]
        self.ctx = ctx
        self.saved = []

    def __enter__(self):
        _ACTIVE.append(self.ctx)
        for cls in self.classes:
            own = cls.__dict__.get("__call__")
            self.saved.append((cls, own))
            type.__setattr__(cls, "__call__", _wrap(cls.__call__))
        return self.ctx

    def __exit__(self, *exc):
        for cls, own in reversed(self.saved):
            if own is None:
                type.__delattr__(cls, "__call__")
            else:
                type.__setattr__(cls, "__call__", own)
        _ACTIVE.pop()
        return False


def _forward(model, args, kwargs, ctx: _Context, select):
    """Mark ``model`` (a fresh copy), decide which submodules are probed, and call it."""
    modules = _mark(model)
    if not ctx.selected and ctx.values is None:
        pred = selection(select)
        ctx.selected = frozenset(path for path, m in modules if pred(m, path))
    with _Patched([type(m) for _, m in modules if callable(m)], ctx):
        return model(*args, **kwargs)


# ------------------------------------------------------------------------------ probing


@dataclass(frozen=True)
class NNXProbes:
    """The probes of one NNX model: its graph definition, the probed module paths in the
    order their outputs were computed, their dtypes, and the number of time steps of those
    inside an ``nnx.RNN``."""

    graphdef: Any
    order: tuple[tuple[str, ...], ...]
    dtypes: dict
    steps: dict
    selected: frozenset
    recurrent: bool = False
    activation_bytes: int = 0  # bytes of all module outputs of one forward pass (estimate)

    def zeros(self) -> dict:
        """Zero probes: ``(len(STATS),)`` per module, ``(steps, len(STATS))`` in time."""
        return {path: jnp.zeros(((self.steps[path],) if path in self.steps else ())
                                + (len(STATS),), self.dtypes[path]) for path in self.order}


def split(model):
    """``(graphdef, params, rest)`` of an NNX model: ``nnx.Param`` variables and the rest
    (batch statistics, RNG state), as ``nnx.split(model, nnx.Param, ...)``."""
    return nnx.split(model, nnx.Param, ...)


def make_nnx_probes(graphdef, params, rest, args, kwargs, select=None) -> NNXProbes:
    """Find the probed submodules by running the forward pass abstractly (``eval_shape``)."""
    ctx = _Context(frozenset(), None, {}, [], {}, set(), [], [], sizes=[])

    def run(params, rest):
        return _forward(nnx.merge(graphdef, params, rest, copy=True), args, kwargs, ctx,
                        select)

    jax.eval_shape(run, params, rest)
    order = tuple(sorted(ctx.tapped, key=ctx.entered.index))
    # a module inside an nnx.RNN is traced once: its output counts once per time step
    activations = sum(n * ctx.steps.get(path, 1) for path, n in ctx.sizes)
    return NNXProbes(graphdef, order, dict(ctx.tapped), dict(ctx.steps), ctx.selected,
                     ctx.recurrent, int(activations))


def _param_leaves(state) -> dict[tuple[str, ...], jax.Array]:
    """The arrays of an ``nnx.State`` by path (``("layers", "0", "kernel")``)."""
    flat = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: isinstance(x, nnx.Variable))[0]
    out = {}
    for path, leaf in flat:
        names = tuple(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                      for k in path)
        out[names] = leaf.get_value() if isinstance(leaf, nnx.Variable) else leaf
    return out


def nnx_probe(probes: NNXProbes, params, rest, batch, loss_fn, *, args, kwargs) -> dict:
    """Measure gradient flow through an NNX model (``graphdef`` + ``params`` + ``rest``) on
    one batch; the same result as :func:`gradstudy.tools.probe` (its ``params`` grad
    norms are keyed by '/'-joined NNX paths, e.g. ``layers/0/kernel``)."""

    def loss_of(params, values, rest):  # rest is an argument: the call may update it
        ctx = _Context(probes.selected, values, probes.steps, [], {}, set(), [], [])
        # copy=True: fresh Variables of this trace (jax.grad keeps non-differentiated
        # arguments as built outside it, and NNX refuses to update those, e.g. RNG counts)
        model = nnx.merge(probes.graphdef, params, rest, copy=True)
        out = _forward(model, args, kwargs, ctx, None)
        return checked_loss(loss_fn, out, batch)

    loss, (g_params, g_probes) = jax.value_and_grad(loss_of, argnums=(0, 1))(
        params, probes.zeros(), rest)
    modules = {}
    for path in probes.order:
        g = g_probes[path]
        if path in probes.steps:
            entry = _per_call(g.sum(axis=0))
            entry["per_step"] = _per_call(g)
        else:
            entry = _per_call(g)
        modules[path_label(path)] = entry
    leaves = _param_leaves(g_params)
    for path in probes.order:
        below = [g for k, g in leaves.items() if k[:len(path)] == path]
        entry = modules[path_label(path)]
        entry["param_grad_norm"] = param_grad_norm(below, ()) if below \
            else jnp.asarray(jnp.nan)
        entry["param_count"] = jnp.asarray(sum(int(np.prod(g.shape)) for g in below))
    grads = {"/".join(k): safe_norm(g) for k, g in leaves.items()}
    return {"loss": loss, "modules": modules, "params": grads,
            "order": [path_label(p) for p in probes.order]}
