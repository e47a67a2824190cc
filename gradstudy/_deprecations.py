"""The import paths of gradstudy 0.1's flat layout, served for one release from one table.

gradstudy 0.1 had 33 modules in one folder (``gradstudy.sweep``, ``gradstudy.train``,
``gradstudy.probes``, ...).  They now live in concept folders behind public faces
(``gradstudy.engine``, ``gradstudy.families.mlp``, ...).  Every old path keeps working until
gradstudy 0.2: ``import gradstudy.sweep``, ``from gradstudy.sweep import Sweep`` and
``gradstudy.sweep.Sweep`` are served by a module created from :data:`MOVED_MODULES` and
:data:`MOVED_NAMES`, and each name looked up there emits a ``DeprecationWarning`` naming its
new path.  The pattern is optax's ``_deprecations``: one table, a module ``__getattr__``.

``gradstudy.diagnose``, ``gradstudy.monitor`` and ``gradstudy.probe`` were modules that
could be called; they are functions now.  Their old module attributes
(``gradstudy.monitor.to_dataset``, ``gradstudy.diagnose.format_table``, ...) stay attached
to the functions, and warn when called.
"""

from __future__ import annotations

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
    ("models", "LOSSES"): "gradstudy.nn:LOSS_FUNCTIONS",
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
    ("sweep", "seed_keys"): "gradstudy._seeds:seed_keys",
    ("sweep", "init_and_probe"): "gradstudy.families.mlp:init_and_probe",
    ("sweep", "sample_network"): "gradstudy.families.mlp:sample_network",
    ("sweep", "jacobian_mean_singular_values"):
        "gradstudy.families.mlp:measured_jacobian_mean_singular_values",
    ("sweep", "to_dataset"): "gradstudy.engine:sweep_dataset",
    ("sweep", "MLPSpec"): "gradstudy.families.mlp:MLPSpec",
    ("predictions", "jacobian_mean_singular_value"):
        "gradstudy.theory:predicted_jacobian_mean_singular_value",
    ("chain", "closed_form"): "gradstudy.theory:chain_closed_form",
    ("probe", "safe_norm"): "gradstudy._numerics:safe_norm",
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


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _public_path(target: str) -> str:
    return target.replace(":", ".")


def new_path(old: str, name: str) -> str | None:
    """Where ``gradstudy.<old>.<name>`` lives now ("module:name"), or None."""
    if (old, name) in MOVED_NAMES:
        return MOVED_NAMES[(old, name)]
    home, private = MOVED_MODULES[old]
    for module in (home,) + private:
        if hasattr(importlib.import_module(module), name):
            return f"{module}:{name}"
    return None


def _warn(old: str, name: str, target: str, stacklevel: int) -> None:
    warnings.warn(f"gradstudy.{old}.{name} is deprecated (removed in gradstudy {REMOVED_IN}); "
                  f"use {_public_path(target)}", DeprecationWarning, stacklevel=stacklevel)


class _MovedModule(types.ModuleType):
    """``gradstudy.<old>``: each attribute resolved through the tables, with a warning."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        old = self.__name__.rpartition(".")[2]
        target = new_path(old, name)
        if target is None:
            home = MOVED_MODULES[old][0]
            raise AttributeError(f"module {self.__name__!r} (moved to {home}) has no "
                                 f"attribute {name!r}")
        _warn(old, name, target, stacklevel=3)
        return _load(target)

    def __dir__(self):
        old = self.__name__.rpartition(".")[2]
        home, private = MOVED_MODULES[old]
        return sorted(set(dir(importlib.import_module(home))) | {n for o, n in MOVED_NAMES
                                                                 if o == old})

    def __call__(self, *args, **kwargs):
        old = self.__name__.rpartition(".")[2]
        if old not in CALLABLE_MODULES:
            raise TypeError(f"module {self.__name__!r} is not callable")
        return _load(CALLABLE_MODULES[old])(*args, **kwargs)


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return _MovedModule(spec.name)

    def exec_module(self, module):
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


def _deprecated_call(old: str, name: str, target: str):
    def call(*args, **kwargs):
        _warn(old, name, target, stacklevel=3)
        return _load(target)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"Deprecated: use {_public_path(target)}."
    return call


def attach_legacy_attributes() -> None:
    """``gradstudy.monitor.to_dataset(...)`` and the like, where ``gradstudy.monitor`` is now
    the function: the old module's functions hang on the new function and warn when
    called."""
    for old, target in CALLABLE_MODULES.items():
        function = _load(target)
        home, private = MOVED_MODULES[old]
        names = {n for o, n in MOVED_NAMES if o == old}
        for module in private:
            names |= {n for n, v in vars(importlib.import_module(module)).items()
                      if not n.startswith("_") and callable(v)
                      and getattr(v, "__module__", None) == module}
        for name in sorted(names):
            if hasattr(function, name):
                continue
            where = new_path(old, name)
            if where is not None and callable(_load(where)):
                setattr(function, name, _deprecated_call(old, name, where))
