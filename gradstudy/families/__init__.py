"""Model families: each kind of network (MLP, RNN, CNN) is one :class:`ModelFamily` record of
pure functions, the contract in ``_base``; ``_registry`` lists the built-in ones above them
and :func:`register_family` adds yours.  The engine finds a spec's functions with
:func:`family_of`; nothing else in gradstudy knows what a family computes.
"""

from gradstudy.families import cnn as cnn
from gradstudy.families import mlp as mlp
from gradstudy.families import rnn as rnn
from gradstudy.families._base import (
    ModelFamily as ModelFamily,
)
from gradstudy.families._base import (
    TrainHooks as TrainHooks,
)
from gradstudy.families._registry import (
    BUILTIN_FAMILIES as BUILTIN_FAMILIES,
)
from gradstudy.families._registry import (
    family_of as family_of,
)
from gradstudy.families._registry import (
    register_family as register_family,
)
from gradstudy.families._registry import (
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
