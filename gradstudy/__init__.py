"""gradstudy: measured vanishing and exploding gradients, next to mean-field theory.

The public API is what this module exports (``__all__``) and the documented functions of the
modules in ``PUBLIC_MODULES``; everything else may change.  Importing gradstudy does not
change the environment (``XLA_FLAGS`` is set only by the ``gradstudy`` command, the
benchmark and the tests: :mod:`gradstudy._xla`).
"""

__version__ = "0.1.0"

# diagnose, monitor and probe are modules that are also callable: gradstudy.diagnose(...)
from gradstudy import diagnose, family, memory, monitor, probe, status  # noqa: E402
from gradstudy.activations import get_activation, register_activation  # noqa: E402
from gradstudy.config import MLPSpec  # noqa: E402
from gradstudy.errors import ConfigError  # noqa: E402
from gradstudy.family import ModelFamily, register_family  # noqa: E402
from gradstudy.initializers import get_initializer, register_initializer  # noqa: E402
from gradstudy.models import MLP, apply_gains, init_params, sample_params  # noqa: E402
from gradstudy.probe import Selection  # noqa: E402
from gradstudy.probes import gradient_norms  # noqa: E402
from gradstudy.sweep import Sweep, run_cached  # noqa: E402

__all__ = ["ConfigError", "MLP", "MLPSpec", "ModelFamily", "Selection", "Sweep",
           "apply_gains", "diagnose", "family", "get_activation", "get_initializer",
           "gradient_norms", "init_params", "memory", "monitor", "probe",
           "register_activation", "register_family", "register_initializer", "run_cached",
           "sample_params", "status"]

# Modules whose documented functions are public too (imported on use: ``from gradstudy
# import theory`` or ``gradstudy.plotting`` after ``import gradstudy.plotting``).
PUBLIC_MODULES = ("cnn", "curvature", "data", "diagnose", "family", "memory", "monitor",
                  "optim", "plotting", "predictions", "probe", "probes", "results", "rnn",
                  "status", "study", "sweep", "tasks", "theory", "train")
