"""gradstudy: measured vanishing and exploding gradients, next to mean-field theory.

The public API is what this face exports (``__all__``) and what the concept folders export
(``__all__`` of each of :data:`PUBLIC_MODULES`):

* :mod:`gradstudy.nn` — activations, initializers, losses, normalisation, fingerprints;
* :mod:`gradstudy.families` — the model families (``mlp``, ``rnn``, ``cnn``) and their
  contract;
* :mod:`gradstudy.theory` — mean-field theory and its predictions;
* :mod:`gradstudy.engine` — sweeps, trainings, optimizers, memory planning, curvature;
* :mod:`gradstudy.tools` — ``probe``, ``diagnose`` and ``monitor`` for any Flax model;
* :mod:`gradstudy.data` — generated datasets and sequence tasks;
* :mod:`gradstudy.studies` — the study protocol, claims, statistics and reports;
* :mod:`gradstudy.results` (storage), :mod:`gradstudy.plotting` (the figure style),
  :mod:`gradstudy.status`, :mod:`gradstudy.errors`.

Modules whose names start with ``_`` are private and may move.  Importing gradstudy does
not change the environment (``XLA_FLAGS`` is set only by the ``gradstudy`` command, the
benchmarks and the tests: :mod:`gradstudy._xla`) and does not import matplotlib.  The
paths of gradstudy 0.1's flat layout (``gradstudy.sweep``, ``gradstudy.train``, ...) still
work, with a ``DeprecationWarning``, until gradstudy 0.2 (:mod:`gradstudy._deprecations`).
"""

from gradstudy import (
    data as data,
)
from gradstudy import (
    engine as engine,
)
from gradstudy import (
    errors as errors,
)
from gradstudy import (
    families as families,
)
from gradstudy import (
    nn as nn,
)
from gradstudy import (
    results as results,
)
from gradstudy import (
    status as status,
)
from gradstudy import (
    studies as studies,
)
from gradstudy import (
    theory as theory,
)
from gradstudy import (
    tools as tools,
)
from gradstudy._deprecations import attach_legacy_attributes as _attach_legacy_attributes
from gradstudy._deprecations import install as _install_old_paths
from gradstudy._deprecations import module_getattr as __getattr__  # noqa: F401
from gradstudy._version import __version__ as __version__
from gradstudy.engine import (
    OptimizerSpec as OptimizerSpec,
)
from gradstudy.engine import (
    Sweep as Sweep,
)
from gradstudy.engine import (
    Training as Training,
)
from gradstudy.engine import (
    run_cached as run_cached,
)
from gradstudy.engine import (
    train as train,
)
from gradstudy.errors import ConfigError as ConfigError
from gradstudy.families import (
    CNNSpec as CNNSpec,
)
from gradstudy.families import (
    MLPSpec as MLPSpec,
)
from gradstudy.families import (
    ModelFamily as ModelFamily,
)
from gradstudy.families import (
    RNNSpec as RNNSpec,
)
from gradstudy.families import (
    register_family as register_family,
)
from gradstudy.families.mlp import (
    MLP as MLP,
)
from gradstudy.families.mlp import (
    apply_gains as apply_gains,
)
from gradstudy.families.mlp import (
    gradient_norms as gradient_norms,
)
from gradstudy.families.mlp import (
    init_params as init_params,
)
from gradstudy.families.mlp import (
    sample_params as sample_params,
)
from gradstudy.nn import (
    get_activation as get_activation,
)
from gradstudy.nn import (
    get_initializer as get_initializer,
)
from gradstudy.nn import (
    register_activation as register_activation,
)
from gradstudy.nn import (
    register_initializer as register_initializer,
)
from gradstudy.tools import (
    Selection as Selection,
)
from gradstudy.tools import (
    diagnose as diagnose,
)
from gradstudy.tools import (
    monitor as monitor,
)
from gradstudy.tools import (
    probe as probe,
)

_install_old_paths()
_attach_legacy_attributes()

__all__ = ["CNNSpec", "ConfigError", "MLP", "MLPSpec", "ModelFamily", "OptimizerSpec",
           "RNNSpec", "Selection", "Sweep", "Training", "__version__", "apply_gains", "data",
           "diagnose", "engine", "errors", "families", "get_activation", "get_initializer",
           "gradient_norms", "init_params", "monitor", "nn", "probe", "register_activation",
           "register_family", "register_initializer", "results", "run_cached",
           "sample_params", "status", "studies", "theory", "tools", "train"]

# The concept folders and modules whose ``__all__`` is public too.
PUBLIC_MODULES = ("data", "engine", "errors", "families", "families.cnn", "families.mlp",
                  "families.rnn", "nn", "plotting", "results", "status", "studies", "theory",
                  "tools")
