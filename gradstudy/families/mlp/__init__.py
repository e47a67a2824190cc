"""The fully connected family: :class:`MLPSpec`, the Linen :class:`MLP` (hidden layers stacked
by ``nn.scan``), its nested-depth gradient probe (:func:`gradient_norms`: every depth from
one forward pass), its memory estimate and its :data:`MLP_FAMILY` record for sweeps and
trainings.
"""

from gradstudy.families.mlp._family import (
    LAYER_LEAVES as LAYER_LEAVES,
)
from gradstudy.families.mlp._family import (
    MLP_FAMILY as MLP_FAMILY,
)
from gradstudy.families.mlp._family import (
    MLP_TRAIN_HOOKS as MLP_TRAIN_HOOKS,
)
from gradstudy.families.mlp._family import (
    init_and_probe as init_and_probe,
)
from gradstudy.families.mlp._family import (
    measured_jacobian_mean_singular_values as measured_jacobian_mean_singular_values,
)
from gradstudy.families.mlp._family import (
    sample_network as sample_network,
)
from gradstudy.families.mlp._memory import (
    network_bytes as network_bytes,
)
from gradstudy.families.mlp._memory import (
    network_output_bytes as network_output_bytes,
)
from gradstudy.families.mlp._memory import (
    param_count as param_count,
)
from gradstudy.families.mlp._model import (
    LAYER_KINDS as LAYER_KINDS,
)
from gradstudy.families.mlp._model import (
    MLP as MLP,
)
from gradstudy.families.mlp._model import (
    HiddenLayer as HiddenLayer,
)
from gradstudy.families.mlp._model import (
    InputLayer as InputLayer,
)
from gradstudy.families.mlp._model import (
    Readout as Readout,
)
from gradstudy.families.mlp._model import (
    apply_gains as apply_gains,
)
from gradstudy.families.mlp._model import (
    hidden_stack as hidden_stack,
)
from gradstudy.families.mlp._model import (
    init_params as init_params,
)
from gradstudy.families.mlp._model import (
    no_path as no_path,
)
from gradstudy.families.mlp._model import (
    sample_params as sample_params,
)
from gradstudy.families.mlp._model import (
    zero_perturbation as zero_perturbation,
)
from gradstudy.families.mlp._probes import (
    MEASURED as MEASURED,
)
from gradstudy.families.mlp._probes import (
    backprop_histograms as backprop_histograms,
)
from gradstudy.families.mlp._probes import (
    gradient_norms as gradient_norms,
)
from gradstudy.families.mlp._probes import (
    layer_jacobian_singular_values as layer_jacobian_singular_values,
)
from gradstudy.families.mlp._spec import (
    GAIN_FIELDS as GAIN_FIELDS,
)
from gradstudy.families.mlp._spec import (
    NORMS as NORMS,
)
from gradstudy.families.mlp._spec import (
    MLPSpec as MLPSpec,
)
from gradstudy.families.mlp._spec import (
    allowed_values as allowed_values,
)

__all__ = [
    "allowed_values",
    "apply_gains",
    "backprop_histograms",
    "GAIN_FIELDS",
    "gradient_norms",
    "hidden_stack",
    "HiddenLayer",
    "init_and_probe",
    "init_params",
    "InputLayer",
    "layer_jacobian_singular_values",
    "LAYER_KINDS",
    "LAYER_LEAVES",
    "MEASURED",
    "measured_jacobian_mean_singular_values",
    "MLP",
    "MLP_FAMILY",
    "MLP_TRAIN_HOOKS",
    "MLPSpec",
    "network_bytes",
    "network_output_bytes",
    "no_path",
    "NORMS",
    "param_count",
    "Readout",
    "sample_network",
    "sample_params",
    "zero_perturbation",
]
