"""The recurrent family: Elman (tanh, ReLU, linear), LSTM and GRU networks unrolled in time
(:class:`RNNSpec`), measured through time (:func:`through_time`), with their
:data:`RNN_FAMILY` record for sweeps and trainings, and the rates read from a sweep's
records (:func:`per_step_rate`, :func:`pascanu_bound_ratio`).
"""

from gradstudy.families.rnn._family import (
    JACOBIAN_SAMPLES as JACOBIAN_SAMPLES,
)
from gradstudy.families.rnn._family import (
    RNN_FAMILY as RNN_FAMILY,
)
from gradstudy.families.rnn._family import (
    RNN_TRAIN_HOOKS as RNN_TRAIN_HOOKS,
)
from gradstudy.families.rnn._family import (
    activation_bytes as activation_bytes,
)
from gradstudy.families.rnn._family import (
    check_data as check_data,
)
from gradstudy.families.rnn._family import (
    sample_network as sample_network,
)
from gradstudy.families.rnn._model import (
    ElmanCell as ElmanCell,
)
from gradstudy.families.rnn._model import (
    RecurrentNet as RecurrentNet,
)
from gradstudy.families.rnn._model import (
    TappedCell as TappedCell,
)
from gradstudy.families.rnn._model import (
    apply as apply,
)
from gradstudy.families.rnn._model import (
    haar_orthogonal as haar_orthogonal,
)
from gradstudy.families.rnn._model import (
    init_params as init_params,
)
from gradstudy.families.rnn._model import (
    kernel_names as kernel_names,
)
from gradstudy.families.rnn._model import (
    leaf_kind as leaf_kind,
)
from gradstudy.families.rnn._model import (
    param_count as param_count,
)
from gradstudy.families.rnn._model import (
    recurrent_kernels as recurrent_kernels,
)
from gradstudy.families.rnn._model import (
    sample_params as sample_params,
)
from gradstudy.families.rnn._model import (
    scale_params as scale_params,
)
from gradstudy.families.rnn._model import (
    state_carry as state_carry,
)
from gradstudy.families.rnn._model import (
    state_vector as state_vector,
)
from gradstudy.families.rnn._rates import (
    pascanu_bound_ratio as pascanu_bound_ratio,
)
from gradstudy.families.rnn._rates import (
    per_step_rate as per_step_rate,
)
from gradstudy.families.rnn._spec import (
    CELLS as CELLS,
)
from gradstudy.families.rnn._spec import (
    MAX_LENGTH as MAX_LENGTH,
)
from gradstudy.families.rnn._spec import (
    READOUTS as READOUTS,
)
from gradstudy.families.rnn._spec import (
    RECURRENT_INITS as RECURRENT_INITS,
)
from gradstudy.families.rnn._spec import (
    RNN_VERSION as RNN_VERSION,
)
from gradstudy.families.rnn._spec import (
    SCALAR_FIELDS as SCALAR_FIELDS,
)
from gradstudy.families.rnn._spec import (
    VANILLA as VANILLA,
)
from gradstudy.families.rnn._spec import (
    RNNSpec as RNNSpec,
)
from gradstudy.families.rnn._spec import (
    scalars as scalars,
)
from gradstudy.families.rnn._through_time import (
    THROUGH_TIME as THROUGH_TIME,
)
from gradstudy.families.rnn._through_time import (
    spectral_norm as spectral_norm,
)
from gradstudy.families.rnn._through_time import (
    spectral_radius as spectral_radius,
)
from gradstudy.families.rnn._through_time import (
    state_jacobians as state_jacobians,
)
from gradstudy.families.rnn._through_time import (
    through_time as through_time,
)

__all__ = [
    "activation_bytes",
    "apply",
    "CELLS",
    "check_data",
    "ElmanCell",
    "haar_orthogonal",
    "init_params",
    "JACOBIAN_SAMPLES",
    "kernel_names",
    "leaf_kind",
    "MAX_LENGTH",
    "param_count",
    "pascanu_bound_ratio",
    "per_step_rate",
    "READOUTS",
    "RECURRENT_INITS",
    "recurrent_kernels",
    "RecurrentNet",
    "RNN_FAMILY",
    "RNN_TRAIN_HOOKS",
    "RNN_VERSION",
    "RNNSpec",
    "sample_network",
    "sample_params",
    "SCALAR_FIELDS",
    "scalars",
    "scale_params",
    "spectral_norm",
    "spectral_radius",
    "state_carry",
    "state_jacobians",
    "state_vector",
    "TappedCell",
    "THROUGH_TIME",
    "through_time",
    "VANILLA",
]
