"""The memory budget every estimate is checked against (sweeps, trainings, diagnose, monitor).

One place, in the base layer, because ``tools`` (diagnose, monitor) sit below ``engine``
(sweeps, trainings) in the import layers and both refuse what does not fit the same budget.
"""

from __future__ import annotations

import math
import os

from gradstudy.errors import ConfigError

BUDGET_ENV = "GRADSTUDY_MEMORY_GB"
DEFAULT_BUDGET_GB = 1.0  # for a program's buffers; the Python process adds ≈ 0.5 GB


def budget_bytes() -> int:
    """The memory budget of one program in bytes: ``$GRADSTUDY_MEMORY_GB`` (default 1.0);
    ConfigError naming the variable if it is not a number in (0, 1e5]."""
    raw = os.environ.get(BUDGET_ENV)
    if raw is None:
        return int(DEFAULT_BUDGET_GB * 2**30)
    try:
        gb = float(raw)
    except ValueError:
        gb = float("nan")
    if not (math.isfinite(gb) and 0 < gb <= 1e5):
        raise ConfigError(f"{BUDGET_ENV}: must be a number of GB in (0, 1e5], got {raw!r}")
    return int(gb * 2**30)


def human(n_bytes: float) -> str:
    """``1.25 GB`` or ``12 MB``: the wording of every refusal."""
    return f"{n_bytes / 2**30:.2f} GB" if n_bytes >= 2**28 else f"{n_bytes / 2**20:.0f} MB"
