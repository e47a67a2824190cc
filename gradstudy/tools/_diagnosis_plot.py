"""The figure of a diagnosis (:func:`plot_diagnosis`): per-module gradient norms in
forward order, median and 10–90 % band over seeds, and the signal through time of
recurrent cells in a second panel.

matplotlib is imported only inside the drawing functions (through :mod:`gradstudy.plotting`
or directly): importing gradstudy must not import matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradstudy._numerics import quiet
from gradstudy.tools._diagnose import VANISHING_RATIO, outermost_recurrent, variant_label
from gradstudy.tools._diagnosis_table import last_finite


def plot_diagnosis(ds, path: Path | str | None = None, title: str | None = None):
    """Per-module ‖∂L/∂output‖ and ‖∂L/∂θ‖: median and 10–90 % band over seeds, log axis.

    Modules whose values are not finite are marked (✕) at the bottom of the axis instead
    of being left out.  With a ``variant`` dim, every variant is drawn in its own colour
    (‖∂L/∂output‖ solid with its band, ‖∂L/∂θ‖ dashed).  Recurrent cells measured through
    time get a second panel: their ‖∂L/∂output_t‖ per time step.

    Args:
        ds: a Dataset from :func:`gradstudy.tools.diagnose`.
        path: optional; if given, write ``<path without suffix>.png`` and ``.pdf`` (folders
            created).
        title: optional title (default: the model's name, seeds and variants).

    Returns:
        The ``matplotlib.figure.Figure``, open and drawable, with or without ``path``.  It
        is made by pyplot (so the session's backend, e.g. a notebook's inline one, draws it)
        and then handed back to you rather than kept in pyplot's list: no figure
        accumulates in a loop, and a notebook shows it once, as a cell's last value or with
        ``display(fig)`` (``plt.show()`` does not show it).
    """
    import matplotlib.pyplot as plt  # on use: importing gradstudy must not import it

    from gradstudy import plotting  # on use: importing gradstudy must not import matplotlib

    variants = ds.sizes.get("variant", 0)
    cells = outermost_recurrent(ds.isel(variant=0) if variants else ds)
    with plotting.style():
        if cells:  # a second panel: the signal through time
            fig, (ax, ax_t) = plotting.figure("double", 3.2, ncols=2,
                                              gridspec_kw={"width_ratios": [2, 1]})
        else:
            fig, ax = plotting.figure("double", 3.2)
            ax_t = None
        plt.close(fig)  # pyplot forgets it; the figure itself stays open and is returned
        if variants:
            _draw_variants(ax, ax_t, ds, cells)
        else:
            _draw_seeds(ax, ax_t, ds, cells)
        _module_axis(ax, ds)
        _finish(ax, ds, variants, title)
        if path is not None:
            _save(fig, path)
    return fig


def _save(fig, path: Path | str) -> None:
    """``<path's stem>.png`` and ``.pdf`` beside ``path`` in the paper style, each written to
    a temporary file and renamed (:func:`gradstudy.plotting.save_figure`, figure kept open)."""
    from gradstudy import plotting  # on use: importing gradstudy must not import matplotlib

    plotting.save_figure(fig, Path(path).parent, Path(path).stem, close=False)


def _draw_variants(ax, ax_t, ds, cells: list[str]) -> None:
    """Every variant in its own colour: ‖∂L/∂output‖ solid with its band, ‖∂L/∂θ‖ dashed;
    the first cell's signal through time of every variant on ``ax_t``."""
    variants = ds.sizes["variant"]
    colours = _variant_colours(variants)
    for k in range(variants):
        one = ds.isel(variant=k)
        label = variant_label(ds, k)
        _draw_norms(ax, one, "backprop_norm", colours[k], "o", "-",
                    f"‖∂L/∂output‖, {label}", band=True, band_label=k == 0)
        _draw_norms(ax, one, "param_grad_norm", colours[k], "s", "--", None,
                    band=False)
    ax.plot([], [], "k--", lw=1.0, label="‖∂L/∂θ‖ (dashed)")
    if cells:
        for k in range(variants):
            _plot_through_time(ax_t, ds.isel(variant=k), cells[:1], colours[k],
                               variant_label(ds, k))


def _variant_colours(n: int) -> list:
    """``n`` colours along viridis (its light end left out)."""
    import matplotlib  # on use: importing gradstudy must not import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.85 * k / max(n - 1, 1)) for k in range(n)]


def _draw_seeds(ax, ax_t, ds, cells: list[str]) -> None:
    """Both norms with their bands, the vanishing threshold, and every cell's signal
    through time on ``ax_t``."""
    for name, colour, marker in (("backprop_norm", "C0", "o"),
                                 ("param_grad_norm", "C1", "s")):
        several = ds.sizes["seed"] > 1
        _draw_norms(ax, ds, name, colour, marker, "-",
                    ds[name].attrs["long_name"] + (" (median)" if several else ""),
                    band=several, band_label=name == "backprop_norm")
    if cells:
        _plot_through_time(ax_t, ds, cells)
    with quiet():
        last = last_finite(np.nanmedian(ds.backprop_norm.values, axis=0))
    if np.isfinite(last):
        ax.axhline(VANISHING_RATIO * last, color="0.4", ls=":", lw=0.9,
                   label=f"vanishing flag: {VANISHING_RATIO:g} × last module's")


def _module_axis(ax, ds) -> None:
    """Log y axis; modules on x (short labels), top-level blocks shaded and named."""
    ax.set_yscale("log")
    x = np.arange(ds.sizes["module"])
    labels, groups = _short_labels([str(m) for m in ds.module.values])
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=6)
    for k, (name, start, stop) in enumerate(groups):  # top-level blocks: shaded, named
        if stop - start > 1:
            ax.axvspan(start - 0.5, stop - 0.5, color="0.5", alpha=0.08 * (1 + k % 2),
                       lw=0)
            ax.text((start + stop - 1) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=6, color="0.3")
    ax.set_ylabel("gradient norm")


def _finish(ax, ds, variants: int, title: str | None) -> None:
    """The title, and the legend below the module names, outside the data: inside, it
    would need empty decades reserved for it under the curves."""
    seeds = ds.sizes["seed"]
    what = f"{seeds} seed{'s' if seeds != 1 else ''}" + (f" × {variants} variants"
                                                         if variants else "")
    ax.set_title(title or f"{ds.attrs.get('model', 'model')}: gradient flow per module "
                          f"(forward order, {what})", pad=12)
    entries = len(ax.get_legend_handles_labels()[0])
    if entries:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, _below_tick_labels(ax)),
                  fontsize=6, ncol=2 if entries <= 4 else 3)


def _below_tick_labels(ax, gap_points: float = 4.0) -> float:
    """The height, in axes units, just below the x tick labels of ``ax`` (rotated module
    names of any length), ``gap_points`` lower."""
    fig = ax.figure
    # (the figure is closed in pyplot: no backend renderer; matplotlib lends one for layout)
    bottom = min(ax.xaxis.get_tightbbox().y0, ax.get_window_extent().y0)
    bottom -= gap_points * fig.dpi / 72
    return float(ax.transAxes.inverted().transform((0.0, bottom))[1])


def _draw_norms(ax, ds, name, colour, marker, style, label, band, band_label=True):
    """Median over seeds (and the 10–90 % band) of ``ds[name]`` per module; modules whose
    median is not finite marked ✕ at the bottom."""
    x = np.arange(ds.sizes["module"])
    values = ds[name].values
    finite = np.isfinite(values) & (values > 0)
    with np.errstate(invalid="ignore"), quiet():
        med = np.nanmedian(np.where(finite, values, np.nan), axis=0)
        lo = np.nanpercentile(np.where(finite, values, np.nan), 10, axis=0)
        hi = np.nanpercentile(np.where(finite, values, np.nan), 90, axis=0)
    ax.plot(x, med, color=colour, marker=marker, ms=3, lw=1.2, ls=style, label=label)
    if band:
        ax.fill_between(x, lo, hi, color=colour, alpha=0.25, lw=0,
                        label="10–90 % of seeds" if band_label else None)
    bad = ~np.isfinite(med) & np.any(ds.calls.values > 0, axis=0)
    if name == "param_grad_norm":  # NaN without parameters below: nothing to mark
        bad &= ds.param_count.values > 0
    if bad.any():
        ax.plot(x[bad], np.full(bad.sum(), np.nanmin(med) if np.isfinite(med).any()
                                else 1.0), "x", color=colour, ms=6,
                label=f"{name}: non-finite")


def _plot_through_time(ax, ds, cells, colour=None, label=None):
    """Median ‖∂L/∂output_t‖ over seeds (10–90 % band) of each cell, per time step."""
    t = ds.time.values
    for k, name in enumerate(cells):
        values = ds.backprop_norm_per_step.sel(recurrent_module=name).values
        with quiet():
            med = np.nanmedian(values, axis=0)
            lo, hi = (np.nanpercentile(values, q, axis=0) for q in (10, 90))
        c = colour or f"C{k + 2}"
        several = values.shape[0] > 1
        ax.plot(t, med, color=c, lw=1.2, label=f"{label or name}"
                + (" (median)" if several else ""))
        if several:
            ax.fill_between(t, lo, hi, color=c, alpha=0.25, lw=0)
        bad = ~np.isfinite(med)
        if bad.any():
            ax.plot(t[bad], np.full(bad.sum(), np.nanmin(med[~bad]) if (~bad).any() else 1.0),
                    "x", color=c, label="non-finite")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(r"$\|\partial L/\partial \mathrm{output}_t\|$")
    several = ds.sizes["seed"] > 1
    ax.set_title("through time" + (" (10–90 % of seeds)" if several else ""), pad=12)
    ax.legend(loc="best", fontsize=6)


def _short_labels(labels: list[str], width: int = 14):
    """Tick labels inside a top-level block relative to it (long names cut with "…"), and
    the blocks as ``(name, first index, stop index)`` for shading."""
    def cut(part):
        return part if len(part) <= width else part[:width - 1] + "…"

    short, groups = [], []
    for i, label in enumerate(labels):
        head, _, rest = label.partition("/")
        top = head.split("[")[0]
        if groups and groups[-1][0] == top:
            groups[-1] = (top, groups[-1][1], i + 1)
        else:
            groups.append((top, i, i + 1))
        short.append("/".join(cut(p) for p in rest.split("/")) if rest else label)
    return short, groups
