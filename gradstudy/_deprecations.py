"""The import paths of gradstudy 0.1's flat layout, served for one release from one table.

gradstudy 0.1 had 33 modules in one folder (``gradstudy.sweep``, ``gradstudy.train``,
``gradstudy.probes``, ...).  They now live in concept folders behind public faces
(``gradstudy.engine``, ``gradstudy.families.mlp``, ...).  Every old path keeps working until
gradstudy 0.2: ``import gradstudy.sweep``, ``from gradstudy.sweep import Sweep`` and
``gradstudy.sweep.Sweep`` are served by a module created from :data:`MOVED_MODULES` and
:data:`MOVED_NAMES`, and each name looked up there emits a ``DeprecationWarning`` naming its
new path.  The pattern is optax's ``_deprecations``: one table, a module ``__getattr__``.

``gradstudy.diagnose``, ``gradstudy.monitor`` and ``gradstudy.probe`` were modules that
could be called; they are the functions themselves now, also where ``import
gradstudy.diagnose`` asks for the old module (the import returns the function, so it cannot
replace ``gradstudy.diagnose`` by a module).  The old modules' functions hang on them and
warn when called (``gradstudy.monitor.to_dataset``, ``gradstudy.diagnose.format_table``);
their classes and constants hang on them as they are, without a warning (a function's
attributes cannot warn on access).

A name that is no longer public (e.g. ``gradstudy.config.check_int``) still resolves; its
warning says so and where it lives now.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

REMOVED_IN = "0.2"

# old module -> (its public home, the private modules holding the rest, in lookup order)
MOVED_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "activations": ("gradstudy.nn", ("gradstudy.nn._activations",)),
    "initializers": ("gradstudy.nn", ("gradstudy.nn._initializers",)),
    "fingerprint": ("gradstudy.nn", ("gradstudy.nn._fingerprint",)),
    "config": ("gradstudy.families.mlp", ("gradstudy.families.mlp._spec",
                                          "gradstudy._validate")),
    "models": ("gradstudy.families.mlp", ("gradstudy.families.mlp._model",
                                          "gradstudy.nn._normalize", "gradstudy.nn._losses",
                                          "gradstudy._numerics", "gradstudy._validate")),
    "probes": ("gradstudy.families.mlp", ("gradstudy.families.mlp._probes",)),
    "mlp_family": ("gradstudy.families.mlp", ("gradstudy.families.mlp._family",)),
    "family": ("gradstudy.families", ("gradstudy.families._registry",
                                      "gradstudy.families._base")),
    "rnn": ("gradstudy.families.rnn", ("gradstudy.families.rnn._spec",
                                            "gradstudy.families.rnn._model",
                                            "gradstudy.families.rnn._through_time",
                                            "gradstudy.families.rnn._family")),
    "cnn": ("gradstudy.families.cnn", ("gradstudy.families.cnn._spec",
                                       "gradstudy.families.cnn._model",
                                       "gradstudy.families.cnn._measure",
                                       "gradstudy.families.cnn._family")),
    "predictions": ("gradstudy.theory", ("gradstudy.theory._predictions",)),
    "chain": ("gradstudy.theory", ("gradstudy.theory._chain",)),
    "sweep": ("gradstudy.engine", ("gradstudy.engine._sweep", "gradstudy.families.mlp._family",
                                   "gradstudy._seeds")),
    "train": ("gradstudy.engine", ("gradstudy.engine._training_spec",
                                   "gradstudy.engine._training_programs",
                                   "gradstudy.engine._checkpoints",
                                   "gradstudy.engine._training")),
    "optim": ("gradstudy.engine", ("gradstudy.engine._optim",)),
    "memory": ("gradstudy.engine", ("gradstudy.engine._memory",
                                    "gradstudy.families.mlp._memory")),
    "curvature": ("gradstudy.engine", ("gradstudy.engine._curvature",)),
    "probe": ("gradstudy.tools", ("gradstudy.tools._probe", "gradstudy._numerics")),
    "diagnose": ("gradstudy.tools", ("gradstudy.tools._diagnose",
                                      "gradstudy.tools._factory",
                                      "gradstudy.tools._diagnosis_table",
                                      "gradstudy.tools._diagnosis_plot")),
    "monitor": ("gradstudy.tools", ("gradstudy.tools._monitor", "gradstudy.tools._monitor_dataset",
                                     "gradstudy.tools._monitor_plot")),
    "tasks": ("gradstudy.data", ("gradstudy.data._tasks",)),
    "study": ("gradstudy.studies", ("gradstudy.studies._protocol", "gradstudy.studies._stats")),
    "stats": ("gradstudy.studies", ("gradstudy.studies._stats",)),
    "report": ("gradstudy.studies", ("gradstudy.studies._report",)),
}

# (old module, old name) -> "new.module:new_name", where the name changed or moved elsewhere
MOVED_NAMES: dict[tuple[str, str], str] = {
    ("config", "check_int"): "gradstudy._validate:check_int",
    ("config", "check_real"): "gradstudy._validate:check_real",
    ("config", "check_choice"): "gradstudy._validate:check_choice",
    ("config", "check_dtype"): "gradstudy._validate:check_dtype",
    ("config", "check_sequence"): "gradstudy._validate:check_sequence",
    ("config", "short_repr"): "gradstudy._validate:short_repr",
    ("models", "Normalize"): "gradstudy.nn:Normalize",
    ("models", "BN_EPS"): "gradstudy.nn:BN_EPS",
    ("models", "mse_loss"): "gradstudy.nn:mse_loss",
    ("models", "linear_loss"): "gradstudy.nn:linear_loss",
    ("models", "max_abs_scale"): "gradstudy._numerics:max_abs_scale",
    ("models", "require_dtype"): "gradstudy._validate:require_dtype",
    ("train", "LOSSES"): "gradstudy.nn:TRAINING_LOSSES",
    ("mlp_family", "MLP_TRAIN"): "gradstudy.families.mlp:MLP_TRAIN_HOOKS",
    ("rnn", "TRAIN_HOOKS"): "gradstudy.families.rnn:RNN_TRAIN_HOOKS",
    ("cnn", "CNN_TRAIN"): "gradstudy.families.cnn:CNN_TRAIN_HOOKS",
    ("family", "families"): "gradstudy.families:registered_families",
    ("memory", "param_count"): "gradstudy.families.mlp:param_count",
    ("memory", "network_bytes"): "gradstudy.families.mlp:network_bytes",
    ("memory", "network_output_bytes"): "gradstudy.families.mlp:network_output_bytes",
    ("sweep", "seed_keys"): "gradstudy.engine:seed_keys",
    ("sweep", "init_and_probe"): "gradstudy.families.mlp:init_and_probe",
    ("sweep", "sample_network"): "gradstudy.families.mlp:sample_network",
    ("sweep", "jacobian_mean_singular_values"):
        "gradstudy.families.mlp:measured_jacobian_mean_singular_values",
    ("sweep", "to_dataset"): "gradstudy.engine:sweep_dataset",
    ("sweep", "MLPSpec"): "gradstudy.families.mlp:MLPSpec",
    ("predictions", "jacobian_mean_singular_value"):
        "gradstudy.theory:predicted_jacobian_mean_singular_value",
    ("chain", "closed_form"): "gradstudy.theory:chain_closed_form",
    ("probe", "safe_norm"): "gradstudy.nn:safe_norm",
    ("diagnose", "format_table"): "gradstudy.tools:diagnosis_table",
    ("diagnose", "summary"): "gradstudy.tools:diagnosis_summary",
    ("diagnose", "plot"): "gradstudy.tools:plot_diagnosis",
    ("monitor", "to_dataset"): "gradstudy.tools:monitor_dataset",
    ("monitor", "plot_heatmap"): "gradstudy.tools:plot_monitor_heatmap",
    ("monitor", "FIELDS"): "gradstudy.tools:MONITOR_FIELDS",
    ("monitor", "safe_norm"): "gradstudy.tools:leaf_norm",
    ("study", "finite_median"): "gradstudy.studies:finite_median",
}

# modules that were callable (``gradstudy.diagnose(...)``): the function they call
CALLABLE_MODULES = {"diagnose": "gradstudy.tools:diagnose",
                    "monitor": "gradstudy.tools:monitor",
                    "probe": "gradstudy.tools:probe"}


def _probe_losses() -> dict:
    losses = importlib.import_module("gradstudy.nn._losses")
    return {name: losses.LOSS_FUNCTIONS[name] for name in losses.PROBE_LOSSES}


# old names whose value is built from the new ones: (old, name) -> (what to use, value)
DERIVED_NAMES = {
    ("models", "LOSSES"): ("gradstudy.nn.LOSS_FUNCTIONS restricted to gradstudy.nn.PROBE_LOSSES",
                           _probe_losses),
}


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _is_private(target: str) -> bool:
    return any(part.startswith("_") for part in target.partition(":")[0].split("."))


def new_path(old: str, name: str) -> str | None:
    """Where ``gradstudy.<old>.<name>`` lives now ("module:name"), or None."""
    if (old, name) in MOVED_NAMES:
        return MOVED_NAMES[(old, name)]
    home, private = MOVED_MODULES[old]
    for module in (home,) + private:
        if hasattr(importlib.import_module(module), name):
            return f"{module}:{name}"
    return None


def message(old: str, name: str, target: str) -> str:
    """The DeprecationWarning for ``gradstudy.<old>.<name>``, now at ``target``."""
    where = target.replace(":", ".")
    if _is_private(target):
        return (f"gradstudy.{old}.{name} is deprecated (removed in gradstudy {REMOVED_IN}) "
                f"and no longer public; it is {where} now")
    return f"gradstudy.{old}.{name} is deprecated (removed in gradstudy {REMOVED_IN}); use {where}"


def resolve(old: str, name: str, stacklevel: int = 2):
    """``gradstudy.<old>.<name>``, with its DeprecationWarning (AttributeError if unknown)."""
    if (old, name) in DERIVED_NAMES:
        what, value = DERIVED_NAMES[(old, name)]
        warnings.warn(f"gradstudy.{old}.{name} is deprecated (removed in gradstudy "
                      f"{REMOVED_IN}); use {what}", DeprecationWarning, stacklevel=stacklevel + 1)
        return value()
    target = new_path(old, name)
    if target is None:
        raise AttributeError(f"module 'gradstudy.{old}' (moved to {MOVED_MODULES[old][0]}) has "
                             f"no attribute {name!r}")
    warnings.warn(message(old, name, target), DeprecationWarning, stacklevel=stacklevel + 1)
    return _load(target)


def old_names(old: str) -> list[str]:
    """The public names the old module ``gradstudy.<old>`` answers to."""
    names = {n for o, n in list(MOVED_NAMES) + list(DERIVED_NAMES) if o == old}
    for module in MOVED_MODULES[old][1]:
        names |= {n for n, v in vars(importlib.import_module(module)).items()
                  if not n.startswith("_") and not isinstance(v, types.ModuleType)
                  and getattr(v, "__module__", module) == module}
    return sorted(names)


class _MovedModule(types.ModuleType):
    """``gradstudy.<old>``: each attribute resolved through the tables, with a warning."""

    def __getattr__(self, name: str):
        old = self.__name__.rpartition(".")[2]
        if name == "__all__":  # `from gradstudy.sweep import *`
            return old_names(old)
        if name.startswith("__"):
            raise AttributeError(name)
        return resolve(old, name, stacklevel=2)

    def __dir__(self):
        return old_names(self.__name__.rpartition(".")[2])


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        old = spec.name.rpartition(".")[2]
        if old in CALLABLE_MODULES:
            # the function itself: the import system then sets gradstudy.<old> to it again
            return _load(CALLABLE_MODULES[old])
        return _MovedModule(spec.name)

    def exec_module(self, module):
        if isinstance(module, _MovedModule):
            old = module.__name__.rpartition(".")[2]
            module.__doc__ = (f"Deprecated: gradstudy.{old} moved to {MOVED_MODULES[old][0]} "
                              f"(removed in gradstudy {REMOVED_IN}).")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package == "gradstudy" and old in MOVED_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _Loader())
        return None


def install() -> None:
    """Serve the old module paths (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())


def module_getattr(name: str):
    """The face's ``__getattr__``: ``gradstudy.sweep`` without ``import gradstudy.sweep``."""
    if name in MOVED_MODULES:
        return importlib.import_module(f"gradstudy.{name}")
    raise AttributeError(f"module 'gradstudy' has no attribute {name!r}")


def _deprecated_call(old: str, name: str, function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        resolve(old, name, stacklevel=2)  # the warning
        return function(*args, **kwargs)

    target = new_path(old, name)
    call.__doc__ = f"Deprecated: {message(old, name, target)}.\n\n{function.__doc__ or ''}"
    return call


def attach_legacy_attributes() -> None:
    """The old modules' names on the functions that replace them (see the module docstring):
    functions wrapped to warn when called, classes and constants as they are."""
    for old, target in CALLABLE_MODULES.items():
        function = _load(target)
        for name in old_names(old):
            if hasattr(function, name):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                value = resolve(old, name)
            is_function = callable(value) and not isinstance(value, type)
            setattr(function, name, _deprecated_call(old, name, value) if is_function else value)
