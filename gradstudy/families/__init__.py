"""Model families: each kind of network (MLP, RNN, CNN) is one :class:`ModelFamily` record of
pure functions, the contract in ``_base``; ``_registry`` lists the built-in ones above them
and :func:`register_family` adds yours.  The engine finds a spec's functions with
:func:`family_of`; nothing else in gradstudy knows what a family computes.
"""

from gradstudy.families import cnn as cnn, mlp as mlp, rnn as rnn
from gradstudy.families._base import (
    ModelFamily as ModelFamily,
    TrainHooks as TrainHooks,
)
from gradstudy.families._registry import (
    BUILTIN_FAMILIES as BUILTIN_FAMILIES,
    family_of as family_of,
    register_family as register_family,
    registered_families as registered_families,
)
from gradstudy.families.cnn import CNNSpec as CNNSpec
from gradstudy.families.mlp import MLPSpec as MLPSpec
from gradstudy.families.rnn import RNNSpec as RNNSpec

__all__ = [
    "BUILTIN_FAMILIES",
    "cnn",
    "CNNSpec",
    "registered_families",
    "family_of",
    "mlp",
    "MLPSpec",
    "ModelFamily",
    "register_family",
    "rnn",
    "RNNSpec",
    "TrainHooks",
]
