"""The convolutional family: deep 1-D CNNs (:class:`CNNSpec`; plain, BatchNorm or residual
blocks, stacked by ``nn.scan``), measured per layer, with their :data:`CNN_FAMILY` record for
sweeps and trainings.
"""

from gradstudy.families.cnn._family import (
    CNN_FAMILY as CNN_FAMILY,
)
from gradstudy.families.cnn._family import (
    CNN_TRAIN_HOOKS as CNN_TRAIN_HOOKS,
)
from gradstudy.families.cnn._family import (
    READOUT as READOUT,
)
from gradstudy.families.cnn._family import (
    STACK as STACK,
)
from gradstudy.families.cnn._family import (
    check_data as check_data,
)
from gradstudy.families.cnn._family import (
    is_output as is_output,
)
from gradstudy.families.cnn._family import (
    is_stacked as is_stacked,
)
from gradstudy.families.cnn._family import (
    layer_leaves as layer_leaves,
)
from gradstudy.families.cnn._measure import (
    MEASURED as MEASURED,
)
from gradstudy.families.cnn._measure import (
    coords as coords,
)
from gradstudy.families.cnn._measure import (
    measure_network as measure_network,
)
from gradstudy.families.cnn._measure import (
    network_bytes as network_bytes,
)
from gradstudy.families.cnn._measure import (
    output_bytes as output_bytes,
)
from gradstudy.families.cnn._measure import (
    sample_network as sample_network,
)
from gradstudy.families.cnn._measure import (
    train_coords as train_coords,
)
from gradstudy.families.cnn._model import (
    Conv1D as Conv1D,
)
from gradstudy.families.cnn._model import (
    ConvLayer as ConvLayer,
)
from gradstudy.families.cnn._model import (
    ConvNet as ConvNet,
)
from gradstudy.families.cnn._model import (
    Readout as Readout,
)
from gradstudy.families.cnn._model import (
    activation_bytes as activation_bytes,
)
from gradstudy.families.cnn._model import (
    apply as apply,
)
from gradstudy.families.cnn._model import (
    apply_gains as apply_gains,
)
from gradstudy.families.cnn._model import (
    conv_stack as conv_stack,
)
from gradstudy.families.cnn._model import (
    family_scalars as family_scalars,
)
from gradstudy.families.cnn._model import (
    init_params as init_params,
)
from gradstudy.families.cnn._model import (
    param_count as param_count,
)
from gradstudy.families.cnn._model import (
    sample_params as sample_params,
)
from gradstudy.families.cnn._spec import (
    BLOCKS as BLOCKS,
)
from gradstudy.families.cnn._spec import (
    LAYER_KINDS as LAYER_KINDS,
)
from gradstudy.families.cnn._spec import (
    PADDINGS as PADDINGS,
)
from gradstudy.families.cnn._spec import (
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
    "is_stacked",
    "LAYER_KINDS",
    "layer_leaves",
    "measure_network",
    "MEASURED",
    "network_bytes",
    "output_bytes",
    "PADDINGS",
    "param_count",
    "READOUT",
    "Readout",
    "sample_network",
    "sample_params",
    "STACK",
    "train_coords",
]
