"""Tools for any Flax model: the probe core (:func:`probe`: ‖∂L/∂output‖ of every selected
submodule in one ``jax.grad``), :func:`diagnose` (a table, a figure and a Dataset over
seeds) and :func:`monitor` (an Optax transformation recording per-layer gradient and update
norms during a user's training).
"""

from gradstudy.tools._diagnose import (
    DEAD_FRACTION as DEAD_FRACTION,
)
from gradstudy.tools._diagnose import (
    EXPLODING_RATIO as EXPLODING_RATIO,
)
from gradstudy.tools._diagnose import (
    MODULE_VARS as MODULE_VARS,
)
from gradstudy.tools._diagnose import (
    VANISHING_RATIO as VANISHING_RATIO,
)
from gradstudy.tools._diagnose import (
    call_factory as call_factory,
)
from gradstudy.tools._diagnose import (
    diagnose as diagnose,
)
from gradstudy.tools._diagnose import (
    load_factory as load_factory,
)
from gradstudy.tools._diagnose import (
    outermost_recurrent as outermost_recurrent,
)
from gradstudy.tools._diagnose import (
    variant_label as variant_label,
)
from gradstudy.tools._diagnosis_plot import (
    plot_diagnosis as plot_diagnosis,
)
from gradstudy.tools._diagnosis_table import (
    diagnosis_summary as diagnosis_summary,
)
from gradstudy.tools._diagnosis_table import (
    diagnosis_table as diagnosis_table,
)
from gradstudy.tools._monitor import (
    MAX_CAPACITY as MAX_CAPACITY,
)
from gradstudy.tools._monitor import (
    MAX_EVERY as MAX_EVERY,
)
from gradstudy.tools._monitor import (
    MONITOR_FIELDS as MONITOR_FIELDS,
)
from gradstudy.tools._monitor import (
    MonitorState as MonitorState,
)
from gradstudy.tools._monitor import (
    find_state as find_state,
)
from gradstudy.tools._monitor import (
    find_states as find_states,
)
from gradstudy.tools._monitor import (
    leaf_names as leaf_names,
)
from gradstudy.tools._monitor import (
    leaf_norm as leaf_norm,
)
from gradstudy.tools._monitor import (
    monitor as monitor,
)
from gradstudy.tools._monitor import (
    path_name as path_name,
)
from gradstudy.tools._monitor import (
    valid_rows as valid_rows,
)
from gradstudy.tools._monitor_dataset import (
    monitor_dataset as monitor_dataset,
)
from gradstudy.tools._monitor_plot import (
    plot_monitor_heatmap as plot_monitor_heatmap,
)
from gradstudy.tools._probe import (
    PROBE as PROBE,
)
from gradstudy.tools._probe import (
    STATS as STATS,
)
from gradstudy.tools._probe import (
    TIME as TIME,
)
from gradstudy.tools._probe import (
    Probes as Probes,
)
from gradstudy.tools._probe import (
    Selection as Selection,
)
from gradstudy.tools._probe import (
    make_probes as make_probes,
)
from gradstudy.tools._probe import (
    owns_params as owns_params,
)
from gradstudy.tools._probe import (
    path_label as path_label,
)
from gradstudy.tools._probe import (
    probe as probe,
)
from gradstudy.tools._probe import (
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
    "leaf_names",
    "leaf_norm",
    "load_factory",
    "make_probes",
    "MAX_CAPACITY",
    "MAX_EVERY",
    "MODULE_VARS",
    "monitor",
    "monitor_dataset",
    "MONITOR_FIELDS",
    "MonitorState",
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
