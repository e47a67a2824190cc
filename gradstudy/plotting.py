"""One publication style for every figure: sizes, palette, fonts, and saving.

Every figure style is defined here: :data:`STYLE` for the studies' figures and
:data:`COMPACT_STYLE`, its compact variant for dense heatmaps (:func:`style` selects one).

Importing this module leaves matplotlib's backend alone (a notebook keeps its inline
figures); the ``gradstudy`` command selects the headless Agg backend itself.

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
import matplotlib.pyplot as plt
import numpy as np

from gradstudy import status
from gradstudy._numerics import quiet

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


# A compact variant for dense, wide figures (the leaf × step heatmaps of
# gradstudy.tools.plot_monitor_heatmap): matplotlib's defaults (colours, spines, no grid)
# with smaller fonts, 200-dpi PNGs and thin hatches for the non-finite cells.
COMPACT_STYLE = {
    "font.size": 7,
    "axes.titlesize": 8,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "hatch.linewidth": 0.6,
}

STYLES = {"paper": STYLE, "compact": COMPACT_STYLE}


@contextlib.contextmanager
def style(name: str = "paper"):
    """Within the block, the rc settings of figure style ``name``: "paper"
    (:data:`STYLE`, every study's figures) or "compact" (:data:`COMPACT_STYLE`)."""
    if name not in STYLES:
        raise ValueError(f"style: unknown name {name!r}; allowed: {', '.join(STYLES)}")
    with plt.rc_context(STYLES[name]):
        yield


def figure(width: str | float = "single", height: float | None = None, **kwargs):
    """``plt.subplots`` at a column width ("single", "double" or inches): returns
    ``(fig, axes)``, the figure registered with pyplot (close it, or pass it to
    :func:`save_figure`, which closes it)."""
    w = {"single": SINGLE_COLUMN, "double": DOUBLE_COLUMN}.get(width, width)
    h = height if height is not None else 0.75 * w if w <= SINGLE_COLUMN else 0.45 * w
    return plt.subplots(figsize=(w, h), **kwargs)


def save_figure(fig, directory: Path, name: str, close: bool = True) -> list[Path]:
    """Write ``name``.pdf and ``name``.png into ``directory`` (created), each to a temporary
    file renamed into place, without date or software metadata; returns the paths.

    With ``close`` (the default, for the studies' scripts) the figure is closed in pyplot
    afterwards; ``close=False`` keeps it open, e.g. to return it to a notebook."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.pdf", directory / f"{name}.png"]
    for p in paths:
        tmp = p.with_name(f"{p.stem}.tmp{os.getpid()}{p.suffix}")
        # no creation date: a rerun that draws the same data writes the same PDF bytes
        metadata = {"CreationDate": None} if p.suffix == ".pdf" else {"Software": None}
        fig.savefig(tmp, metadata=metadata)
        tmp.replace(p)
    if close:
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
    with np.errstate(all="ignore"), quiet():
        med = np.nanmedian(kept, axis=0)
        low = np.nanpercentile(kept, lo, axis=0)
        high = np.nanpercentile(kept, hi, axis=0)
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    return ax.plot(x, med, color=color, label=label, **line_kwargs)[0]


# How each non-finite reason (gradstudy.status) is drawn: marker, height in axes units, text.
NONFINITE_MARKERS = {
    status.UNDERFLOW: ("v", 0.02, "0: underflow in a seed"),
    status.NO_PATH: ("o", 0.02, "0: no path (dead units) in a seed"),
    status.OVERFLOW: ("x", 0.98, "inf/NaN: backward overflow in a seed"),
    status.FORWARD_NONFINITE: ("D", 0.98, "NaN: forward pass overflowed in a seed"),
}


def mark_nonfinite(ax, x, samples, color, status_codes=None, label=None):
    """Mark x positions where any seed's value is not a normal number, by reason.

    Args:
        samples: (seed, x) values.
        status_codes: their :mod:`gradstudy.status` codes (the ``<name>_status`` variable of
            a sweep's Dataset); without them, 0 reads as underflow and inf/NaN as overflow.

    Returns:
        True if anything was marked.  The reasons drawn are remembered on the figure, for
        :func:`nonfinite_legend`.
    """
    samples = np.asarray(samples, float)
    if status_codes is None:
        status_codes = status.classify(samples, True)
    codes = np.asarray(status_codes)
    trans = ax.get_xaxis_transform()
    drawn = ax.figure.__dict__.setdefault("_gradstudy_nonfinite", set())
    marked = False
    for code, (marker, height, _) in NONFINITE_MARKERS.items():
        where = np.any(codes == code, axis=0)
        if where.any():
            # unfilled markers (x) take only a colour; the hollow circle an edge colour
            colors = ({"color": color} if marker == "x" else
                      {"facecolors": "none" if marker == "o" else color, "edgecolors": color})
            ax.scatter(np.asarray(x)[where], np.full(where.sum(), height), marker=marker,
                       s=12 if marker != "D" else 9, linewidths=0.9, transform=trans,
                       clip_on=False, zorder=5, label=label, **colors)
            drawn.add(code)
            marked = True
    return marked


def nonfinite_legend(fig, color="0.3"):
    """(handles, labels) explaining the non-finite markers drawn on ``fig`` (none if none)."""
    handles, names = [], []
    for code in sorted(fig.__dict__.get("_gradstudy_nonfinite", ())):
        marker, _, text = NONFINITE_MARKERS[code]
        face = "none" if marker == "o" else color
        handles.append(plt.Line2D([], [], ls="none", marker=marker, markersize=4,
                                  markerfacecolor=face, markeredgecolor=color))
        names.append(text)
    return handles, names


def decade_ticks(ax, axis: str = "y", max_labels: int = 7) -> None:
    """Major ticks of a log axis at whole decades 10^(k·step), ``step`` from 1, 2, 5, 10, ...
    decades so that at most ``max_labels`` are labelled; no minor ticks."""
    from matplotlib.ticker import FixedLocator, LogFormatterMathtext, NullLocator

    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    lo_dec, hi_dec = np.log10(lo), np.log10(hi)
    span = max(hi_dec - lo_dec, 1e-9)
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500) if span / s + 1 <= max_labels)
    first = int(np.ceil(lo_dec / step)) * step
    ticks = 10.0 ** np.arange(first, hi_dec + 1e-9, step)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(LogFormatterMathtext())
    target.set_minor_locator(NullLocator())


def relative_luminance(color) -> float:
    """WCAG 2.x relative luminance of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in to_rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(color, background="white") -> float:
    """WCAG contrast ratio (1 to 21) of ``color`` against ``background``; lines and
    markers need ≥ 3 (WCAG 2.1, 1.4.11 non-text contrast)."""
    a, b = sorted((relative_luminance(color), relative_luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def diverging_colors(values, center: float = 1.0, neutral: str = "0.35"):
    """One colour per value of a ratio-like parameter, diverging around ``center``: blues
    below, reds above, darker with the rank of the distance from ``center``, ``neutral``
    grey at ``center``.  Every colour has ≥ 3:1 contrast on white (the light ends of the
    sequential maps are left out), and values either side of the centre differ by hue
    family (blue vs red), which survives deuteranopia.

    References:
        Brewer (1999), Color use guidelines for data representation (diverging schemes).
    """
    from matplotlib import colormaps

    values = np.asarray(values, float)
    colors = [neutral] * len(values)
    for side, cmap in ((values < center, "Blues"), (values > center, "Reds")):
        idx = np.flatnonzero(side & ~np.isclose(values, center))
        order = idx[np.argsort(np.abs(np.log(values[idx] / center)))]  # nearest first
        shades = np.linspace(0.6, 1.0, len(order)) if len(order) > 1 else [0.8]
        for i, x in zip(order, shades):
            colors[i] = matplotlib.colors.to_hex(colormaps[cmap](x))
    return colors


def sequential_colors(n: int, cmap: str = "plasma", lo: float = 0.0, hi: float = 0.6):
    """``n`` colours along a perceptually uniform sequential map, for ordered categories
    (layers 1..n); ``hi`` = 0.6 leaves out plasma's light end (< 3:1 contrast on white)."""
    from matplotlib import colormaps

    m = colormaps[cmap]
    return [matplotlib.colors.to_hex(m(x)) for x in np.linspace(lo, hi, n)]


def heatmap(ax, x_edges, y_edges, values, **kwargs):
    """``ax.pcolormesh(x_edges, y_edges, values, **kwargs)`` on an image axis: the style's
    grid is switched off on ``ax`` (grid lines drawn over the cells read as cell borders or
    data).  Returns the mesh (for a colour bar)."""
    mesh = ax.pcolormesh(x_edges, y_edges, values, **kwargs)
    ax.grid(False)
    return mesh


def panel_titles(axes, titles, **kwargs) -> None:
    """Title each of ``axes`` (in reading order: rows first) "(a) title", "(b) title", …:
    unique letters in order, however the panels were drawn.  ``kwargs`` go to
    ``set_title`` (e.g. ``fontsize``)."""
    axes = list(np.ravel(axes))
    if len(titles) != len(axes):
        raise ValueError(f"panel_titles: {len(axes)} axes but {len(titles)} titles")
    if len(axes) > 26:
        raise ValueError(f"panel_titles: at most 26 panels, got {len(axes)}")
    for k, (ax, title) in enumerate(zip(axes, titles)):
        ax.set_title(f"({chr(ord('a') + k)}) {title}", **kwargs)


def cell_edges(centers) -> np.ndarray:
    """Edges of the cells around sorted ``centers`` (for ``pcolormesh``): midpoints inside,
    the first and last cells mirrored outside; one centre gets a cell of width 1."""
    c = np.asarray(centers, float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])

__all__ = [
    "cell_edges", "COMPACT_STYLE", "contrast_ratio", "decade_ticks", "diverging_colors",
    "DOUBLE_COLUMN", "figure", "heatmap", "LINESTYLES", "mark_nonfinite", "median_band",
    "nonfinite_legend", "NONFINITE_MARKERS", "OKABE_ITO", "panel_titles", "relative_luminance",
    "save_figure", "sequential_colors", "SINGLE_COLUMN", "STYLE", "style", "STYLES",
]
