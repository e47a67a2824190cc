"""The heatmap of a monitor's records (:func:`plot_monitor_heatmap`): log10 gradient norm and
log10 update/parameter ratio per leaf and step, non-finite cells hatched, never blank.

matplotlib is imported only inside the drawing functions (through :mod:`gradstudy.plotting`
or directly): importing gradstudy must not import matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradstudy.errors import ConfigError

# non-finite cell categories: (label, face colour, hatch); colours outside viridis/cividis
_NONFINITE = (("NaN", "#CC79A7", "xxxx"),
              ("+inf", "#D55E00", "////"),
              ("0 (log10 = −inf)", "white", "...."))

# g: what the monitor received (raw gradients if first in the chain or wrapping);
# u: what it returned (ΔW if last or wrapping; = g if first without inner)
_PANELS = (("grad_norm", "viridis", "log$_{10}$ ‖g$_l$‖",
            "gradient norm ‖g$_l$‖ (monitor input)"),
           ("update_ratio", "cividis", "log$_{10}$ ‖u$_l$‖/‖W$_l$‖",
            "update/parameter ratio ‖u$_l$‖/‖W$_l$‖ (u: monitor output)"))


def plot_monitor_heatmap(ds, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Leaf × step heatmaps of log10 ``grad_norm`` and log10 ``update_ratio``.

    Non-finite cells are never blank: NaN, +inf and zero values (log10 = −inf) are drawn
    in distinct hatched colours, and each panel's legend gives their cell counts.

    Args:
        ds: a dataset from :func:`monitor_dataset`.
        path: if given, write ``<path without suffix>.png`` and ``.pdf`` (folders created).
        title: optional figure title.

    Returns:
        The ``matplotlib.figure.Figure``, open and drawable, with or without ``path``.  It
        is made by pyplot (so the session's backend, e.g. a notebook's inline one, draws it)
        and then handed back to you rather than kept in pyplot's list: no figure
        accumulates in a loop, and a notebook shows it once, as a cell's last value or with
        ``display(fig)`` (``plt.show()`` does not show it).

    Raises:
        ConfigError: ``ds`` is not a monitor dataset, or holds no record yet (a heatmap of
            nothing would be an empty frame that reads as a plotting failure).
    """
    # on use: importing gradstudy must not import matplotlib
    import matplotlib.pyplot as plt

    from gradstudy import plotting  # on use: plotting imports matplotlib

    _check_dataset(ds)
    names = [str(s) for s in ds.leaf.values]
    prefix = _common_prefix(names)
    labels = [s[len(prefix):] for s in names]
    steps = np.asarray(ds.step.values)
    n_rows = max(len(labels), 1)
    with plotting.style("compact"):
        fig = plt.figure(figsize=(7.0, max(2.6, 0.17 * n_rows + 1.5)), layout="constrained")
        plt.close(fig)  # pyplot forgets it; the figure itself stays open and is returned
        axes = fig.subplots(1, 2, sharey=True)
        x_edges = plotting.cell_edges(steps) if steps.size else np.array([0.0, 1.0])
        y_edges = np.arange(n_rows + 1) - 0.5
        for ax, (field, cmap, label, panel_title) in zip(axes, _PANELS):
            values = np.asarray(ds[field].values, float).T  # (leaf, step)
            if values.size == 0:
                values = np.full((n_rows, max(steps.size, 1)), np.nan)
            _panel(fig, ax, values, x_edges, y_edges, cmap, label, panel_title)
        axes[0].set_yticks(np.arange(len(labels)), labels)
        axes[0].set_ylim(n_rows - 0.5, -0.5)  # first leaf on top
        axes[0].set_ylabel(f"leaf ({prefix}…)" if prefix else "leaf")
        fig.suptitle(title or f"gradient monitor: {ds.attrs.get('valid_records', len(steps))}"
                              f" records, {len(labels)} leaves")
        if path is not None:
            _save(fig, path)
    return fig


def _check_dataset(ds) -> None:
    """ConfigError unless ``ds`` is a monitor dataset with at least one record."""
    fields = [f for f, *_ in _PANELS]
    if not (hasattr(ds, "data_vars") and all(f in ds.data_vars for f in fields)
            and "step" in ds.dims and "leaf" in ds.dims):
        raise ConfigError(f"ds: expected the Dataset of gradstudy.tools.monitor_dataset(state, "
                          f"params) with {' and '.join(fields)}, got {type(ds).__name__}")
    if ds.sizes["step"] == 0:
        raise ConfigError(f"ds: the monitor has no record yet (steps seen: "
                          f"{ds.attrs.get('steps_seen', 0)}); plot after its first recorded "
                          f"update (every `every` steps, from step 0)")


def _common_prefix(names: Sequence[str]) -> str:
    """The '/'-joined path prefix shared by all ``names`` (never a whole name), with its
    trailing '/'; "" if none."""
    parts = [n.split("/") for n in names]
    prefix = os.path.commonprefix(parts) if len(names) > 1 else []
    if prefix and len(prefix) == min(len(p) for p in parts):
        prefix = prefix[:-1]  # never strip a whole name
    return "/".join(prefix) + "/" if prefix else ""


def _panel(fig, ax, values, x_edges, y_edges, cmap, label, title):
    """One heatmap: log10 of the finite cells with a colour bar, the non-finite cells
    hatched on top, their counts in a legend below the axis."""
    values = np.asarray(values, float)  # (leaf, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.log10(values)
    finite = np.isfinite(logv)
    vmin, vmax = (float(logv[finite].min()), float(logv[finite].max())) if finite.any() \
        else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(logv), cmap=cmap,
                         vmin=vmin, vmax=vmax, shading="flat")
    # the colour bar in an inset beside its panel: a bar the layout places (``ax=``) goes
    # past the panel's legend below, wider than the panel, far from the cells it explains
    cax = ax.inset_axes([1.025, 0.0, 0.035, 1.0])
    fig.colorbar(mesh, cax=cax, label=label + ("" if finite.any() else " (no finite cells)"))
    handles = _hatch_nonfinite(ax, values, x_edges, y_edges)
    _legend_below(fig, ax, handles)
    ax.set_title(title)
    ax.set_xlabel("step")


def _hatch_nonfinite(ax, values, x_edges, y_edges) -> list:
    """NaN, +inf and zero cells drawn as hatched rectangles; one legend patch per
    category, with its cell count."""
    # on use: importing gradstudy must not import matplotlib
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    categories = (np.isnan(values), np.isposinf(values), values == 0)
    handles = []
    for (name, color, hatch), mask in zip(_NONFINITE, categories):
        cells = np.argwhere(mask)
        rects = [Rectangle((x_edges[j], y_edges[i]), x_edges[j + 1] - x_edges[j],
                           y_edges[i + 1] - y_edges[i]) for i, j in cells]
        if rects:
            ax.add_collection(PatchCollection(rects, facecolor=color, edgecolor="0.15",
                                              hatch=hatch, linewidth=0.0))
        handles.append(Patch(facecolor=color, edgecolor="0.15", hatch=hatch,
                             label=f"{name}: {len(rects)} cell{'' if len(rects) == 1 else 's'}"))
    return handles


def _legend_below(fig, ax, handles) -> None:
    """The legend below the step label, a fixed distance in points whatever the figure
    height."""
    from matplotlib.transforms import offset_copy  # on use: see _hatch_nonfinite

    below = offset_copy(ax.transAxes, fig=fig, y=-26, units="points")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=below, ncol=3, frameon=False, handlelength=1.6,
              columnspacing=1.0, borderaxespad=0.0)


def _save(fig, path: str | os.PathLike) -> None:
    """``<path without a .png/.pdf suffix>.png`` and ``.pdf``, each written to a temporary
    file and renamed (folders created; no software or date metadata)."""
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    for suffix, meta in ((".png", {"Software": None}), (".pdf", {"CreationDate": None})):
        target = base.with_name(base.name + suffix)
        tmp = target.with_name(f"{target.stem}.tmp{os.getpid()}{suffix}")
        fig.savefig(tmp, metadata=meta)
        tmp.replace(target)
