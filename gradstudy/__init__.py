"""gradstudy: measured vanishing and exploding gradients, next to mean-field theory.

The public API is what this module exports (``__all__``); everything else may change.
Importing gradstudy does not change the environment (``XLA_FLAGS`` is set only by the
``gradstudy`` command, the benchmark and the tests: :mod:`gradstudy._xla`).
"""

__version__ = "0.1.0"

# diagnose, monitor and probe are modules that are also callable: gradstudy.diagnose(...)
from gradstudy import diagnose, memory, monitor, probe, status  # noqa: E402
from gradstudy.activations import get_activation, register_activation  # noqa: E402
from gradstudy.config import MLPSpec  # noqa: E402
from gradstudy.errors import ConfigError  # noqa: E402
from gradstudy.initializers import get_initializer, register_initializer  # noqa: E402
from gradstudy.models import MLP, apply_gains, init_params, sample_params  # noqa: E402
from gradstudy.probe import Selection  # noqa: E402
from gradstudy.probes import gradient_norms  # noqa: E402
from gradstudy.sweep import Sweep  # noqa: E402

__all__ = ["ConfigError", "MLP", "MLPSpec", "Selection", "Sweep", "apply_gains", "diagnose",
           "get_activation", "get_initializer", "gradient_norms", "init_params", "memory",
           "monitor", "probe", "register_activation", "register_initializer",
           "sample_params", "status"]
