"""The registry of model families: spec type -> :class:`ModelFamily`.

It sits above the families it lists (as init2winit's ``model_lib/models.py``): it imports
each built-in family and builds the table; the families import only the contract
(:mod:`gradstudy.families._base`).  ``family_of(spec)`` is how the engine finds the
functions for a spec.
"""

from __future__ import annotations

from gradstudy._validate import short_repr
from gradstudy.errors import ConfigError
from gradstudy.families._base import ModelFamily
from gradstudy.families.cnn._family import CNN_FAMILY
from gradstudy.families.mlp._family import MLP_FAMILY
from gradstudy.families.rnn._family import RNN_FAMILY

# The built-in families, in a table above them (the families never import it); users add
# theirs with register_family.
BUILTIN_FAMILIES = (MLP_FAMILY, RNN_FAMILY, CNN_FAMILY)
_FAMILIES: dict[type, ModelFamily] = {f.spec_type: f for f in BUILTIN_FAMILIES}


def register_family(family: ModelFamily) -> None:
    """Make sweeps accept specs of ``family.spec_type``."""
    if not isinstance(family, ModelFamily):
        raise TypeError(f"register_family needs a ModelFamily, got {type(family).__name__}")
    _FAMILIES[family.spec_type] = family


def family_of(spec, field: str = "points") -> ModelFamily:
    """The family of ``spec``; ConfigError (one line, naming ``field``) for a value that is
    no registered spec type."""
    family = _FAMILIES.get(type(spec))
    if family is None:
        allowed = ", ".join(sorted(t.__name__ for t in _FAMILIES))
        raise ConfigError(f"{field}: must be a model spec ({allowed}), got {short_repr(spec)}")
    return family


def registered_families() -> list[ModelFamily]:
    return list(_FAMILIES.values())
