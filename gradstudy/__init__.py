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
    engine as engine,
    errors as errors,
    families as families,
    nn as nn,
    results as results,
    status as status,
    studies as studies,
    theory as theory,
    tools as tools,
)
from gradstudy._deprecations import (
    attach_legacy_attributes as _attach_legacy_attributes,
    install as _install_old_paths,
    module_getattr as __getattr__,  # noqa: F401
)
from gradstudy._version import __version__ as __version__
from gradstudy.engine import (
    OptimizerSpec as OptimizerSpec,
    Sweep as Sweep,
    Training as Training,
    run_cached as run_cached,
)
from gradstudy.errors import ConfigError as ConfigError
from gradstudy.families import (
    CNNSpec as CNNSpec,
    MLPSpec as MLPSpec,
    ModelFamily as ModelFamily,
    RNNSpec as RNNSpec,
    register_family as register_family,
)
from gradstudy.families.mlp import (
    MLP as MLP,
    apply_gains as apply_gains,
    gradient_norms as gradient_norms,
    init_params as init_params,
    sample_params as sample_params,
)
from gradstudy.nn import (
    get_activation as get_activation,
    get_initializer as get_initializer,
    register_activation as register_activation,
    register_initializer as register_initializer,
)
from gradstudy.tools import (
    Selection as Selection,
    diagnose as diagnose,
    monitor as monitor,
    probe as probe,
)

_install_old_paths()
_attach_legacy_attributes()

__all__ = ["CNNSpec", "ConfigError", "MLP", "MLPSpec", "ModelFamily", "OptimizerSpec",
           "RNNSpec", "Selection", "Sweep", "Training", "__version__", "apply_gains", "data",
           "diagnose", "engine", "errors", "families", "get_activation", "get_initializer",
           "gradient_norms", "init_params", "monitor", "nn", "probe", "register_activation",
           "register_family", "register_initializer", "results", "run_cached",
           "sample_params", "status", "studies", "theory", "tools"]

# The concept folders and modules whose ``__all__`` is public too.
PUBLIC_MODULES = ("data", "engine", "errors", "families", "families.cnn", "families.mlp",
                  "families.rnn", "nn", "plotting", "results", "status", "studies", "theory",
                  "tools")
