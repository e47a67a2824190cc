"""The fully connected family: :class:`MLPSpec`, the Linen :class:`MLP` (hidden layers stacked
by ``nn.scan``), its nested-depth gradient probe (:func:`gradient_norms`: every depth from
one forward pass), its memory estimate and its :data:`MLP_FAMILY` record for sweeps and
trainings.
"""

from gradstudy.families.mlp._family import (
    LAYER_LEAVES as LAYER_LEAVES,
    MLP_FAMILY as MLP_FAMILY,
    MLP_TRAIN_HOOKS as MLP_TRAIN_HOOKS,
    init_and_probe as init_and_probe,
    measured_jacobian_mean_singular_values as measured_jacobian_mean_singular_values,
    sample_network as sample_network,
)
from gradstudy.families.mlp._jacobians import (
    jacobian_squared_singular_values as jacobian_squared_singular_values,
)
from gradstudy.families.mlp._memory import (
    network_bytes as network_bytes,
    network_output_bytes as network_output_bytes,
    param_count as param_count,
)
from gradstudy.families.mlp._model import (
    LAYER_KINDS as LAYER_KINDS,
    MLP as MLP,
    HiddenLayer as HiddenLayer,
    InputLayer as InputLayer,
    Readout as Readout,
    apply_gains as apply_gains,
    hidden_stack as hidden_stack,
    init_params as init_params,
    no_path as no_path,
    sample_params as sample_params,
    zero_perturbation as zero_perturbation,
)
from gradstudy.families.mlp._nnx import (
    NNXMLP as NNXMLP,
    NNXDense as NNXDense,
    nnx_mlp as nnx_mlp,
    nnx_mlp_from_params as nnx_mlp_from_params,
)
from gradstudy.families.mlp._probes import (
    MEASURED as MEASURED,
    backprop_histograms as backprop_histograms,
    gradient_norms as gradient_norms,
    layer_jacobian_singular_values as layer_jacobian_singular_values,
)
from gradstudy.families.mlp._spec import (
    GAIN_FIELDS as GAIN_FIELDS,
    NORMS as NORMS,
    MLPSpec as MLPSpec,
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
    "jacobian_squared_singular_values",
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
    "NNXDense",
    "NNXMLP",
    "nnx_mlp",
    "nnx_mlp_from_params",
    "no_path",
    "NORMS",
    "param_count",
    "Readout",
    "sample_network",
    "sample_params",
    "zero_perturbation",
]
