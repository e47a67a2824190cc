"""One publication style for every figure: sizes, palette, fonts, and saving.

Figures are vector PDF plus 300-dpi PNG, single column ≈ 3.3 in or double column ≈ 6.9 in
wide, with the colorblind-safe Okabe–Ito palette.

References:
    Okabe & Ito (2008), Color universal design (palette).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SINGLE_COLUMN = 3.3
DOUBLE_COLUMN = 6.9
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000"]
LINESTYLES = ["-", "--", "-.", ":"]

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "legend.frameon": False,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,
    "mathtext.fontset": "dejavusans",
}


@contextlib.contextmanager
def style():
    with plt.rc_context(STYLE):
        yield


def figure(width: str | float = "single", height: float | None = None, **kwargs):
    """``plt.subplots`` at a column width ("single", "double" or inches)."""
    w = {"single": SINGLE_COLUMN, "double": DOUBLE_COLUMN}.get(width, width)
    h = height if height is not None else 0.75 * w if w <= SINGLE_COLUMN else 0.45 * w
    return plt.subplots(figsize=(w, h), **kwargs)


def save_figure(fig, directory: Path, name: str) -> list[Path]:
    """Write ``name``.pdf and ``name``.png into ``directory``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.pdf", directory / f"{name}.png"]
    for p in paths:
        tmp = p.with_name(f"{p.stem}.tmp{os.getpid()}{p.suffix}")
        # no creation date: a rerun that draws the same data writes the same PDF bytes
        metadata = {"CreationDate": None} if p.suffix == ".pdf" else {"Software": None}
        fig.savefig(tmp, metadata=metadata)
        tmp.replace(p)
    plt.close(fig)
    return paths


def median_band(ax, x, samples, color, label=None, lo=10, hi=90, positive=True,
                **line_kwargs):
    """Median over axis 0 of ``samples`` with a ``lo``–``hi`` percentile band.

    Non-finite samples (and, with ``positive``, zeros: underflow on a log axis) are left
    out of the statistics, never drawn as values; the caller marks them with
    :func:`mark_nonfinite`.
    """
    samples = np.asarray(samples, float)
    valid = np.isfinite(samples) & ((samples > 0) if positive else True)
    kept = np.where(valid, samples, np.nan)
    with np.errstate(all="ignore"), _quiet():
        med = np.nanmedian(kept, axis=0)
        low = np.nanpercentile(kept, lo, axis=0)
        high = np.nanpercentile(kept, hi, axis=0)
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    return ax.plot(x, med, color=color, label=label, **line_kwargs)[0]


def mark_nonfinite(ax, x, samples, color, where="top", label=None):
    """Mark x positions where any seed's value is inf/NaN (or 0 on a log axis: underflow)."""
    samples = np.asarray(samples, float)
    bad_inf = np.any(~np.isfinite(samples), axis=0)
    bad_zero = np.any(samples == 0, axis=0)
    trans = ax.get_xaxis_transform()
    if bad_inf.any():
        ax.scatter(np.asarray(x)[bad_inf], np.full(bad_inf.sum(), 0.98), marker="x", s=12,
                   color=color, transform=trans, clip_on=False, label=label, zorder=5)
    if bad_zero.any():
        ax.scatter(np.asarray(x)[bad_zero], np.full(bad_zero.sum(), 0.02), marker="v", s=12,
                   color=color, transform=trans, clip_on=False, zorder=5)
    return bool(bad_inf.any() or bad_zero.any())


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
