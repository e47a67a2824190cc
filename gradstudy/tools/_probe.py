"""Probe any Flax Linen module: how the gradient flows through it, without changing its code.

Given a module, its variables, a batch and a scalar loss of the outputs, :func:`probe`
returns, for every selected submodule (by module path, e.g. ``Block_3/Dense_0``):

* ``backprop_norm``: ‖∂L/∂output‖, the norm of the back-propagated signal at its output;
* ``out_mean``, ``out_q`` (second moment) and ``out_zero_frac`` (fraction of exact zeros,
  e.g. dead ReLUs) of its output in the forward pass;
* ``calls``: how many times its output reached the loss (1 per layer; T for a cell applied
  at T time steps of a recurrent scan, whose numbers are then averages over the T calls);

and for every parameter leaf its gradient norm (per layer for leaves of an ``nn.scan``
stack).  Layers of ``nn.scan`` stacks (user-written ones included) are measured one by one.

How: an interceptor (``nn.intercept_methods``) wraps each selected module's ``__call__``
output in an identity with a custom VJP, ``tap(y, p)``, where ``p`` is a zero *parameter* of
five numbers created next to the module's own parameters.  The backward rule returns the
cotangent unchanged and, as the "gradient" of ``p``, the statistics above; so one
``jax.grad`` with respect to the parameters gives every measurement.  Being a parameter,
``p`` follows the module through ``nn.scan`` like its weights: a stacked layer gets a
stacked ``p`` (one row per layer) and a cell whose parameters are broadcast over time gets
the sum over time steps (hence ``calls``).  A ``perturbations`` collection would not: a
``perturb`` inside an ``nn.scan`` whose ``variable_axes`` omit that collection is silently
dropped (flax 0.12.8).

A module whose output does not reach the loss gets ``calls = 0``: it is reported as not
reached (NaN values), never as a zero gradient.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from gradstudy._numerics import safe_norm
from gradstudy.errors import ConfigError

PROBE = "__gradstudy_probe__"
TIME = "gradstudy_time_probes"  # the per-time-step probe collection inside nn.RNN
STATS = ("backprop_norm", "out_mean", "out_q", "out_zero_frac", "calls")


def path_label(path: tuple[str, ...]) -> str:
    """A module path as text: ``Block_3/Dense_0``; the model itself is ``(model)``."""
    return "/".join(path) or "(model)"


def _float_leaves(tree) -> list:
    return [x for x in jax.tree.leaves(tree)
            if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)]


def _output_stats(ys, cts, dtype):
    norms = jnp.stack([safe_norm(c) for c in cts])
    backprop = safe_norm(norms)
    size = sum(y.size for y in ys)
    mean = sum(jnp.sum(y) for y in ys) / size
    q = sum(jnp.sum(jnp.square(y)) for y in ys) / size
    zeros = sum(jnp.sum(y == 0) for y in ys) / size
    return jnp.stack([backprop, mean, q, zeros, 1.0]).astype(dtype)


@jax.custom_vjp
def _tap(ys: tuple, p: jax.Array) -> tuple:
    """Identity on ``ys``; the cotangent of ``p`` carries the statistics (see module doc)."""
    return ys


def _tap_fwd(ys, p):
    return ys, (ys, p)


def _tap_bwd(res, cts):
    ys, p = res
    return cts, _output_stats(ys, cts, p.dtype)


_tap.defvjp(_tap_fwd, _tap_bwd)


def _tap_output(out, p):
    leaves, treedef = jax.tree.flatten(out)
    idx = [i for i, x in enumerate(leaves)
           if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)]
    tapped = _tap(tuple(leaves[i] for i in idx), p)
    for i, y in zip(idx, tapped):
        leaves[i] = y
    return jax.tree.unflatten(treedef, leaves)


def owns_params(module) -> bool:
    """Whether ``module`` (Linen or NNX) has parameter arrays of its own (not only in
    submodules)."""
    if not isinstance(module, nn.Module):  # NNX: nnx.Param attributes of its own
        return any(isinstance(v, nnx.Param) for v in vars(module).values())
    params = module.variables.get("params", {}) if module.scope is not None else {}
    return any(not isinstance(v, dict) and not k.startswith(PROBE) for k, v in params.items())


@dataclass(frozen=True)
class Selection:
    """Which submodules to probe.

    Attributes:
        types: module classes to probe (``isinstance``), e.g. ``(nn.Dense, nn.Conv)``.
        paths: glob patterns on the '/'-joined module path, e.g. ``("Block_*",)``.
        params: probe every module that owns parameters (default).
        top_level: probe the model's direct children (its top-level blocks; default).
    """

    types: tuple = ()
    paths: tuple[str, ...] = ()
    params: bool = True
    top_level: bool = True

    def __call__(self, module: nn.Module, path: tuple[str, ...]) -> bool:
        if not path:  # the model itself: only if it has parameters of its own (one layer)
            return bool(self.params and owns_params(module))
        name = "/".join(path)
        return bool((self.params and owns_params(module))
                    or (self.top_level and len(path) == 1)
                    or (self.types and isinstance(module, tuple(self.types)))
                    or any(fnmatch.fnmatchcase(name, pat) for pat in self.paths))


def selection(select=None) -> Callable[[nn.Module, tuple[str, ...]], bool]:
    """``select`` as a predicate ``(module, path) -> bool``.

    ``None``: :class:`Selection` defaults; a :class:`Selection`; a callable; a module class
    or tuple of classes; a glob pattern string or list of them (module paths).
    """
    if select is None:
        return Selection()
    if isinstance(select, Selection) or (callable(select) and not isinstance(select, type)):
        return select
    if isinstance(select, type) or (isinstance(select, tuple)
                                    and all(isinstance(t, type) for t in select)):
        types = select if isinstance(select, tuple) else (select,)
        return Selection(types=types, params=False, top_level=False)
    if isinstance(select, str) or (isinstance(select, (list, tuple))
                                   and all(isinstance(s, str) for s in select)):
        paths = (select,) if isinstance(select, str) else tuple(select)
        return Selection(paths=paths, params=False, top_level=False)
    raise ConfigError(f"select: must be None, a Selection, a callable (module, path) -> bool, "
                      f"module classes or path patterns; got {type(select).__name__}")


def _call_through_time(module: nn.RNN, next_fun, args, kwargs, depth: list):
    """Run an ``nn.RNN`` with the per-time-step probe collection stacked over its time
    scan (``variable_axes``), so that probes inside its cell get one row per time step."""
    old = module.variable_axes
    object.__setattr__(module, "variable_axes", type(old)({**dict(old), TIME: 0}))
    depth[0] += 1
    try:
        return next_fun(*args, **kwargs)
    finally:
        object.__setattr__(module, "variable_axes", old)
        depth[0] -= 1


def _probe_variable(module: nn.Module, name: str, shape, dtype, in_time: bool):
    """The zero probe of ``module``: a parameter, or inside an ``nn.RNN`` a variable of the
    per-time-step collection.  Returns ``(value, key)``, key = (collection, *path, name)."""
    if in_time:
        init = functools.partial(jnp.zeros, shape, dtype)
        return module.variable(TIME, name, init).value, (TIME, *module.path, name)
    return (module.param(name, nn.initializers.zeros, shape, dtype),
            ("params", *module.path, name))


def _interceptor(select, order: list | None, entered: list | None = None,
                 seen: set | None = None, sizes: list | None = None):
    depth = [0]  # > 0 inside an nn.RNN's time scan

    def intercept(next_fun, args, kwargs, context):
        module = context.module
        if entered is not None and module.scope is not None \
                and context.method_name == "__call__" and tuple(module.path) not in entered:
            entered.append(tuple(module.path))  # forward order: a block before its layers
        if isinstance(module, nn.RNN) and context.method_name == "__call__" \
                and module.scope is not None:
            out = _call_through_time(module, next_fun, args, kwargs, depth)
            if seen is not None:
                seen.add("rnn")
        else:
            out = next_fun(*args, **kwargs)
        if context.method_name != "__call__" or module.scope is None:
            return out
        path = tuple(module.path)
        leaves = _float_leaves(out)
        if sizes is not None:  # the memory estimate: bytes of every module's output
            sizes.append((path, sum(x.size * x.dtype.itemsize for x in leaves)))
        if not select(module, path) or not leaves:
            return out
        shape, dtype, in_time = (len(STATS),), leaves[0].dtype, depth[0] > 0
        try:
            p, key = _probe_variable(module, PROBE, shape, dtype, in_time)
        except ValueError:
            # a module whose __call__ is neither compact nor setup-defined (e.g. nn.RNN):
            # its probe lives in the parent, which is inside its own compact call
            parent = module.parent
            if not isinstance(parent, nn.Module) or parent.scope is None:
                return out
            p, key = _probe_variable(parent, f"{PROBE}{module.name}", shape, dtype, in_time)
        if order is not None and (path, key) not in order:
            order.append((path, key))
        return _tap_output(out, p)
    return intercept


def _flat(tree) -> dict:
    return traverse_util.flatten_dict(dict(tree)) if tree else {}


@dataclass(frozen=True)
class Probes:
    """The probe parameters of one model: ``values`` (flattened tree of zeros) and
    ``order``, the probed ``(module path, probe key)`` pairs in the order their outputs
    were computed."""

    values: dict
    order: tuple[tuple[str, ...], ...]
    recurrent: bool = False  # the model runs an nn.RNN
    activation_bytes: int = 0  # bytes of all module outputs of one forward pass (estimate)


def make_probes(module: nn.Module, variables, *args, select=None, mutable=(),
                method=None, **kwargs) -> Probes:
    """Create the probe parameters for ``module.apply(variables, *args, **kwargs)``.

    Runs the forward pass once abstractly (``jax.eval_shape``): nothing is computed.
    """
    pred = selection(select)
    order: list = []
    entered: list = []
    seen: set = set()
    sizes: list = []

    # the call's own rngs (e.g. {"dropout": key}) and a "params" stream for the probes
    rngs = {**dict(kwargs.pop("rngs", None) or {}), "params": jax.random.PRNGKey(0)}

    def run(variables):
        with nn.intercept_methods(_interceptor(pred, order, entered, seen, sizes)):
            _, new = module.apply(variables, *args, mutable=["params", TIME, *mutable],
                                  rngs=rngs, method=method, **kwargs)
        return {c: new[c] for c in ("params", TIME) if c in new}

    shapes = jax.eval_shape(run, variables)
    flat = {k: jnp.zeros(v.shape, v.dtype) for k, v in _flat(shapes).items()
            if k[-1].startswith(PROBE)}
    order = sorted(((path, key) for path, key in order if key in flat),
                   key=lambda item: entered.index(item[0]))
    # a module inside nn.scan (a stacked layer, an RNN's time step) is traced once: its
    # output counts once per row of its probe
    repeats = {path: int(np.prod(flat[key].shape[:-1])) for path, key in order}
    activations = sum(n * repeats.get(path, 1) for path, n in sizes)
    return Probes(flat, tuple(order), "rnn" in seen, int(activations))


def checked_loss(loss_fn: Callable[[Any, Any], Any], out, batch) -> jax.Array:
    """``loss_fn(out, batch)``, which must be a scalar floating array; one line naming
    ``loss_fn`` else (its own exceptions too: the caller can tell them from the model's)."""
    try:
        loss = loss_fn(out, batch)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 -- the user's loss: one line naming the step
        raise ConfigError(f"loss_fn: calling the loss raised {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:160]}") from e
    if not isinstance(loss, (jax.Array, np.ndarray, np.generic, float, int)) \
            or isinstance(loss, bool):
        raise ConfigError(f"loss_fn: must return a scalar (a 0-d float array), got "
                          f"{type(loss).__name__}")
    if jnp.shape(loss) != ():
        raise ConfigError(f"loss_fn: must return a scalar, got shape {jnp.shape(loss)}")
    if not jnp.issubdtype(jnp.result_type(loss), jnp.floating):
        raise ConfigError(f"loss_fn: must return a floating scalar (to differentiate), got "
                          f"dtype {jnp.result_type(loss)}")
    return loss


def _per_call(g):
    """Statistics per call from the summed probe gradient ``g`` (..., len(STATS)); NaN where
    the module's output never reached the loss (calls = 0)."""
    calls = g[..., STATS.index("calls")]
    reached = calls > 0
    per_call = jnp.where(reached, calls, 1.0)
    entry = {}
    for i, name in enumerate(STATS):
        value = g[..., i] if name == "calls" else g[..., i] / per_call
        entry[name] = value if name == "calls" else jnp.where(reached, value, jnp.nan)
    return entry


def _merge(params, probe_values: dict) -> dict:
    flat = _flat(params)
    flat.update(probe_values)
    return traverse_util.unflatten_dict(flat)


def param_grad_norm(leaves: list, axes: tuple) -> jax.Array:
    """‖∂L/∂θ‖ of a module from the gradients of its parameter ``leaves``, per layer of its
    stacked ``axes`` (``()`` for a plain module; leading axes of every leaf)."""
    norms = jnp.stack([jax.vmap(safe_norm)(g.reshape((-1,) + g.shape[len(axes):])
                                           .reshape(int(np.prod(axes)), -1))
                       for g in leaves])  # (leaves, layers)
    return jax.vmap(safe_norm, in_axes=1)(norms).reshape(axes)


def probe(module: nn.Module, variables, batch, loss_fn: Callable[[Any, Any], jax.Array],
          *, select=None, probes: Probes | None = None, mutable: Sequence[str] = (),
          method=None, call_args: Callable[[Any], tuple] | None = None, **kwargs) -> dict:
    """Measure gradient flow through ``module`` on one batch.

    Args:
        module: any Flax Linen module.
        variables: its variables (``{"params": ..., ...}``).
        batch: the example batch (an array or a dict/pytree).
        loss_fn: ``loss_fn(outputs, batch) -> scalar``.
        select: which submodules to probe (:func:`selection`).
        probes: from :func:`make_probes` (made here if not given).
        mutable: collections the forward pass updates (e.g. ``("batch_stats",)``).
        method: the module method to call (default ``__call__``).
        call_args: ``batch -> positional args of the call`` (default ``(batch,)``).
        **kwargs: keyword arguments of the call (e.g. ``train=True``).

    Returns:
        ``{"loss": scalar, "modules": {path: {stat: array}}, "params": {path: grad norm},
        "order": [path, ...]}``: module statistics have the stacked-layer axes of the
        module's parameters (``()`` for a plain module, ``(L,)`` for a scanned stack);
        parameter-gradient norms are per layer for leaves of a probed stacked module.

    Raises:
        ConfigError: ``loss_fn`` does not return a scalar.
    """
    args = (batch,) if call_args is None else tuple(call_args(batch))
    if probes is None:
        probes = make_probes(module, variables, *args, select=select, mutable=mutable,
                             method=method, **kwargs)
    pred = selection(select)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    in_params = {k[1:]: v for k, v in probes.values.items() if k[0] == "params"}
    in_time = {k[1:]: v for k, v in probes.values.items() if k[0] == TIME}

    def loss_of(params, probe_params, probe_time):
        merged = {**rest, "params": _merge(params, probe_params)}
        if probe_time:
            merged[TIME] = traverse_util.unflatten_dict(probe_time)
        with nn.intercept_methods(_interceptor(pred, None)):
            out = module.apply(merged, *args, mutable=list(mutable) or False, method=method,
                               **kwargs)
        if mutable:
            out = out[0]
        return checked_loss(loss_fn, out, batch)

    loss, (g_params, g_probe_params, g_probe_time) = jax.value_and_grad(
        loss_of, argnums=(0, 1, 2))(params, in_params, in_time)
    g_probes = {**{("params",) + k: v for k, v in g_probe_params.items()},
                **{(TIME,) + k: v for k, v in g_probe_time.items()}}
    modules = {}
    stacked = {}
    for path, key in probes.order:
        g = g_probes[key]
        if key[0] == TIME:  # (time, stats): the entry sums over time, per_step keeps it
            stacked[path] = ()
            entry = _per_call(g.sum(axis=0))
            entry["per_step"] = _per_call(g)
        else:
            stacked[path] = g.shape[:-1]
            entry = _per_call(g)
        modules[path_label(path)] = entry
    flat_grads = _flat(g_params)
    for path, _ in probes.order:
        axes = stacked[path]
        leaves = [g for k, g in flat_grads.items() if k[:len(path)] == path]
        ok = all(g.shape[:len(axes)] == axes for g in leaves)
        entry = modules[path_label(path)]
        if leaves and ok:
            entry["param_grad_norm"] = param_grad_norm(leaves, axes)
        else:  # no parameters below, or not split along the stack axes: not measured
            entry["param_grad_norm"] = jnp.full(axes, jnp.nan)
        entry["param_count"] = jnp.full(axes, sum(
            g.size // max(1, int(np.prod(axes))) for g in leaves) if ok else 0)
    grads = {}
    for key, g in flat_grads.items():
        axes = stacked.get(key[:-1], ())
        if axes and g.shape[:len(axes)] == axes:
            per_layer = g.reshape(int(np.prod(axes)), -1)
            grads["/".join(key)] = jax.vmap(safe_norm)(per_layer).reshape(axes)
        else:
            grads["/".join(key)] = safe_norm(g)
    return {"loss": loss, "modules": modules, "params": grads,
            "order": [path_label(p) for p, _ in probes.order]}


