"""``diagnose``: per-module gradient flow of a user's Flax model, over seeds, as a Dataset.

One call (:func:`diagnose`) or one command (``gradstudy diagnose package.module:factory``)
gives, for every probed submodule in forward order, the back-propagated signal ‖∂L/∂output‖,
the gradient norm of its parameters ‖∂L/∂θ‖, its forward rms and fraction of exact zeros,
for several initialisations (seeds: a ``vmap`` axis), with flags for vanishing, exploding
and dead units, a table, a figure and a netCDF file.

Both norms are needed: in a deep tanh network at small init the weight gradients stay
nearly flat across layers while ‖∂L/∂output‖ falls by orders of magnitude (Glorot & Bengio
2010), so flags on ‖∂L/∂W‖ alone miss vanishing.

This module measures (:func:`diagnose`) and reads the Dataset's structure
(:func:`variant_label`, :func:`outermost_recurrent`); the command's factories are loaded by
:mod:`gradstudy.tools._factory`, the table is in :mod:`gradstudy.tools._diagnosis_table`,
the figure in :mod:`gradstudy.tools._diagnosis_plot`.

References:
    X. Glorot and Y. Bengio. Understanding the difficulty of training deep feedforward
    neural networks. AISTATS 2010.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gradstudy._seeds import seed_keys
from gradstudy._validate import check_int, short_repr
from gradstudy.errors import ConfigError
from gradstudy.tools._monitor import BUDGET_ENV, human_bytes, memory_budget
from gradstudy.tools._nnx_probe import is_nnx_module, make_nnx_probes, nnx_probe, split as nnx_split
from gradstudy.tools._probe import make_probes, path_label, probe

# Flag thresholds, relative to the last probed module (the one nearest the loss).
VANISHING_RATIO = 1e-3  # ‖∂L/∂output‖ (or ‖∂L/∂θ‖) below 1e-3 of the last module's
EXPLODING_RATIO = 1e3  # above 1e3 of the last module's
DEAD_FRACTION = 0.5  # more than half of the outputs exactly 0 (e.g. dead ReLUs)
MODULE_VARS = ("backprop_norm", "param_grad_norm", "out_mean", "out_q", "out_zero_frac",
               "calls")


def diagnose(module, batch, loss_fn: Callable[[Any, Any], jax.Array], *, variables=None,
             init_fn: Callable[..., Any] | None = None, seeds: int | None = None,
             base_seed: int = 0, variants: Mapping[str, Sequence[float]] | None = None,
             select=None, call_args=None, seed_batch: int | None = None, **kwargs):
    """Gradient flow through ``module`` for ``seeds`` initialisations (or given variables).

    Args:
        module: a Flax Linen module; a Flax NNX module (``nnx.Module``: its own weights, one
            "seed"); or a factory ``rngs -> nnx.Module`` (``seeds`` initialisations, each
            ``factory(nnx.Rngs(key))``; with ``variants``, ``factory(rngs, **scalars)``).
        batch: an example batch (array or pytree); ``call_args(batch)`` gives the call's
            positional arguments (default ``(batch,)``).
        loss_fn: ``loss_fn(outputs, batch) -> scalar``.
        variables: Linen only: fixed variables (one "seed"); else ``init_fn(key)`` or
            ``module.init(key, *call_args(batch))`` for each seed.
        init_fn: Linen only: ``key -> variables``; with ``variants``,
            ``init_fn(key, **scalars)``.
        seeds: number of initialisations, a ``vmap`` axis (default 8; 1 with fixed
            ``variables`` or an NNX module instance).
        base_seed: the seeds' keys are ``fold_in(PRNGKey(base_seed), s)``.
        variants: points that differ only in scalars, e.g. ``{"sigma_w2": [0.5, 1, 2]}``
            (every list one value per variant, all of one length): each variant's scalars
            are passed, traced, to ``init_fn`` (or the NNX factory), so all variants × seeds
            run in one compiled program (the same seeds for every variant: common random
            numbers).  Adds a leading ``variant`` dim with the scalars as its coordinates.
        seed_batch: networks evaluated at once (``lax.map`` over batches, ``vmap`` within
            one); default ``seeds``, except 1 for recurrent models (``nn.RNN``,
            ``nnx.RNN``) on CPU (an intermittent XLA deadlock, see the code).
        select: which submodules to probe (:func:`gradstudy.tools.selection`; NNX paths
            are '/'-joined attribute names and list indices, e.g. ``blocks/3/attn``).
        **kwargs: keyword arguments of the model's call (e.g. ``train=True``); for Linen
            also ``mutable=("batch_stats",)``, ``rngs={"dropout": key}`` and ``method``, as
            :func:`gradstudy.tools.probe`.  NNX models hold their own modes and RNG streams
            (``model.train()``/``model.eval()``, ``nnx.Rngs(dropout=...)``).

    Returns:
        xarray Dataset with dims ``seed`` and ``module`` (one entry per probed module and
        layer of a stacked module, in forward order, coordinates ``path``, ``layer`` and
        ``param_count``) and ``param`` (one entry per parameter leaf and layer): variables
        ``backprop_norm``, ``param_grad_norm``, ``out_rms``, ``out_mean``, ``out_q``,
        ``out_zero_frac``, ``calls``, ``grad_norm`` (per parameter leaf) and ``loss``;
        ``attrs["batch_nonfinite"]`` counts NaN/inf entries of the batch (their NaN
        numbers are recorded, not refused: NaN is data).

    Memory: the working bytes of one network (its variables, gradients and the module
    outputs kept for the backward pass, from shapes; at most 3× XLA's own figure, tested)
    are estimated before anything is allocated; networks run ``seed_batch`` at a time
    within ``$GRADSTUDY_MEMORY_GB`` (default 1.0, as sweeps and trainings): a default
    ``seed_batch`` shrinks to fit, a given one or a single network beyond it is refused.

    Raises:
        ConfigError: one line naming the argument: a model that is none of the above, a
            loss that is not callable or returns no floating scalar, a batch without
            arrays or examples, ``variables`` (or ``init_fn``'s) of another model, bad
            ``seeds``/``base_seed``/``seed_batch``/``variants``/``call_args``, nothing
            selected, beyond the memory budget; an exception of the user's code names the
            step that raised it (initialising the model, calling it, the loss).
    """
    if not callable(loss_fn):
        raise ConfigError(f"loss_fn: must be callable (outputs, batch) -> scalar, got "
                          f"{type(loss_fn).__name__}")
    base_seed = check_int("base_seed", _scalar_int(base_seed), 0, 2**32 - 1)
    if seed_batch is not None:
        _check_seeds(seed_batch, "seed_batch")
    args = _call_arguments(batch, call_args)
    module = _unwrap_bridge(module, variables, init_fn)
    if not isinstance(module, nn.Module):
        linen_class = isinstance(module, type) and issubclass(module, nn.Module)
        if is_nnx_module(module) or (callable(module) and not linen_class):
            return _diagnose_nnx(module, batch, loss_fn, args, kwargs, variables=variables,
                                 init_fn=init_fn, seeds=seeds, base_seed=base_seed,
                                 variants=variants, select=select, seed_batch=seed_batch,
                                 call_args=call_args)
        hint = " (a Linen class: pass an instance, e.g. Model())" if linen_class else ""
        raise ConfigError(f"module: must be a flax.linen.Module, a flax.nnx.Module or a "
                          f"factory rngs -> nnx.Module, got {type(module).__name__}{hint}")
    if init_fn is not None and not callable(init_fn):
        raise ConfigError(f"init_fn: must be None or a callable key -> variables, got "
                          f"{type(init_fn).__name__}")
    scalars = _check_variants(variants, variables, init_fn)
    n_variants = 1 if scalars is None else len(next(iter(scalars.values())))
    if variables is None:
        seeds = _check_seeds(8 if seeds is None else seeds)
        init = _initialiser(module, args, kwargs, init_fn, scalars)
        keys = seed_keys(base_seed, seeds)
    else:
        _check_seeds(1 if seeds is None else seeds)
        _check_variables_tree("variables", variables)
        seeds, keys, init = 1, None, None
    step = ("initialising the model with init_fn" if init_fn is not None
            else "initialising the model (module.init)")
    example = _step("init_fn" if init_fn is not None else "module", step, batch, call_args,
                    lambda: _example_variables(variables, init, keys, scalars))
    if variables is None:
        _check_variables_tree("init_fn", example)
    given = "variables" if variables is not None else "init_fn" if init_fn is not None else None

    def matched(fn):
        """``fn()``; when it fails and the variables were given (or made by ``init_fn``),
        variables of another model are named instead (checked only then: a check up front
        costs a trace and cannot tell the parameters a ``method=`` call leaves unused)."""
        try:
            return fn()
        except Exception:
            if given is not None:
                _check_matches(module, args, kwargs, example, given)
            raise
    probes = matched(lambda: _step(
        "module", "calling the model on the batch", batch, call_args,
        lambda: make_probes(module, example, *args, select=select, **kwargs)))
    if not probes.order:
        raise ConfigError("select: no submodule of the model was selected for probing")
    per_network = _network_bytes(example, probes.activation_bytes, len(probes.order))

    def one(variables):
        out = probe(module, variables, batch, loss_fn, select=select, probes=probes,
                    call_args=call_args, **kwargs)
        return {"loss": out["loss"], "modules": out["modules"], "params": out["params"]}

    order = [path_label(p) for p, _ in probes.order]
    return matched(lambda: _measure(
        one, init, keys, scalars, variables, seeds, n_variants, seed_batch, probes.recurrent,
        order, type(module).__name__, per_network + _tree_bytes(batch),
        _nonfinite_entries(batch)))


def _measure(one, init, keys, scalars, variables, seeds, n_variants, seed_batch,
             recurrent: bool, order: list[str], model: str, per_network: int,
             batch_nonfinite: int = 0):
    """Run ``one`` on every network (or on the fixed ``variables``) and build the Dataset."""
    if variables is None:
        given = seed_batch is not None
        if seed_batch is None:
            seed_batch = _default_seed_batch(recurrent, seeds)
        seed_batch = _check_seeds(seed_batch, "seed_batch")
        seed_batch = plan_seed_batch(per_network, n_variants * seeds, seed_batch, given, model)
        result = _run_networks(one, init, keys, scalars, seeds, n_variants, seed_batch)
        seeds = n_variants * seeds  # networks, split into (variant, seed) below
    else:
        plan_seed_batch(per_network, 1, 1, False, model)
        result = jax.tree.map(lambda a: a[None], jax.jit(one)(variables))
    result = jax.device_get(result)
    ds = _dataset(result, order, seeds, model)
    # data, not an error: NaN in the batch gives NaN numbers, recorded; the count says why
    ds.attrs["batch_nonfinite"] = batch_nonfinite
    if scalars is not None:
        ds = _split_variants(ds, n_variants, {k: np.asarray(v) for k, v in scalars.items()})
    _name_norms(ds)
    return ds


def _unwrap_bridge(module, variables, init_fn):
    """An NNX class wrapped by ``nnx.bridge.to_linen`` hides its submodules from Linen's
    interceptors: diagnose the NNX model it builds instead (a factory ``rngs -> model``),
    unless the caller gives Linen variables or an ``init_fn`` for the wrapper."""
    if not isinstance(module, nnx.bridge.ToLinen) or variables is not None \
            or init_fn is not None:
        return module
    cls, args, kwargs = module.nnx_class, tuple(module.args), dict(module.kwargs or {})
    if module.skip_rng:
        return lambda rngs: cls(*args, **kwargs)
    return lambda rngs: cls(*args, rngs=rngs, **kwargs)


def _diagnose_nnx(model, batch, loss_fn, args, kwargs, *, variables, init_fn, seeds,
                  base_seed, variants, select, seed_batch, call_args):
    """:func:`diagnose` of an NNX module (its weights) or of a factory ``rngs -> module``."""
    if variables is not None or init_fn is not None:
        raise ConfigError("variables, init_fn: for Linen modules only; an NNX model holds its "
                          "variables: pass the module (its weights) or a factory "
                          "rngs -> nnx.Module (fresh weights per seed)")
    if is_nnx_module(model):
        if variants is not None:
            raise ConfigError("variants: need a factory rngs, **scalars -> nnx.Module, not a "
                              "module instance (the scalars enter through the construction)")
        if seeds not in (None, 1):
            raise ConfigError(f"seeds: an nnx.Module instance has one set of weights, got "
                              f"seeds={seeds!r}; pass a factory rngs -> nnx.Module for "
                              "several initialisations")
        graphdef, params, rest = nnx_split(model)
        probes = _step("module", "calling the model on the batch", batch, call_args,
                       lambda: make_nnx_probes(graphdef, params, rest, args, kwargs, select))
        fixed, init, keys, scalars, seeds, n_variants = (params, rest), None, None, None, 1, 1
        name = type(model).__name__
    else:
        scalars = _check_variants(variants, None, model)
        n_variants = 1 if scalars is None else len(next(iter(scalars.values())))
        seeds = _check_seeds(8 if seeds is None else seeds)
        keys = seed_keys(base_seed, seeds)

        def init(key, **values):  # the factory's result is checked below, abstractly
            return nnx_split(model(nnx.Rngs(key), **values))[1:]

        first = {k: v[0] for k, v in scalars.items()} if scalars is not None else {}
        try:
            abstract = nnx.eval_shape(lambda: model(nnx.Rngs(keys[0]), **first))
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 -- the user's factory: one line
            raise ConfigError(f"module: the factory {getattr(model, '__name__', model)!s}"
                              f"(rngs) raised {type(e).__name__}: "
                              f"{' '.join(str(e).split())[:160]}") from None
        if not is_nnx_module(abstract):
            raise ConfigError(f"module: a callable model must be a factory rngs -> "
                              f"nnx.Module; it returned {type(abstract).__name__}")
        graphdef, params, rest = nnx_split(abstract)
        probes = _step("module", "calling the model on the batch", batch, call_args,
                       lambda: make_nnx_probes(graphdef, params, rest, args, kwargs, select))
        fixed, name = None, type(abstract).__name__
    if not probes.order:
        raise ConfigError("select: no submodule of the model was selected for probing")

    def one(state):
        params, rest = state
        out = nnx_probe(probes, params, rest, batch, loss_fn, args=args, kwargs=kwargs)
        return {"loss": out["loss"], "modules": out["modules"], "params": out["params"]}

    order = [path_label(p) for p in probes.order]
    per_network = _network_bytes((params, rest), probes.activation_bytes, len(probes.order))
    return _measure(one, init, keys, scalars, fixed, seeds, n_variants, seed_batch,
                    probes.recurrent, order, name, per_network + _tree_bytes(batch),
                    _nonfinite_entries(batch))


# ------------------------------------------------------------- checks of the arguments


def _call_arguments(batch, call_args) -> tuple:
    """The model call's positional arguments: ``(batch,)`` or ``call_args(batch)``; a
    batch without arrays, a ``call_args`` that is not callable, raises or does not return a
    sequence: one line naming the argument."""
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ConfigError(f"batch: must be an array or a pytree (dict, tuple) of arrays, got "
                          f"{short_repr(batch)}")
    if call_args is None:
        _check_nonempty(leaves)
        return (batch,)
    if not callable(call_args):
        raise ConfigError(f"call_args: must be None or a callable batch -> tuple of the call's "
                          f"positional arguments, got {type(call_args).__name__}")
    try:
        args = call_args(batch)
    except Exception as e:  # noqa: BLE001 -- the user's function: one line naming it
        raise ConfigError(f"call_args: calling it on the batch raised {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:160]}") from e
    if not isinstance(args, (tuple, list)):
        raise ConfigError(f"call_args: must return a tuple of the call's positional "
                          f"arguments, e.g. lambda b: (b['x'],), got {type(args).__name__}")
    # the model's inputs only: an unused empty leaf of a dict batch (a mask) is fine
    _check_nonempty(jax.tree.leaves(tuple(args)))
    return tuple(args)


def _check_nonempty(leaves) -> None:
    """A mean over no examples is NaN, not a measurement: an empty input array is refused."""
    empty = [x for x in leaves if hasattr(x, "shape") and 0 in np.shape(x)]
    if empty:
        raise ConfigError(f"batch: an array of the batch has no entries (shape "
                          f"{tuple(np.shape(empty[0]))}); give at least one example")


def _step(name: str, what: str, batch, call_args, fn):
    """``fn()``; an exception of the user's code becomes one line naming the argument
    ``name`` and the step that failed (and, for a dict batch passed whole, ``call_args``)."""
    # warnings of a step that fails are noise next to its one-line error: kept back, and
    # shown only if the step succeeds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 -- the user's model: one line naming the step
            error = e
            result = None
        else:
            error = None
    if error is None:
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result
    hint = ""
    text = str(error)
    # only where the dict itself was used as an array (the hint misleads on other errors):
    # "'dict' object has no attribute 'shape'", "<class 'dict'> is not a valid JAX type",
    # a Linen layer's jnp.shape(dict)[-1] (a dict has shape ()), nnx.Linear's dot_general
    as_array = (re.search(r"\bdict\b", text) is not None
                or (isinstance(error, IndexError) and "tuple index out of range" in text)
                or "entry not a 2- or 3- tuple" in text)
    if call_args is None and isinstance(batch, Mapping) and as_array:
        hint = ("; the batch is a dict, passed whole as the model's input: choose the "
                "call's arguments with the call_args option, e.g. "
                "call_args=lambda b: (b['x'],)")
    # chained: the Python traceback keeps the user's frame; the CLI prints one line
    raise ConfigError(f"{name}: {what} raised {type(error).__name__}: "
                      f"{' '.join(str(error).split())[:160]}{hint}") from error


def _check_variables_tree(name: str, variables) -> None:
    """Linen variables are a dict of collections with a ``params`` dict of arrays."""
    if not isinstance(variables, Mapping) or not isinstance(variables.get("params"), Mapping):
        got = ("a dict without a 'params' collection" if isinstance(variables, Mapping)
               else "an array" if hasattr(variables, "shape") else type(variables).__name__)
        what = "return" if name == "init_fn" else "be"
        raise ConfigError(f"{name}: must {what} Linen variables, a dict "
                          f"{{'params': {{...}}, ...}} as module.init gives, got {got}")
    bad = [x for x in jax.tree.leaves(variables) if not hasattr(x, "shape")]
    if bad:
        raise ConfigError(f"{name}: every leaf must be an array, got {type(bad[0]).__name__}")


def _check_matches(module, args, kwargs, variables, name: str) -> None:
    """``variables`` (given or from ``init_fn``) must have the parameters ``module.init``
    makes, with the same shapes: those of another model are one line naming ``name``.
    Extra parameters are not refused: ``apply`` ignores them, and a ``method=`` call (e.g.
    ``Model.encode``) uses a part of the full variables."""
    from flax import traverse_util

    init = _initialiser(module, args, kwargs, None, None)
    try:
        expected = jax.eval_shape(init, jax.random.PRNGKey(0))["params"]
    except Exception:  # noqa: BLE001 -- a model that cannot init here: the call decides
        return
    want = traverse_util.flatten_dict(dict(expected))
    have = traverse_util.flatten_dict(dict(variables["params"]))
    missing = [k for k in want if k not in have]
    shapes = [k for k in want if k in have and tuple(have[k].shape) != tuple(want[k].shape)]
    if missing or shapes:
        if shapes:
            k = shapes[0]
            detail = (f"params/{'/'.join(k)} has shape {tuple(have[k].shape)}, module.init "
                      f"on this batch gives {tuple(want[k].shape)}")
        else:
            detail = f"the module's params/{'/'.join(missing[0])} is missing"
        raise ConfigError(f"{name}: the variables do not match the module on this batch "
                          f"({detail}; {len(missing)} missing, {len(shapes)} of another "
                          f"shape)")


# ------------------------------------------------------------------------ memory


def _nonfinite_entries(batch) -> int:
    """Number of NaN/inf entries in the floating arrays of ``batch``."""
    def floating(x):
        # a typed PRNG key (key<fry>) cannot become a numpy array: checked on its dtype first
        dtype = getattr(x, "dtype", None)
        if dtype is None or jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return False
        try:
            return np.issubdtype(np.dtype(dtype), np.inexact)
        except TypeError:  # another extended dtype: not numbers
            return False
    return int(sum(np.sum(~np.isfinite(np.asarray(x))) for x in jax.tree.leaves(batch)
                   if floating(x)))


def _tree_bytes(tree) -> int:
    """Bytes of the arrays of ``tree`` (PRNG key arrays count 8 bytes per key)."""
    def size(x):
        try:
            itemsize = np.dtype(x.dtype).itemsize
        except TypeError:  # e.g. a typed PRNG key (key<fry>): two uint32
            itemsize = 8
        return int(np.prod(np.shape(x))) * itemsize
    return sum(size(x) for x in jax.tree.leaves(tree) if hasattr(x, "shape"))


def _network_bytes(variables, activation_bytes: int, n_probes: int) -> int:
    """Working bytes of one network's measurement, estimated from shapes: its variables
    (the initialised copy, their gradient and one in flight: 3×, plus one for the probes'
    tangents) and, for the backward pass, every module output kept and its cotangent and
    one temporary (3×); the results are small (a few numbers per module)."""
    return 4 * _tree_bytes(variables) + 3 * activation_bytes + 64 * n_probes


def plan_seed_batch(per_network: int, networks: int, seed_batch: int, given: bool,
                    model: str, budget: int | None = None) -> int:
    """Networks evaluated at once (the ``lax.map`` batch) within the memory budget.

    A ``seed_batch`` the caller did not give shrinks to fit (the numbers do not depend on
    it); a given one that does not fit, or one network that does not, is refused with one
    line, the engine's wording.
    """
    budget = memory_budget() if budget is None else budget
    seed_batch = min(seed_batch, networks)
    if per_network > budget:
        raise ConfigError(
            f"memory: this diagnosis needs ≈ {human_bytes(per_network)} per network "
            f"({model}: parameters, gradients and the activations of the batch) but the "
            f"budget is {human_bytes(budget)}; use a smaller model or batch, or raise "
            f"{BUDGET_ENV}")
    fit = max(1, budget // per_network)
    if seed_batch <= fit:
        return seed_batch
    if given:
        raise ConfigError(
            f"seed_batch: {seed_batch} networks at once need ≈ "
            f"{human_bytes(seed_batch * per_network)} ({model}: "
            f"{human_bytes(per_network)} per network) but the budget is "
            f"{human_bytes(budget)}; use seed_batch ≤ {fit}, or raise {BUDGET_ENV}")
    n_chunks = -(-networks // fit)
    return -(-networks // n_chunks)


# ------------------------------------------------------------------ running the networks


def _initialiser(module, args, kwargs, init_fn, scalars):
    """``key [, **scalars] -> variables``: ``init_fn``, else ``module.init`` on the call's
    arguments (with variants, ``init_fn`` is required and checked already).

    ``mutable`` is the apply's business (``init`` creates every collection), and the call's
    own ``rngs`` (e.g. ``{"dropout": key}``) are passed with the seed's ``params`` key."""
    if scalars is not None or init_fn is not None:
        return init_fn
    call_kwargs = {k: v for k, v in kwargs.items() if k not in ("mutable", "rngs")}
    rngs = dict(kwargs.get("rngs") or {})
    return lambda key: module.init({**rngs, "params": key}, *args, **call_kwargs)


def _example_variables(variables, init, keys, scalars):
    """Variables (or their shapes) of one network, for finding the probed modules."""
    if variables is not None:
        return variables
    if scalars is None:
        return jax.eval_shape(init, keys[0])
    return jax.eval_shape(lambda key: init(key, **{k: v[0] for k, v in scalars.items()}),
                          keys[0])


def _default_seed_batch(recurrent: bool, seeds: int) -> int:
    """Networks per ``lax.map`` batch when the caller gives none."""
    # XLA's CPU runtime (jax 0.10.2) intermittently deadlocks on a vmapped nn.RNN
    # program (measured: 3 of 6 runs of examples.models:lstm_classifier with 8
    # vmapped seeds hung, and 1 of 6 of the same model's plain jax.grad without
    # gradstudy; with lax.map over seeds, 0 of 16 and 0 of 6), so seeds of
    # recurrent models run one at a time there
    return 1 if recurrent and jax.default_backend() == "cpu" else seeds


def _run_networks(one, init, keys, scalars, seeds: int, n_variants: int, seed_batch: int):
    """``one`` of every initialised network in one compiled program, a leading axis of
    ``n_variants * seeds`` networks (variant-major)."""
    n = n_variants * seeds
    if scalars is None:
        program = jax.jit(lambda ks: jax.lax.map(lambda key: one(init(key)), ks,
                                                 batch_size=min(seed_batch, n)))
        return program(keys)
    # network v·S + s is variant v with seed s; the scalars are traced: one program
    flat = {k: jnp.repeat(v, seeds) for k, v in scalars.items()}

    def one_network(args):
        key, values = args
        return one(init(key, **values))

    program = jax.jit(lambda ks, sc: jax.lax.map(one_network, (ks, sc),
                                                 batch_size=min(seed_batch, n)))
    return program(jnp.tile(keys, (n_variants,) + (1,) * (keys.ndim - 1)), flat)


# ------------------------------------------------------------------------- the Dataset


def _dataset(result, order: list[str], seeds: int, model: str):
    """The probed values of ``seeds`` networks (host arrays) as a Dataset."""
    import xarray as xr

    labels, paths, layers, counts, columns = _module_rows(result["modules"], order, seeds)
    data = {name: (("seed", "module"), np.stack(columns[name], axis=1)) for name in MODULE_VARS}
    with np.errstate(invalid="ignore"):
        data["out_rms"] = (("seed", "module"), np.sqrt(np.stack(columns["out_q"], axis=1)))
    param_labels, param_values = _param_rows(result["params"], seeds)
    data["grad_norm"] = (("seed", "param"), np.stack(param_values, axis=1))
    data["loss"] = (("seed",), np.asarray(result["loss"]))
    coords = {"seed": np.arange(seeds), "module": labels, "path": ("module", paths),
              "layer": ("module", layers), "param_count": ("module", counts),
              "param": param_labels}
    _add_per_step(data, coords, result["modules"], order, seeds)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({
        "model": model,
        "title": "gradient flow per probed submodule (gradstudy.tools.diagnose); NaN where "
                 "a module's output does not reach the loss (calls = 0); a module "
                 "applied at several time steps (calls > 1) has per-call averages",
        "thresholds": f"vanishing < {VANISHING_RATIO:g}, exploding > {EXPLODING_RATIO:g} "
                      f"(ratio to the last module); dead: zero fraction > {DEAD_FRACTION:g}",
    })
    return ds


def _module_rows(modules, order: list[str], seeds: int):
    """One row per probed module and layer of a stacked module, in forward order: labels,
    paths, layers (-1 if not stacked), parameter counts and per-seed columns of
    :data:`MODULE_VARS`."""
    labels, paths, layers, columns = [], [], [], {name: [] for name in MODULE_VARS}
    counts = []
    for path in order:
        entry = modules[path]
        n_layers = int(np.prod(entry["calls"].shape[1:]))
        for layer in range(n_layers):
            stacked = entry["calls"].ndim > 1
            labels.append(f"{path}[{layer}]" if stacked else path)
            paths.append(path)
            layers.append(layer if stacked else -1)
            counts.append(int(np.asarray(entry["param_count"]).reshape(seeds, -1)[0, layer]))
            for name in MODULE_VARS:
                columns[name].append(np.asarray(entry[name]).reshape(seeds, -1)[:, layer])
    return labels, paths, layers, counts, columns


def _param_rows(params, seeds: int):
    """One label and per-seed column per parameter leaf and layer."""
    param_labels, param_values = [], []
    for key, value in params.items():
        value = np.asarray(value).reshape(seeds, -1)
        for layer in range(value.shape[1]):
            param_labels.append(f"{key}[{layer}]" if value.shape[1] > 1 else key)
            param_values.append(value[:, layer])
    return param_labels, param_values


def _add_per_step(data: dict, coords: dict, modules, order: list[str], seeds: int) -> None:
    """Modules inside an nn.RNN: every time step (the BPTT signal ‖∂L/∂output_t‖), as
    ``<name>_per_step`` on (seed, recurrent_module, time), NaN-padded to the longest."""
    recurrent = [p for p in order if "per_step" in modules[p]]
    if not recurrent:
        return
    steps = {p: modules[p]["per_step"] for p in recurrent}
    n_steps = max(np.asarray(v["calls"]).shape[-1] for v in steps.values())
    for name in ("backprop_norm", "out_q", "calls"):
        block = np.full((seeds, len(recurrent), n_steps), np.nan)
        for j, p in enumerate(recurrent):
            value = np.asarray(steps[p][name]).reshape(seeds, -1)
            block[:, j, :value.shape[1]] = value
        data[f"{name}_per_step"] = (("seed", "recurrent_module", "time"), block)
    coords.update({"recurrent_module": recurrent, "time": np.arange(n_steps)})


def _name_norms(ds) -> None:
    """The two gradient norms' ``long_name`` attributes (axis and legend labels)."""
    for name in ("backprop_norm", "param_grad_norm"):
        ds[name].attrs["long_name"] = {"backprop_norm": "‖∂L/∂output‖",
                                       "param_grad_norm": "‖∂L/∂θ‖ (parameters below)"}[name]


# ----------------------------------------------------------------- checks and variants


def _check_variants(variants, variables, init_fn) -> dict[str, jax.Array] | None:
    """The variants' scalars as float arrays of one length, or None; ConfigError else."""
    if variants is None:
        return None
    if variables is not None or init_fn is None:
        raise ConfigError("variants: need init_fn(key, **scalars) and no fixed variables "
                          "(the scalars enter through the initialisation)")
    if not isinstance(variants, Mapping) or not variants:
        raise ConfigError(f"variants: must be a non-empty dict name -> list of numbers, "
                          f"got {type(variants).__name__}")
    out, length = {}, None
    for name, values in variants.items():
        if not isinstance(name, str) or not name.isidentifier() or name in ("seed", "variant"):
            raise ConfigError(f"variants: names must be identifiers other than seed and "
                              f"variant, got {name!r}")
        try:
            array = np.asarray(values, float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim != 1 or not 1 <= array.size <= 4096 \
                or not np.all(np.isfinite(array)):
            raise ConfigError(f"variants: {name} must be a list of 1 to 4096 finite numbers, "
                              f"got {values!r}"[:200])
        if length is not None and array.size != length:
            raise ConfigError(f"variants: every list needs one value per variant; "
                              f"{next(iter(out))} has {length}, {name} has {array.size}")
        length = array.size
        out[name] = jnp.asarray(array)
    return out


def _split_variants(ds, n_variants: int, scalars: dict[str, np.ndarray]):
    """The flat network axis ``seed`` (variant-major) as dims (variant, seed)."""
    import xarray as xr

    seeds = ds.sizes["seed"] // n_variants
    data = {}
    for name, var in ds.data_vars.items():
        if "seed" in var.dims:
            values = var.values.reshape((n_variants, seeds) + var.shape[1:])
            data[name] = (("variant",) + var.dims, values, var.attrs)
        else:
            data[name] = var
    coords = {k: v for k, v in ds.coords.items() if "seed" not in v.dims}
    coords.update({"variant": np.arange(n_variants), "seed": np.arange(seeds),
                   **{k: ("variant", v) for k, v in scalars.items()}})
    out = xr.Dataset(data, coords, ds.attrs)
    out.attrs["variants"] = ", ".join(scalars)
    return out


def variant_label(ds, k: int) -> str:
    """``"sigma_w2=0.5"`` for variant ``k`` of a Dataset with a ``variant`` dim."""
    names = [n.strip() for n in ds.attrs.get("variants", "").split(",") if n.strip()]
    return ", ".join(f"{n}={float(ds[n].values[k]):g}" for n in names)


def _check_seeds(seeds, name: str = "seeds") -> int:
    """``seeds`` as an int in [1, 4096]; ConfigError naming ``name`` else."""
    seeds = _scalar_int(seeds)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) \
            or not 1 <= seeds <= 4096:
        raise ConfigError(f"{name}: must be an integer in [1, 4096], got {seeds!r}")
    return int(seeds)


def outermost_recurrent(ds) -> list[str]:
    """The recurrent modules (inside an nn.RNN) that are not inside another of them: the
    cells, whose ‖∂L/∂output_t‖ is the back-propagated signal through time."""
    if "recurrent_module" not in ds.coords:
        return []
    names = [str(m) for m in ds.recurrent_module.values]
    return [m for m in names if not any(m.startswith(o + "/") for o in names if o != m)]


def _scalar_int(value):
    """A 0-d integer JAX/numpy array (``jnp.int32(3)``) as a Python int; anything else as
    given (the range checks word the error)."""
    dtype = getattr(value, "dtype", None)
    if (getattr(value, "shape", None) == () and dtype is not None
            and not jax.dtypes.issubdtype(dtype, jax.dtypes.extended)
            and np.issubdtype(np.dtype(dtype), np.integer)):
        return int(value)
    return value
