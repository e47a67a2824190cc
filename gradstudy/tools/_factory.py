"""The factories of ``gradstudy diagnose FACTORY``: load one by name, call it, check its
answer.

A factory is ``"package.module:function"`` (or ``"path/to/file.py:function"``) naming a
function of no arguments that returns ``(module, batch, loss_fn)`` or ``(module, batch,
loss_fn, options)``.  ``examples.X`` names the user's own ``examples`` package when one is
importable (from the current directory first); otherwise it names the example models that
the wheel carries (``gradstudy.examples.X``), so that ``gradstudy diagnose
examples.models:cnn1d`` works from any directory after ``pip install gradstudy``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
from flax import nnx

from gradstudy.errors import ConfigError
from gradstudy.tools._diagnose import diagnose

#: the top-level package name that falls back to gradstudy's packaged example models
EXAMPLES = "examples"
PACKAGED_EXAMPLES = "gradstudy.examples"
RETURNS = "(module, batch, loss_fn) or (module, batch, loss_fn, options)"


def load_factory(spec: str):
    """``"package.module:factory"`` (or ``"path/to/file.py:factory"``) → the callable.

    ``examples.<module>`` falls back to ``gradstudy.examples.<module>`` when no ``examples``
    package is importable (a user's own, e.g. in the current directory, always wins).

    Raises:
        ConfigError: one line naming what could not be imported or found.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"factory: expected 'package.module:function', got {spec!r}")
    target, name = spec.split(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no file {target}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(mod)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            mod = _import(target)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- any import failure: one line
        raise ConfigError(f"factory: cannot import {target!r} "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ConfigError(f"factory: {target!r} has no callable {name!r}")
    return fn


def _import(target: str):
    """``import target``; ``examples.X`` → ``gradstudy.examples.X`` when there is no
    ``examples`` package at all (not when the user's lacks X, nor when X fails inside)."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        head, _, rest = target.partition(".")
        if head != EXAMPLES or e.name != EXAMPLES:
            raise
    packaged = PACKAGED_EXAMPLES + (f".{rest}" if rest else "")
    try:
        return importlib.import_module(packaged)
    except ModuleNotFoundError as e:
        if e.name is None or not packaged.startswith(e.name):
            raise  # a module that the packaged example itself imports is missing
        raise ModuleNotFoundError(f"No module named {target!r} (neither an 'examples' "
                                  f"package of yours nor {packaged!r})", name=target) from None


def call_factory(fn):
    """Call a factory: ``(module, batch, loss_fn)`` or ``(module, batch, loss_fn, options)``
    with options for :func:`diagnose` (e.g. ``{"call_args": ..., "train": False}``).

    ``module`` is a ``flax.linen.Module``, a ``flax.nnx.Module``, or a callable (e.g.
    ``rngs -> nnx.Module``, which :func:`diagnose` calls once per seed).
    """
    import flax.linen as nn
    from flax import nnx

    name = getattr(fn, "__name__", fn)
    try:
        made = fn()
    except SystemExit as e:  # sys.exit() in the user's code: not our exit status
        raise ConfigError(f"factory: calling {name}() raised SystemExit({e.code!r}); a "
                          f"factory must return {RETURNS}, not exit") from None
    except Exception as e:  # noqa: BLE001 -- the user's code: one line
        raise ConfigError(f"factory: {name}() raised "
                          f"{type(e).__name__}: {' '.join(str(e).split())[:160]}") from None
    if not (isinstance(made, tuple) and len(made) in (3, 4)):
        got = (f"a tuple of {len(made)} items" if isinstance(made, tuple)
               else type(made).__name__)
        raise ConfigError(f"factory: must return {RETURNS}, got {got}")
    module, batch, loss_fn = made[:3]
    options = made[3] if len(made) == 4 else {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ConfigError(f"factory: must return {RETURNS} with options a dict of diagnose() "
                          f"keyword arguments (e.g. {{'call_args': ...}}); its fourth item is "
                          f"{'an array' if hasattr(options, 'shape') else type(options).__name__}")
    options = dict(options)
    if not (isinstance(module, (nn.Module, nnx.Module)) or callable(module)):
        raise ConfigError(f"factory: first item must be a flax.linen.Module, a "
                          f"flax.nnx.Module or a callable rngs -> nnx.Module, got "
                          f"{type(module).__name__}")
    if not callable(loss_fn):
        raise ConfigError("factory: third item (loss_fn) must be callable")
    _check_options(module, options)
    return module, batch, loss_fn, options


def _check_options(module, options: dict) -> None:
    """Option keys must be :func:`diagnose` keyword arguments or keyword arguments of the
    model's call (``train=False``, ``method=``); a misspelt one (``seed_bach``) is one line
    naming it, not a failure of the model.  A call taking ``**kwargs``, or a factory
    ``rngs -> nnx.Module`` (its model unknown until called), accepts any other key."""
    params = inspect.signature(diagnose).parameters
    own = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    positional = [n for n, p in params.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in options:
        if key in positional:
            raise ConfigError(f"factory: option {key!r} is a positional item of the factory's "
                              f"answer {RETURNS}, not an option; options are "
                              f"{', '.join(own)} or keyword arguments of the model's call")
    call = None
    if isinstance(module, nn.Module):
        method = options.get("method")
        call = method if callable(method) else type(module).__call__
    elif isinstance(module, nnx.Module):
        call = type(module).__call__
    try:
        accepted = inspect.signature(call).parameters if call is not None else None
    except (TypeError, ValueError):  # a builtin or wrapped call: the model decides
        accepted = None
    if accepted is None or any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return
    allowed = set(own) | {n for n, p in accepted.items()
                          if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                          and n != "self"}
    if isinstance(module, nn.Module):
        allowed.add("method")
    for key in options:
        if key not in allowed:
            model = sorted(allowed - set(own))
            raise ConfigError(f"factory: unknown option {key!r}; options are diagnose()'s "
                              f"{', '.join(own)}, or the model call's "
                              f"{', '.join(model) if model else '(none)'}")
