"""The study protocol: a study in ``experiments/`` declares NAME, SCALES, LIMITS and ``run``;
this folder discovers and runs studies, validates ``--set`` overrides, holds the claims and
the statistics their tolerances come from, and writes the claims tables.
"""

from gradstudy.studies._protocol import (
    GENERIC_INT_RANGE as GENERIC_INT_RANGE,
)
from gradstudy.studies._protocol import (
    GENERIC_MAX_CHARS as GENERIC_MAX_CHARS,
)
from gradstudy.studies._protocol import (
    GENERIC_MAX_ITEMS as GENERIC_MAX_ITEMS,
)
from gradstudy.studies._protocol import (
    SCALES as SCALES,
)
from gradstudy.studies._protocol import (
    Claim as Claim,
)
from gradstudy.studies._protocol import (
    Context as Context,
)
from gradstudy.studies._protocol import (
    Limit as Limit,
)
from gradstudy.studies._protocol import (
    discover as discover,
)
from gradstudy.studies._protocol import (
    discover_all as discover_all,
)
from gradstudy.studies._protocol import (
    experiments_dir as experiments_dir,
)
from gradstudy.studies._protocol import (
    load_summaries as load_summaries,
)
from gradstudy.studies._protocol import (
    output_dirs as output_dirs,
)
from gradstudy.studies._protocol import (
    parse_overrides as parse_overrides,
)
from gradstudy.studies._protocol import (
    require as require,
)
from gradstudy.studies._protocol import (
    run_study as run_study,
)
from gradstudy.studies._protocol import (
    study_limits as study_limits,
)
from gradstudy.studies._protocol import (
    study_params as study_params,
)
from gradstudy.studies._report import (
    comparison as comparison,
)
from gradstudy.studies._report import (
    latex as latex,
)
from gradstudy.studies._report import (
    markdown as markdown,
)
from gradstudy.studies._report import (
    source_kind as source_kind,
)
from gradstudy.studies._report import (
    tex_statement as tex_statement,
)
from gradstudy.studies._report import (
    write_tables as write_tables,
)
from gradstudy.studies._stats import (
    BOOTSTRAP_RESAMPLES as BOOTSTRAP_RESAMPLES,
)
from gradstudy.studies._stats import (
    K_SE as K_SE,
)
from gradstudy.studies._stats import (
    MEDIAN_SE_FACTOR as MEDIAN_SE_FACTOR,
)
from gradstudy.studies._stats import (
    bootstrap_se as bootstrap_se,
)
from gradstudy.studies._stats import (
    clipped_histogram as clipped_histogram,
)
from gradstudy.studies._stats import (
    finite_median as finite_median,
)
from gradstudy.studies._stats import (
    first_last_log10_ratio as first_last_log10_ratio,
)
from gradstudy.studies._stats import (
    fraction_beyond as fraction_beyond,
)
from gradstudy.studies._stats import (
    log_mean_square_excess as log_mean_square_excess,
)
from gradstudy.studies._stats import (
    mean_log_factor as mean_log_factor,
)
from gradstudy.studies._stats import (
    mean_se as mean_se,
)
from gradstudy.studies._stats import (
    median_se as median_se,
)
from gradstudy.studies._stats import (
    median_se_axis0 as median_se_axis0,
)
from gradstudy.studies._stats import (
    median_zero_crossing as median_zero_crossing,
)
from gradstudy.studies._stats import (
    moving_average as moving_average,
)
from gradstudy.studies._stats import (
    per_layer_factors as per_layer_factors,
)
from gradstudy.studies._stats import (
    profile_residual as profile_residual,
)
from gradstudy.studies._stats import (
    rms_standardized_residual as rms_standardized_residual,
)
from gradstudy.studies._stats import (
    symmetric_edges as symmetric_edges,
)
from gradstudy.studies._stats import (
    tolerance as tolerance,
)
from gradstudy.studies._stats import (
    zero_crossing as zero_crossing,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "bootstrap_se",
    "Claim",
    "clipped_histogram",
    "comparison",
    "Context",
    "discover",
    "discover_all",
    "experiments_dir",
    "finite_median",
    "first_last_log10_ratio",
    "fraction_beyond",
    "GENERIC_INT_RANGE",
    "GENERIC_MAX_CHARS",
    "GENERIC_MAX_ITEMS",
    "K_SE",
    "latex",
    "Limit",
    "load_summaries",
    "log_mean_square_excess",
    "markdown",
    "mean_log_factor",
    "mean_se",
    "median_se",
    "median_se_axis0",
    "MEDIAN_SE_FACTOR",
    "median_zero_crossing",
    "moving_average",
    "output_dirs",
    "parse_overrides",
    "per_layer_factors",
    "profile_residual",
    "require",
    "rms_standardized_residual",
    "run_study",
    "SCALES",
    "source_kind",
    "study_limits",
    "study_params",
    "symmetric_edges",
    "tex_statement",
    "tolerance",
    "write_tables",
    "zero_crossing",
]
