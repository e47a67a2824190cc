"""Every import path of gradstudy 0.1's flat layout still works for one release
(:mod:`gradstudy._deprecations`): each name resolves, warns with a ``DeprecationWarning``
that names its new path, and that path is importable and holds the same object.

``OLD_API`` is a snapshot of the public (non-underscore) module-level names of the 0.1
modules, taken from their source before the move; it is data, not derived from the alias
table it checks.
"""

import importlib
import re
import subprocess
import sys
import warnings

import pytest

import gradstudy
from gradstudy import _deprecations

OLD_API = {
    "activations": (
        "LEAKY_RELU_SLOPE", "linear", "LeakyReLU", "leaky_relu_with_slope", "leaky_relu",
        "leaky_relu_02", "gelu", "elu", "softsign", "hard_tanh", "erf", "register_activation",
        "activation_names", "get_activation", "callable_id", "activation_name",
        "activation_kinks", "find_kinks",
    ),
    "initializers": (
        "InitFamily", "fans", "unit_normal", "unit_uniform", "UNIT_SAMPLERS", "gaussian",
        "standard_uniform", "glorot_uniform", "glorot_normal", "he_normal", "lecun_normal",
        "orthogonal", "householder_orthogonal", "delta_orthogonal", "register_initializer",
        "register_scaled_initializer", "initializer_names", "get_initializer",
    ),
    "fingerprint": (
        "TRUSTED_PACKAGES", "NotFingerprintable", "fingerprint", "why_not_fingerprintable",
        "activation_fingerprint", "initializer_fingerprint",
        "why_initializer_not_fingerprintable", "spec_fingerprint", "why_spec_unfingerprintable",
    ),
    "config": (
        "NORMS", "DTYPES", "GAIN_FIELDS", "MAX_UNITS", "MAX_GAIN", "check_int", "check_real",
        "check_choice", "check_dtype", "check_sequence", "short_repr", "MLPSpec",
        "allowed_values",
    ),
    "models": (
        "BN_EPS", "Normalize", "no_path", "max_abs_scale", "zero_perturbation", "InputLayer",
        "HiddenLayer", "Readout", "hidden_stack", "MLP", "require_dtype", "init_params",
        "LAYER_KINDS", "apply_gains", "sample_params", "mse_loss", "linear_loss", "LOSSES",
    ),
    "probes": (
        "MEASURED", "gradient_norms", "backprop_histograms", "layer_jacobian_singular_values",
    ),
    "mlp_family": (
        "sample_network", "init_and_probe", "LAYER_LEAVES", "MLP_TRAIN", "MLP_FAMILY",
    ),
    "family": (
        "TrainHooks", "ModelFamily", "register_family", "family_of", "families",
    ),
    "rnn": (
        "CELLS", "VANILLA", "RECURRENT_INITS", "READOUTS", "SCALAR_FIELDS", "RNN_VERSION",
        "MAX_LENGTH", "RNNSpec", "scalars", "haar_orthogonal", "ElmanCell", "state_vector",
        "state_carry", "TappedCell", "RecurrentNet", "leaf_kind", "init_params", "scale_params",
        "sample_params", "apply", "recurrent_kernels", "kernel_names", "param_count",
        "spectral_norm", "spectral_radius", "state_jacobians", "THROUGH_TIME", "through_time",
        "sample_network", "JACOBIAN_SAMPLES", "activation_bytes", "check_data", "TRAIN_HOOKS",
        "RNN_FAMILY",
    ),
    "cnn": (
        "BLOCKS", "PADDINGS", "LAYER_KINDS", "CNNSpec", "Conv1D", "ConvLayer", "Readout",
        "conv_stack", "ConvNet", "init_params", "apply_gains", "sample_params", "apply",
        "family_scalars", "param_count", "activation_bytes", "MEASURED", "sample_network",
        "measure_network", "network_bytes", "output_bytes", "coords", "train_coords", "STACK",
        "READOUT", "is_stacked", "is_output", "layer_leaves", "check_data", "CNN_TRAIN",
        "CNN_FAMILY",
    ),
    "predictions": (
        "input_sigma_w2", "preactivation_q", "backprop_factors", "backprop_profile",
        "weight_grad_profile", "log10_backprop_ratio", "jacobian_mean_singular_value",
        "relu_readout_excess", "output_variance",
    ),
    "chain": (
        "chain_gradients", "closed_form", "first_nonfinite_or_zero", "predicted_breakdown_depth",
    ),
    "sweep": (
        "MLPSpec", "init_and_probe", "sample_network", "ENGINE_VERSION", "MAX_POINTS", "MAX_SEEDS",
        "MAX_BATCH", "Sweep", "seed_keys", "jacobian_mean_singular_values", "compiled_program",
        "run_sweep_arrays", "to_dataset", "unfingerprintable", "run_cached", "release_programs",
    ),
    "train": (
        "TRAIN_VERSION", "LOSSES", "family_for", "hooks_for", "Training", "Program",
        "RUN_BLOCK_BYTES", "run_block", "programs", "run_devices", "pad_runs", "place_runs",
        "over_devices", "EVAL_TRAIN_EXAMPLES", "EVAL_MEMORY_BYTES", "train", "data_fingerprint",
        "initial_params", "clear_initial_params_programs", "run_keys", "training_bytes",
    ),
    "optim": (
        "OPTIMIZERS", "SCHEDULES", "CLIPS", "MAX_STEPS", "OptimizerSpec", "schedule", "clipping",
        "AGC_EPS", "adaptive_grad_clip", "optimizer", "build", "program_key", "select", "switch",
        "clip_fired", "path_string", "trajectory",
    ),
    "memory": (
        "BUDGET_ENV", "DEFAULT_BUDGET_GB", "budget_bytes", "param_count", "network_bytes",
        "network_output_bytes", "human", "plan_chunk", "plan_networks",
    ),
    "curvature": (
        "hvp", "top_hessian_eigenvalue",
    ),
    "probe": (
        "PROBE", "TIME", "STATS", "path_label", "safe_norm", "owns_params", "Selection",
        "selection", "Probes", "make_probes", "probe",
    ),
    "diagnose": (
        "VANISHING_RATIO", "EXPLODING_RATIO", "DEAD_FRACTION", "MODULE_VARS", "diagnose",
        "variant_label", "summary", "format_table", "outermost_recurrent", "plot", "load_factory",
        "call_factory",
    ),
    "monitor": (
        "MAX_EVERY", "MAX_CAPACITY", "FIELDS", "MonitorState", "path_name", "leaf_names",
        "safe_norm", "monitor", "find_states", "find_state", "valid_rows", "to_dataset",
        "plot_heatmap",
    ),
    "tasks": (
        "MAX_TASK_BYTES", "MAX_SAMPLES", "MAX_LENGTH", "ADDING_BASELINE_MSE", "COPY_BLANK",
        "COPY_FIRST_SYMBOL", "adding_baseline_loss", "copy_baseline", "adding_problem",
        "copy_memory", "sequence_mnist1d",
    ),
    "study": (
        "finite_median", "SCALES", "Claim", "Context", "experiments_dir", "discover",
        "discover_all", "require", "GENERIC_INT_RANGE", "GENERIC_MAX_ITEMS", "GENERIC_MAX_CHARS",
        "Limit", "study_limits", "parse_overrides", "study_params", "output_dirs", "run_study",
        "load_summaries",
    ),
    "stats": (
        "K_SE", "MEDIAN_SE_FACTOR", "BOOTSTRAP_RESAMPLES", "median_se", "mean_se",
        "median_se_axis0", "bootstrap_se", "tolerance", "finite_median", "zero_crossing",
        "median_zero_crossing", "rms_standardized_residual", "log_mean_square_excess",
        "first_last_log10_ratio", "per_layer_factors", "mean_log_factor", "profile_residual",
        "symmetric_edges", "clipped_histogram", "fraction_beyond", "moving_average",
    ),
    "report": (
        "comparison", "markdown", "tex_statement", "source_kind", "latex", "write_tables",
    ),
    "theory": (
        "Z_MAX", "gaussian_expectation", "bivariate_gaussian_expectation", "length_map",
        "q_trajectory", "fixed_point_q", "chi1", "backprop_factor_trajectory", "chi_c",
        "correlation_map", "fixed_point_c", "depth_scale_q", "depth_scale_c", "critical_sigma_w2",
        "MeanFieldPoint", "mean_field", "MeanFieldError", "mean_field_error", "gauss_hermite",
        "linear_length_map", "linear_chi1", "relu_length_map", "relu_chi1",
        "leaky_relu_length_map", "leaky_relu_chi1", "relu_correlation_map",
    ),
    "data": (
        "MNIST1D_VERSION", "Dataset", "mnist1d", "teacher_student", "transform_inputs",
        "standardize",
    ),
}

# gradstudy.theory and gradstudy.data kept their names (modules became folders)
KEPT = ("theory", "data")
PAIRS = [(m, n) for m, names in OLD_API.items() for n in names]


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _named_path(old: str, name: str, message: str) -> str:
    """The new path a warning names; a private one only with "no longer public"."""
    assert message.startswith(f"gradstudy.{old}.{name} is deprecated"), message
    found = re.search(r"; use (\S+?)\.?$", message)
    if found is None:
        found = re.search(r"and no longer public; it is (\S+?) now\.?$", message)
        assert found, message
        return found.group(1)
    assert "._" not in found.group(1), f"a public name sends users to a private module: {message}"
    return found.group(1)


CALLABLE = set(_deprecations.CALLABLE_MODULES)


@pytest.mark.parametrize("old", sorted(OLD_API))
def test_every_old_name_resolves_with_a_warning_naming_its_new_path(old):
    module = importlib.import_module(f"gradstudy.{old}")
    for name in OLD_API[old]:
        if old in KEPT:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert getattr(module, name) is not None, f"gradstudy.{old}.{name}"
            continue
        if (old, name) == ("models", "LOSSES"):  # 0.1's table of the two probe losses
            with pytest.warns(DeprecationWarning, match="PROBE_LOSSES"):
                value = getattr(module, name)
            assert value == {"mse": gradstudy.nn.mse_loss, "linear": gradstudy.nn.linear_loss}
            continue
        if old in CALLABLE:  # gradstudy.diagnose is the function: attributes cannot warn
            value = getattr(module, name)
            if getattr(value, "__doc__", "").startswith("Deprecated: "):  # a wrapped function
                text = value.__doc__.split("\n")[0].removeprefix("Deprecated: ")
                assert _resolve(_named_path(old, name, text)) is value.__wrapped__
                with pytest.warns(DeprecationWarning, match=re.escape(text.rstrip("."))):
                    try:
                        value()  # the warning comes first; no arguments may be an error
                    except Exception:
                        pass
            else:  # a class or a constant, as it is
                where = _deprecations.new_path(old, name).replace(":", ".")
                assert _resolve(where) is value, (old, name)
            continue
        with pytest.warns(DeprecationWarning) as caught:
            value = getattr(module, name)
        new = _named_path(old, name, str(caught[0].message))
        assert not new.startswith(f"gradstudy.{old}."), new
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new path itself does not warn
            assert _resolve(new) is value, (old, name, new)


def test_old_import_statements_work():
    code = ("from gradstudy.sweep import Sweep, run_cached\n"
            "from gradstudy.train import Training, train\n"
            "from gradstudy.optim import OptimizerSpec\n"
            "from gradstudy.predictions import backprop_profile\n"
            "from gradstudy.diagnose import diagnose, format_table, plot\n"
            "from gradstudy.monitor import monitor, plot_heatmap, to_dataset, FIELDS\n"
            "from gradstudy.stats import *\n"
            "import gradstudy.family, gradstudy.memory\n"
            "import gradstudy\n"
            "assert Sweep is gradstudy.engine.Sweep and train is gradstudy.engine.train\n"
            "assert format_table.__wrapped__ is gradstudy.tools.diagnosis_table\n"
            "assert to_dataset.__wrapped__ is gradstudy.tools.monitor_dataset\n"
            "assert FIELDS is gradstudy.tools.MONITOR_FIELDS\n"
            "assert finite_median is gradstudy.studies.finite_median\n"
            "assert gradstudy.family.ModelFamily is gradstudy.families.ModelFamily\n")
    out = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    warned = re.findall(r"DeprecationWarning: (gradstudy\.\w+\.\w+) is deprecated", out.stderr)
    assert "gradstudy.sweep.Sweep" in warned and "gradstudy.stats.finite_median" in warned
    assert len(warned) >= 12, out.stderr


def test_importing_an_old_callable_module_keeps_the_function():
    import inspect

    import gradstudy.diagnose  # noqa: F401  (0.1's module path)
    import gradstudy.monitor  # noqa: F401
    import gradstudy.train  # noqa: F401

    assert gradstudy.diagnose is gradstudy.tools.diagnose
    assert gradstudy.monitor is gradstudy.tools.monitor
    assert inspect.isfunction(gradstudy.diagnose)
    assert "seeds" in inspect.signature(gradstudy.diagnose).parameters
    tx = gradstudy.monitor(every=1, capacity=2)
    assert hasattr(tx, "init") and hasattr(tx, "update")
    assert gradstudy.monitor.MonitorState is gradstudy.tools.MonitorState  # a class, as is
    assert gradstudy.diagnose.VANISHING_RATIO == gradstudy.tools.VANISHING_RATIO
    with pytest.warns(DeprecationWarning, match="use gradstudy.engine.Training"):
        assert gradstudy.train.Training is gradstudy.engine.Training
    with pytest.raises(TypeError):
        gradstudy.sweep()  # an old module that never was callable


def test_old_module_functions_on_the_new_functions_warn_when_called():
    legacy = gradstudy.tools.monitor.to_dataset
    assert legacy.__doc__.startswith("Deprecated: gradstudy.monitor.to_dataset is deprecated")
    assert legacy.__wrapped__ is gradstudy.tools.monitor_dataset
    with pytest.warns(DeprecationWarning, match="use gradstudy.tools.valid_rows"):
        with pytest.raises(Exception):  # noqa: B017
            gradstudy.tools.monitor.valid_rows(None)


def test_face_attributes_of_old_modules():
    with pytest.warns(DeprecationWarning, match="use gradstudy.studies.finite_median"):
        assert gradstudy.stats.finite_median is not None  # gradstudy.stats, never imported
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        gradstudy.no_such_module  # noqa: B018


def test_alias_table_points_at_existing_modules():
    for old, (home, private) in _deprecations.MOVED_MODULES.items():
        assert old in OLD_API, old
        for module in (home,) + private:
            importlib.import_module(module)
    for (old, name), target in _deprecations.MOVED_NAMES.items():
        assert name in OLD_API[old], (old, name)
        _resolve(target.replace(":", "."))
