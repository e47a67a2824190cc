"""The convolutional family: deep 1-D CNNs (:class:`CNNSpec`; plain, BatchNorm or residual
blocks, stacked by ``nn.scan``), measured per layer, with their :data:`CNN_FAMILY` record for
sweeps and trainings, and their Flax NNX twin (:class:`NNXConvNet`, :func:`nnx_convnet`: the
same network and weights as an ``nnx.Module``).
"""

from gradstudy.families.cnn._family import (
    CNN_FAMILY as CNN_FAMILY,
    CNN_TRAIN_HOOKS as CNN_TRAIN_HOOKS,
    READOUT as READOUT,
    STACK as STACK,
    check_data as check_data,
    is_output as is_output,
    is_stacked as is_stacked,
    layer_leaves as layer_leaves,
)
from gradstudy.families.cnn._isometry import (
    isometry_probe as isometry_probe,
    isometry_probes as isometry_probes,
    probe_draws as probe_draws,
)
from gradstudy.families.cnn._measure import (
    MEASURED as MEASURED,
    coords as coords,
    measure_network as measure_network,
    network_bytes as network_bytes,
    output_bytes as output_bytes,
    sample_network as sample_network,
    train_coords as train_coords,
)
from gradstudy.families.cnn._model import (
    Conv1D as Conv1D,
    ConvLayer as ConvLayer,
    ConvNet as ConvNet,
    Readout as Readout,
    activation_bytes as activation_bytes,
    apply as apply,
    apply_gains as apply_gains,
    conv_stack as conv_stack,
    family_scalars as family_scalars,
    init_params as init_params,
    param_count as param_count,
    sample_params as sample_params,
)
from gradstudy.families.cnn._nnx import (
    NNXConvLayer as NNXConvLayer,
    NNXConvNet as NNXConvNet,
    NNXConvReadout as NNXConvReadout,
    nnx_convnet as nnx_convnet,
    nnx_convnet_from_params as nnx_convnet_from_params,
)
from gradstudy.families.cnn._spec import (
    BLOCKS as BLOCKS,
    LAYER_KINDS as LAYER_KINDS,
    PADDINGS as PADDINGS,
    CNNSpec as CNNSpec,
)

__all__ = [
    "activation_bytes",
    "apply",
    "apply_gains",
    "BLOCKS",
    "check_data",
    "CNN_FAMILY",
    "CNN_TRAIN_HOOKS",
    "CNNSpec",
    "Conv1D",
    "conv_stack",
    "ConvLayer",
    "ConvNet",
    "coords",
    "family_scalars",
    "init_params",
    "is_output",
    "isometry_probe",
    "isometry_probes",
    "is_stacked",
    "LAYER_KINDS",
    "layer_leaves",
    "measure_network",
    "MEASURED",
    "network_bytes",
    "nnx_convnet",
    "nnx_convnet_from_params",
    "NNXConvLayer",
    "NNXConvNet",
    "NNXConvReadout",
    "output_bytes",
    "PADDINGS",
    "param_count",
    "probe_draws",
    "READOUT",
    "Readout",
    "sample_network",
    "sample_params",
    "STACK",
    "train_coords",
]
