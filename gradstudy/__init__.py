"""gradstudy: measured vanishing and exploding gradients, next to mean-field theory."""

__version__ = "0.1.0"

import importlib.util as _importlib_util  # noqa: E402
import os as _os  # noqa: E402


def _default_xla_flags() -> None:
    # XLA's CPU backend spends seconds per program at its default LLVM optimisation level;
    # level 1 compiled our sweep programs 2-4x faster (width 256, 8 depths: 9.2 s -> 4.2 s;
    # a tiny net: 5.3 s -> 2.4 s) and ran them no slower (4.7 s -> 2.9 s), measured on a
    # 2-core CPU.  Only on CPU-only installs, only if the user has not chosen a level
    # (GRADSTUDY_XLA_DEFAULTS=0 opts out), and only before JAX starts its backend.
    if _os.environ.get("GRADSTUDY_XLA_DEFAULTS", "1") == "0":
        return
    if any(_importlib_util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin",
                                                   "jax_rocm_plugin", "libtpu")):
        return
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        _os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=1").strip()


_default_xla_flags()

from gradstudy import memory, monitor, status  # noqa: E402  (monitor: a callable module)
from gradstudy.activations import get_activation, register_activation  # noqa: E402
from gradstudy.config import ConfigError, MLPSpec  # noqa: E402
from gradstudy.initializers import get_initializer, register_initializer  # noqa: E402
from gradstudy.models import MLP, apply_gains, init_params, sample_params  # noqa: E402
from gradstudy.probes import gradient_norms  # noqa: E402
from gradstudy.sweep import Sweep  # noqa: E402

__all__ = ["ConfigError", "MLP", "MLPSpec", "Sweep", "apply_gains", "get_activation", "memory",
           "monitor", "status",
           "get_initializer", "gradient_norms", "init_params", "register_activation",
           "register_initializer", "sample_params"]
