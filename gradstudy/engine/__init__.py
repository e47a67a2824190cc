"""The engine: sweeps (a grid of specs × depths × seeds measured at initialisation, one
compiled program per shape) and trainings (a grid of specs × optimizers × learning rates ×
seeds trained with Optax, one compiled program per network), their memory planning, the
optimizers and the curvature probe.  Both spread their networks or runs over every device,
and over the devices of every process after :func:`initialize_distributed`.
"""

from gradstudy._seeds import seed_keys as seed_keys
from gradstudy.engine._cnn_isometry import (
    cnn_isometry as cnn_isometry,
)
from gradstudy.engine._correlations import (
    correlated_pairs as correlated_pairs,
    input_correlations as input_correlations,
    layer_pre_activations as layer_pre_activations,
    measured_input_correlations as measured_input_correlations,
)
from gradstudy.engine._curvature import (
    hvp as hvp,
    initial_curvature as initial_curvature,
    top_hessian_eigenvalue as top_hessian_eigenvalue,
)
from gradstudy.engine._distributed import (
    initialize_distributed as initialize_distributed,
)
from gradstudy.engine._memory import (
    BUDGET_ENV as BUDGET_ENV,
    DEFAULT_BUDGET_GB as DEFAULT_BUDGET_GB,
    budget_bytes as budget_bytes,
    human as human,
    plan_chunk as plan_chunk,
    plan_networks as plan_networks,
)
from gradstudy.engine._optim import (
    AGC_EPS as AGC_EPS,
    CLIPS as CLIPS,
    MAX_STEPS as MAX_STEPS,
    OPTIMIZERS as OPTIMIZERS,
    SCHEDULES as SCHEDULES,
    OptimizerSpec as OptimizerSpec,
    adaptive_grad_clip as adaptive_grad_clip,
    build as build,
    clip_fired as clip_fired,
    clipping as clipping,
    optimizer as optimizer,
    path_string as path_string,
    program_key as program_key,
    schedule as schedule,
    select as select,
    switch as switch,
    trajectory as trajectory,
)
from gradstudy.engine._signal_norms import (
    signal_log_norms as signal_log_norms,
)
from gradstudy.engine._spectra import (
    jacobian_spectrum as jacobian_spectrum,
    layer_jacobian_spectrum as layer_jacobian_spectrum,
)
from gradstudy.engine._sweep import (
    CPU_CHUNK_BYTES as CPU_CHUNK_BYTES,
    ENGINE_VERSION as ENGINE_VERSION,
    MAX_BATCH as MAX_BATCH,
    MAX_POINTS as MAX_POINTS,
    MAX_SEEDS as MAX_SEEDS,
    Sweep as Sweep,
    compiled_program as compiled_program,
    plan_devices as plan_devices,
    release_programs as release_programs,
    run_cached as run_cached,
    run_sweep_arrays as run_sweep_arrays,
    sweep_dataset as sweep_dataset,
    unfingerprintable as unfingerprintable,
)
from gradstudy.engine._training import (
    data_fingerprint as data_fingerprint,
    train as train,
    training_bytes as training_bytes,
)
from gradstudy.engine._training_programs import (
    EVAL_MEMORY_BYTES as EVAL_MEMORY_BYTES,
    EVAL_TRAIN_EXAMPLES as EVAL_TRAIN_EXAMPLES,
    RUN_BLOCK_BYTES as RUN_BLOCK_BYTES,
    Program as Program,
    clear_initial_params_programs as clear_initial_params_programs,
    initial_params as initial_params,
    over_devices as over_devices,
    pad_runs as pad_runs,
    place_runs as place_runs,
    place_whole as place_whole,
    programs as programs,
    run_block as run_block,
    run_devices as run_devices,
)
from gradstudy.engine._training_spec import (
    TRAIN_VERSION as TRAIN_VERSION,
    Training as Training,
    family_for as family_for,
    hooks_for as hooks_for,
    run_keys as run_keys,
)

__all__ = [
    "signal_log_norms",
    "adaptive_grad_clip",
    "AGC_EPS",
    "budget_bytes",
    "BUDGET_ENV",
    "build",
    "clear_initial_params_programs",
    "clip_fired",
    "clipping",
    "CLIPS",
    "cnn_isometry",
    "compiled_program",
    "correlated_pairs",
    "input_correlations",
    "layer_pre_activations",
    "measured_input_correlations",
    "data_fingerprint",
    "DEFAULT_BUDGET_GB",
    "CPU_CHUNK_BYTES",
    "ENGINE_VERSION",
    "EVAL_MEMORY_BYTES",
    "EVAL_TRAIN_EXAMPLES",
    "family_for",
    "hooks_for",
    "human",
    "hvp",
    "initial_curvature",
    "initial_params",
    "initialize_distributed",
    "jacobian_spectrum",
    "layer_jacobian_spectrum",
    "MAX_BATCH",
    "MAX_POINTS",
    "MAX_SEEDS",
    "MAX_STEPS",
    "optimizer",
    "OPTIMIZERS",
    "OptimizerSpec",
    "over_devices",
    "pad_runs",
    "path_string",
    "place_runs",
    "place_whole",
    "plan_devices",
    "plan_chunk",
    "plan_networks",
    "Program",
    "program_key",
    "programs",
    "release_programs",
    "run_block",
    "RUN_BLOCK_BYTES",
    "run_cached",
    "run_devices",
    "run_keys",
    "run_sweep_arrays",
    "schedule",
    "SCHEDULES",
    "seed_keys",
    "select",
    "Sweep",
    "sweep_dataset",
    "switch",
    "top_hessian_eigenvalue",
    "train",
    "TRAIN_VERSION",
    "Training",
    "training_bytes",
    "trajectory",
    "unfingerprintable",
]
