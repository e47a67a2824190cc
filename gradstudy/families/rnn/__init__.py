"""The recurrent family: Elman (tanh, ReLU, linear), LSTM and GRU networks unrolled in time
(:class:`RNNSpec`), measured through time (:func:`through_time`), with their
:data:`RNN_FAMILY` record for sweeps and trainings, and the rates read from a sweep's
records (:func:`per_step_rate`, :func:`pascanu_bound_ratio`), and their Flax NNX twin
(:class:`NNXRecurrentNet`, :func:`nnx_recurrent_net`: the same network and weights as an
``nnx.Module``, the cell in an ``nnx.RNN``).
"""

from gradstudy.families.rnn._family import (
    JACOBIAN_SAMPLES as JACOBIAN_SAMPLES,
    RNN_FAMILY as RNN_FAMILY,
    RNN_TRAIN_HOOKS as RNN_TRAIN_HOOKS,
    activation_bytes as activation_bytes,
    check_data as check_data,
    sample_network as sample_network,
)
from gradstudy.families.rnn._model import (
    ElmanCell as ElmanCell,
    RecurrentNet as RecurrentNet,
    TappedCell as TappedCell,
    apply as apply,
    haar_orthogonal as haar_orthogonal,
    init_params as init_params,
    kernel_names as kernel_names,
    leaf_kind as leaf_kind,
    param_count as param_count,
    recurrent_kernels as recurrent_kernels,
    sample_params as sample_params,
    scale_params as scale_params,
    state_carry as state_carry,
    state_vector as state_vector,
)
from gradstudy.families.rnn._nnx import (
    NNXElmanCell as NNXElmanCell,
    NNXGRUCell as NNXGRUCell,
    NNXLinear as NNXLinear,
    NNXLSTMCell as NNXLSTMCell,
    NNXRecurrentNet as NNXRecurrentNet,
    nnx_cell as nnx_cell,
    nnx_recurrent_net as nnx_recurrent_net,
    nnx_recurrent_net_from_params as nnx_recurrent_net_from_params,
)
from gradstudy.families.rnn._rates import (
    pascanu_bound_ratio as pascanu_bound_ratio,
    per_step_rate as per_step_rate,
)
from gradstudy.families.rnn._spec import (
    CELLS as CELLS,
    MAX_LENGTH as MAX_LENGTH,
    READOUTS as READOUTS,
    RECURRENT_INITS as RECURRENT_INITS,
    RNN_VERSION as RNN_VERSION,
    SCALAR_FIELDS as SCALAR_FIELDS,
    VANILLA as VANILLA,
    RNNSpec as RNNSpec,
    scalars as scalars,
)
from gradstudy.families.rnn._through_time import (
    THROUGH_TIME as THROUGH_TIME,
    spectral_norm as spectral_norm,
    spectral_radius as spectral_radius,
    state_jacobians as state_jacobians,
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
    "nnx_cell",
    "nnx_recurrent_net",
    "nnx_recurrent_net_from_params",
    "NNXElmanCell",
    "NNXGRUCell",
    "NNXLinear",
    "NNXLSTMCell",
    "NNXRecurrentNet",
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
