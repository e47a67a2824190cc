"""Network building blocks shared by every family: activations and initializers (registries,
by name or as callables), the losses, normalisation layers, and the fingerprints that key
the results cache by what a function computes.

Add an activation with :func:`register_activation`, an initializer with
:func:`register_initializer`.
"""

from gradstudy.nn._activations import (
    LEAKY_RELU_SLOPE as LEAKY_RELU_SLOPE,
)
from gradstudy.nn._activations import (
    LeakyReLU as LeakyReLU,
)
from gradstudy.nn._activations import (
    activation_kinks as activation_kinks,
)
from gradstudy.nn._activations import (
    activation_name as activation_name,
)
from gradstudy.nn._activations import (
    activation_names as activation_names,
)
from gradstudy.nn._activations import (
    callable_id as callable_id,
)
from gradstudy.nn._activations import (
    elu as elu,
)
from gradstudy.nn._activations import (
    erf as erf,
)
from gradstudy.nn._activations import (
    find_kinks as find_kinks,
)
from gradstudy.nn._activations import (
    gelu as gelu,
)
from gradstudy.nn._activations import (
    get_activation as get_activation,
)
from gradstudy.nn._activations import (
    hard_tanh as hard_tanh,
)
from gradstudy.nn._activations import (
    leaky_relu as leaky_relu,
)
from gradstudy.nn._activations import (
    leaky_relu_02 as leaky_relu_02,
)
from gradstudy.nn._activations import (
    leaky_relu_with_slope as leaky_relu_with_slope,
)
from gradstudy.nn._activations import (
    linear as linear,
)
from gradstudy.nn._activations import (
    register_activation as register_activation,
)
from gradstudy.nn._activations import (
    softsign as softsign,
)
from gradstudy.nn._fingerprint import (
    TRUSTED_PACKAGES as TRUSTED_PACKAGES,
)
from gradstudy.nn._fingerprint import (
    NotFingerprintable as NotFingerprintable,
)
from gradstudy.nn._fingerprint import (
    activation_fingerprint as activation_fingerprint,
)
from gradstudy.nn._fingerprint import (
    fingerprint as fingerprint,
)
from gradstudy.nn._fingerprint import (
    initializer_fingerprint as initializer_fingerprint,
)
from gradstudy.nn._fingerprint import (
    spec_fingerprint as spec_fingerprint,
)
from gradstudy.nn._fingerprint import (
    why_initializer_not_fingerprintable as why_initializer_not_fingerprintable,
)
from gradstudy.nn._fingerprint import (
    why_not_fingerprintable as why_not_fingerprintable,
)
from gradstudy.nn._fingerprint import (
    why_spec_unfingerprintable as why_spec_unfingerprintable,
)
from gradstudy.nn._initializers import (
    UNIT_SAMPLERS as UNIT_SAMPLERS,
)
from gradstudy.nn._initializers import (
    InitFamily as InitFamily,
)
from gradstudy.nn._initializers import (
    delta_orthogonal as delta_orthogonal,
)
from gradstudy.nn._initializers import (
    fans as fans,
)
from gradstudy.nn._initializers import (
    gaussian as gaussian,
)
from gradstudy.nn._initializers import (
    get_initializer as get_initializer,
)
from gradstudy.nn._initializers import (
    glorot_normal as glorot_normal,
)
from gradstudy.nn._initializers import (
    glorot_uniform as glorot_uniform,
)
from gradstudy.nn._initializers import (
    he_normal as he_normal,
)
from gradstudy.nn._initializers import (
    householder_orthogonal as householder_orthogonal,
)
from gradstudy.nn._initializers import (
    initializer_names as initializer_names,
)
from gradstudy.nn._initializers import (
    lecun_normal as lecun_normal,
)
from gradstudy.nn._initializers import (
    orthogonal as orthogonal,
)
from gradstudy.nn._initializers import (
    register_initializer as register_initializer,
)
from gradstudy.nn._initializers import (
    register_scaled_initializer as register_scaled_initializer,
)
from gradstudy.nn._initializers import (
    standard_uniform as standard_uniform,
)
from gradstudy.nn._initializers import (
    unit_normal as unit_normal,
)
from gradstudy.nn._initializers import (
    unit_uniform as unit_uniform,
)
from gradstudy.nn._losses import (
    LOSS_FUNCTIONS as LOSS_FUNCTIONS,
)
from gradstudy.nn._losses import (
    PROBE_LOSSES as PROBE_LOSSES,
)
from gradstudy.nn._losses import (
    TRAINING_LOSSES as TRAINING_LOSSES,
)
from gradstudy.nn._losses import (
    cross_entropy_loss as cross_entropy_loss,
)
from gradstudy.nn._losses import (
    linear_loss as linear_loss,
)
from gradstudy.nn._losses import (
    mse_loss as mse_loss,
)
from gradstudy.nn._normalize import (
    BN_EPS as BN_EPS,
)
from gradstudy.nn._normalize import (
    Normalize as Normalize,
)

__all__ = [
    "activation_fingerprint",
    "activation_kinks",
    "activation_name",
    "activation_names",
    "BN_EPS",
    "callable_id",
    "cross_entropy_loss",
    "delta_orthogonal",
    "elu",
    "erf",
    "fans",
    "find_kinks",
    "fingerprint",
    "gaussian",
    "gelu",
    "get_activation",
    "get_initializer",
    "glorot_normal",
    "glorot_uniform",
    "hard_tanh",
    "he_normal",
    "householder_orthogonal",
    "InitFamily",
    "initializer_fingerprint",
    "initializer_names",
    "leaky_relu",
    "leaky_relu_02",
    "LEAKY_RELU_SLOPE",
    "leaky_relu_with_slope",
    "LeakyReLU",
    "lecun_normal",
    "linear",
    "linear_loss",
    "LOSS_FUNCTIONS",
    "mse_loss",
    "Normalize",
    "NotFingerprintable",
    "orthogonal",
    "PROBE_LOSSES",
    "register_activation",
    "register_initializer",
    "register_scaled_initializer",
    "softsign",
    "spec_fingerprint",
    "standard_uniform",
    "TRAINING_LOSSES",
    "TRUSTED_PACKAGES",
    "unit_normal",
    "UNIT_SAMPLERS",
    "unit_uniform",
    "why_initializer_not_fingerprintable",
    "why_not_fingerprintable",
    "why_spec_unfingerprintable",
]
