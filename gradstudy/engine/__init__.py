"""The engine: sweeps (a grid of specs × depths × seeds measured at initialisation, one
compiled program per shape) and trainings (a grid of specs × optimizers × learning rates ×
seeds trained with Optax, one compiled program per network), their memory planning, the
optimizers and the curvature probe.
"""

from gradstudy.engine._curvature import (
    hvp as hvp,
)
from gradstudy.engine._curvature import (
    initial_curvature as initial_curvature,
)
from gradstudy.engine._curvature import (
    top_hessian_eigenvalue as top_hessian_eigenvalue,
)
from gradstudy.engine._memory import (
    BUDGET_ENV as BUDGET_ENV,
)
from gradstudy.engine._memory import (
    DEFAULT_BUDGET_GB as DEFAULT_BUDGET_GB,
)
from gradstudy.engine._memory import (
    budget_bytes as budget_bytes,
)
from gradstudy.engine._memory import (
    human as human,
)
from gradstudy.engine._memory import (
    plan_chunk as plan_chunk,
)
from gradstudy.engine._memory import (
    plan_networks as plan_networks,
)
from gradstudy.engine._optim import (
    AGC_EPS as AGC_EPS,
)
from gradstudy.engine._optim import (
    CLIPS as CLIPS,
)
from gradstudy.engine._optim import (
    MAX_STEPS as MAX_STEPS,
)
from gradstudy.engine._optim import (
    OPTIMIZERS as OPTIMIZERS,
)
from gradstudy.engine._optim import (
    SCHEDULES as SCHEDULES,
)
from gradstudy.engine._optim import (
    OptimizerSpec as OptimizerSpec,
)
from gradstudy.engine._optim import (
    adaptive_grad_clip as adaptive_grad_clip,
)
from gradstudy.engine._optim import (
    build as build,
)
from gradstudy.engine._optim import (
    clip_fired as clip_fired,
)
from gradstudy.engine._optim import (
    clipping as clipping,
)
from gradstudy.engine._optim import (
    optimizer as optimizer,
)
from gradstudy.engine._optim import (
    path_string as path_string,
)
from gradstudy.engine._optim import (
    program_key as program_key,
)
from gradstudy.engine._optim import (
    schedule as schedule,
)
from gradstudy.engine._optim import (
    select as select,
)
from gradstudy.engine._optim import (
    switch as switch,
)
from gradstudy.engine._optim import (
    trajectory as trajectory,
)
from gradstudy.engine._spectra import (
    layer_jacobian_spectrum as layer_jacobian_spectrum,
)
from gradstudy.engine._sweep import (
    ENGINE_VERSION as ENGINE_VERSION,
)
from gradstudy.engine._sweep import (
    MAX_BATCH as MAX_BATCH,
)
from gradstudy.engine._sweep import (
    MAX_POINTS as MAX_POINTS,
)
from gradstudy.engine._sweep import (
    MAX_SEEDS as MAX_SEEDS,
)
from gradstudy.engine._sweep import (
    Sweep as Sweep,
)
from gradstudy.engine._sweep import (
    compiled_program as compiled_program,
)
from gradstudy.engine._sweep import (
    release_programs as release_programs,
)
from gradstudy.engine._sweep import (
    run_cached as run_cached,
)
from gradstudy.engine._sweep import (
    run_sweep_arrays as run_sweep_arrays,
)
from gradstudy.engine._sweep import (
    sweep_dataset as sweep_dataset,
)
from gradstudy.engine._sweep import (
    unfingerprintable as unfingerprintable,
)
from gradstudy.engine._training import (
    data_fingerprint as data_fingerprint,
)
from gradstudy.engine._training import (
    train as train,
)
from gradstudy.engine._training import (
    training_bytes as training_bytes,
)
from gradstudy.engine._training_programs import (
    EVAL_MEMORY_BYTES as EVAL_MEMORY_BYTES,
)
from gradstudy.engine._training_programs import (
    EVAL_TRAIN_EXAMPLES as EVAL_TRAIN_EXAMPLES,
)
from gradstudy.engine._training_programs import (
    RUN_BLOCK_BYTES as RUN_BLOCK_BYTES,
)
from gradstudy.engine._training_programs import (
    Program as Program,
)
from gradstudy.engine._training_programs import (
    clear_initial_params_programs as clear_initial_params_programs,
)
from gradstudy.engine._training_programs import (
    initial_params as initial_params,
)
from gradstudy.engine._training_programs import (
    over_devices as over_devices,
)
from gradstudy.engine._training_programs import (
    pad_runs as pad_runs,
)
from gradstudy.engine._training_programs import (
    place_runs as place_runs,
)
from gradstudy.engine._training_programs import (
    programs as programs,
)
from gradstudy.engine._training_programs import (
    run_block as run_block,
)
from gradstudy.engine._training_programs import (
    run_devices as run_devices,
)
from gradstudy.engine._training_spec import (
    TRAIN_VERSION as TRAIN_VERSION,
)
from gradstudy.engine._training_spec import (
    Training as Training,
)
from gradstudy.engine._training_spec import (
    family_for as family_for,
)
from gradstudy.engine._training_spec import (
    hooks_for as hooks_for,
)
from gradstudy.engine._training_spec import (
    run_keys as run_keys,
)

__all__ = [
    "adaptive_grad_clip",
    "AGC_EPS",
    "budget_bytes",
    "BUDGET_ENV",
    "build",
    "clear_initial_params_programs",
    "clip_fired",
    "clipping",
    "CLIPS",
    "compiled_program",
    "data_fingerprint",
    "DEFAULT_BUDGET_GB",
    "ENGINE_VERSION",
    "EVAL_MEMORY_BYTES",
    "EVAL_TRAIN_EXAMPLES",
    "family_for",
    "hooks_for",
    "human",
    "hvp",
    "initial_curvature",
    "initial_params",
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
