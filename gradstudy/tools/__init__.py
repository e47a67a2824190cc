"""Tools for any Flax model, Linen or NNX: the probe core (:func:`probe`: ‖∂L/∂output‖ of
every selected submodule in one ``jax.grad``; :func:`nnx_probe` for NNX modules),
:func:`diagnose` (a table, a figure and a Dataset over seeds; a Linen module, an
``nnx.Module`` or a factory ``rngs -> nnx.Module``) and :func:`monitor` (an Optax
transformation recording per-layer gradient and update norms during a user's training; in
``optax.chain`` or inside ``nnx.Optimizer``).
"""

from gradstudy.tools._diagnose import (
    DEAD_FRACTION as DEAD_FRACTION,
    EXPLODING_RATIO as EXPLODING_RATIO,
    MODULE_VARS as MODULE_VARS,
    VANISHING_RATIO as VANISHING_RATIO,
    diagnose as diagnose,
    outermost_recurrent as outermost_recurrent,
    variant_label as variant_label,
)
from gradstudy.tools._diagnosis_plot import (
    plot_diagnosis as plot_diagnosis,
)
from gradstudy.tools._diagnosis_table import (
    diagnosis_summary as diagnosis_summary,
    diagnosis_table as diagnosis_table,
)
from gradstudy.tools._factory import (
    call_factory as call_factory,
    load_factory as load_factory,
)
from gradstudy.tools._monitor import (
    MAX_CAPACITY as MAX_CAPACITY,
    MAX_EVERY as MAX_EVERY,
    MONITOR_FIELDS as MONITOR_FIELDS,
    MonitorState as MonitorState,
    find_state as find_state,
    find_states as find_states,
    leaf_names as leaf_names,
    leaf_norm as leaf_norm,
    monitor as monitor,
    path_name as path_name,
    valid_rows as valid_rows,
)
from gradstudy.tools._monitor_dataset import (
    monitor_dataset as monitor_dataset,
)
from gradstudy.tools._monitor_plot import (
    plot_monitor_heatmap as plot_monitor_heatmap,
)
from gradstudy.tools._nnx_probe import (
    NNXProbes as NNXProbes,
    is_nnx_module as is_nnx_module,
    make_nnx_probes as make_nnx_probes,
    nnx_probe as nnx_probe,
)
from gradstudy.tools._probe import (
    PROBE as PROBE,
    STATS as STATS,
    TIME as TIME,
    Probes as Probes,
    Selection as Selection,
    make_probes as make_probes,
    owns_params as owns_params,
    path_label as path_label,
    probe as probe,
    selection as selection,
)

__all__ = [
    "call_factory",
    "DEAD_FRACTION",
    "diagnose",
    "diagnosis_summary",
    "diagnosis_table",
    "EXPLODING_RATIO",
    "find_state",
    "find_states",
    "is_nnx_module",
    "leaf_names",
    "leaf_norm",
    "load_factory",
    "make_nnx_probes",
    "make_probes",
    "MAX_CAPACITY",
    "MAX_EVERY",
    "MODULE_VARS",
    "monitor",
    "monitor_dataset",
    "MONITOR_FIELDS",
    "MonitorState",
    "nnx_probe",
    "NNXProbes",
    "outermost_recurrent",
    "owns_params",
    "path_label",
    "path_name",
    "plot_diagnosis",
    "plot_monitor_heatmap",
    "PROBE",
    "probe",
    "Probes",
    "Selection",
    "selection",
    "STATS",
    "TIME",
    "valid_rows",
    "VANISHING_RATIO",
    "variant_label",
]
