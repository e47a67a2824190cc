"""``diagnose``: per-module gradient flow of a user's Flax model, over seeds, as a Dataset.

One call (:func:`diagnose`) or one command (``gradstudy diagnose package.module:factory``)
gives, for every probed submodule in forward order, the back-propagated signal ‖∂L/∂output‖,
the gradient norm of its parameters ‖∂L/∂θ‖, its forward rms and fraction of exact zeros,
for several initialisations (seeds: a ``vmap`` axis), with flags for vanishing, exploding
and dead units, a table, a figure and a netCDF file.

Both norms are needed: in a deep tanh network at small init the weight gradients stay
nearly flat across layers while ‖∂L/∂output‖ falls by orders of magnitude (Glorot & Bengio
2010), so flags on ‖∂L/∂W‖ alone miss vanishing.

References:
    X. Glorot and Y. Bengio. Understanding the difficulty of training deep feedforward
    neural networks. AISTATS 2010.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy._seeds import seed_keys
from gradstudy.errors import ConfigError
from gradstudy.tools._probe import make_probes, path_label, probe

# Flag thresholds, relative to the last probed module (the one nearest the loss).
VANISHING_RATIO = 1e-3  # ‖∂L/∂output‖ (or ‖∂L/∂θ‖) below 1e-3 of the last module's
EXPLODING_RATIO = 1e3  # above 1e3 of the last module's
DEAD_FRACTION = 0.5  # more than half of the outputs exactly 0 (e.g. dead ReLUs)
MODULE_VARS = ("backprop_norm", "param_grad_norm", "out_mean", "out_q", "out_zero_frac",
               "calls")


def diagnose(module, batch, loss_fn: Callable[[Any, Any], jax.Array], *, variables=None,
             init_fn: Callable[..., Any] | None = None, seeds: int = 8,
             base_seed: int = 0, variants: Mapping[str, Sequence[float]] | None = None,
             select=None, call_args=None, seed_batch: int | None = None, **kwargs):
    """Gradient flow through ``module`` for ``seeds`` initialisations (or given variables).

    Args:
        module: a Flax Linen module.
        batch: an example batch (array or pytree); ``call_args(batch)`` gives the call's
            positional arguments (default ``(batch,)``).
        loss_fn: ``loss_fn(outputs, batch) -> scalar``.
        variables: fixed variables (one "seed"); else ``init_fn(key)`` or
            ``module.init(key, *call_args(batch))`` for each seed.
        init_fn: ``key -> variables``; with ``variants``, ``init_fn(key, **scalars)``.
        seeds: number of initialisations, a ``vmap`` axis (ignored with ``variables``).
        base_seed: the seeds' keys are ``fold_in(PRNGKey(base_seed), s)``.
        variants: points that differ only in scalars, e.g. ``{"sigma_w2": [0.5, 1, 2]}``
            (every list one value per variant, all of one length): each variant's scalars
            are passed, traced, to ``init_fn``, so all variants × seeds run in one compiled
            program (the same seeds for every variant: common random numbers).  Adds a
            leading ``variant`` dim with the scalars as its coordinates.
        seed_batch: networks evaluated at once (``lax.map`` over batches, ``vmap`` within
            one); default ``seeds``, except 1 for models with an ``nn.RNN`` on CPU (an
            intermittent XLA deadlock, see the code).
        select, **kwargs: as :func:`gradstudy.probe.probe`.

    Returns:
        xarray Dataset with dims ``seed`` and ``module`` (one entry per probed module and
        layer of a stacked module, in forward order, coordinates ``path``, ``layer`` and
        ``param_count``) and ``param`` (one entry per parameter leaf and layer): variables
        ``backprop_norm``, ``param_grad_norm``, ``out_rms``, ``out_mean``, ``out_q``,
        ``out_zero_frac``, ``calls``, ``grad_norm`` (per parameter leaf) and ``loss``.
    """
    import xarray as xr

    args = (batch,) if call_args is None else tuple(call_args(batch))
    scalars = _check_variants(variants, variables, init_fn)
    n_variants = 1 if scalars is None else len(next(iter(scalars.values())))
    if variables is None:
        seeds = _check_seeds(seeds)
        if scalars is not None:
            init = init_fn
        else:
            init = init_fn if init_fn is not None else (lambda key: module.init(key, *args,
                                                                                **kwargs))
        keys = seed_keys(base_seed, seeds)
    else:
        seeds, keys = 1, None
    if variables is not None:
        example = variables
    elif scalars is None:
        example = jax.eval_shape(init, keys[0])
    else:
        example = jax.eval_shape(lambda key: init(key, **{k: v[0] for k, v in scalars.items()}),
                                 keys[0])
    probes = make_probes(module, example, *args, select=select, **kwargs)
    if not probes.order:
        raise ConfigError("select: no submodule of the model was selected for probing")

    def one(variables):
        out = probe(module, variables, batch, loss_fn, select=select, probes=probes,
                    call_args=call_args, **kwargs)
        return {"loss": out["loss"], "modules": out["modules"], "params": out["params"]}

    if variables is None:
        if seed_batch is None:
            # XLA's CPU runtime (jax 0.10.2) intermittently deadlocks on a vmapped nn.RNN
            # program (measured: 3 of 6 runs of examples.models:lstm_classifier with 8
            # vmapped seeds hung, and 1 of 6 of the same model's plain jax.grad without
            # gradstudy; with lax.map over seeds, 0 of 16 and 0 of 6), so seeds of
            # recurrent models run one at a time there
            seed_batch = 1 if probes.recurrent and jax.default_backend() == "cpu" else seeds
        seed_batch = _check_seeds(seed_batch, "seed_batch")
        n = n_variants * seeds
        if scalars is None:
            program = jax.jit(lambda ks: jax.lax.map(lambda key: one(init(key)), ks,
                                                     batch_size=min(seed_batch, n)))
            result = program(keys)
        else:
            # network v·S + s is variant v with seed s; the scalars are traced: one program
            flat = {k: jnp.repeat(v, seeds) for k, v in scalars.items()}

            def one_network(args):
                key, values = args
                return one(init(key, **values))

            program = jax.jit(lambda ks, sc: jax.lax.map(one_network, (ks, sc),
                                                         batch_size=min(seed_batch, n)))
            result = program(jnp.tile(keys, (n_variants,) + (1,) * (keys.ndim - 1)), flat)
        seeds = n  # networks, split into (variant, seed) below
    else:
        result = jax.tree.map(lambda a: a[None], jax.jit(one)(variables))
    result = jax.device_get(result)

    order = [path_label(p) for p, _ in probes.order]
    labels, paths, layers, columns = [], [], [], {name: [] for name in MODULE_VARS}
    counts = []
    for path in order:
        entry = result["modules"][path]
        n_layers = int(np.prod(entry["calls"].shape[1:]))
        for layer in range(n_layers):
            stacked = entry["calls"].ndim > 1
            labels.append(f"{path}[{layer}]" if stacked else path)
            paths.append(path)
            layers.append(layer if stacked else -1)
            counts.append(int(np.asarray(entry["param_count"]).reshape(seeds, -1)[0, layer]))
            for name in MODULE_VARS:
                columns[name].append(np.asarray(entry[name]).reshape(seeds, -1)[:, layer])
    data = {name: (("seed", "module"), np.stack(columns[name], axis=1)) for name in MODULE_VARS}
    with np.errstate(invalid="ignore"):
        data["out_rms"] = (("seed", "module"), np.sqrt(np.stack(columns["out_q"], axis=1)))
    param_labels, param_values = [], []
    for key, value in result["params"].items():
        value = np.asarray(value).reshape(seeds, -1)
        for layer in range(value.shape[1]):
            param_labels.append(f"{key}[{layer}]" if value.shape[1] > 1 else key)
            param_values.append(value[:, layer])
    data["grad_norm"] = (("seed", "param"), np.stack(param_values, axis=1))
    data["loss"] = (("seed",), np.asarray(result["loss"]))
    coords = {"seed": np.arange(seeds), "module": labels, "path": ("module", paths),
              "layer": ("module", layers), "param_count": ("module", counts),
              "param": param_labels}
    # modules inside an nn.RNN: every time step (the BPTT signal ‖∂L/∂output_t‖)
    recurrent = [p for p in order if "per_step" in result["modules"][p]]
    if recurrent:
        steps = {p: result["modules"][p]["per_step"] for p in recurrent}
        n_steps = max(np.asarray(v["calls"]).shape[-1] for v in steps.values())
        for name in ("backprop_norm", "out_q", "calls"):
            block = np.full((seeds, len(recurrent), n_steps), np.nan)
            for j, p in enumerate(recurrent):
                value = np.asarray(steps[p][name]).reshape(seeds, -1)
                block[:, j, :value.shape[1]] = value
            data[f"{name}_per_step"] = (("seed", "recurrent_module", "time"), block)
        coords.update({"recurrent_module": recurrent, "time": np.arange(n_steps)})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({
        "model": type(module).__name__,
        "description": "gradient flow per probed submodule (gradstudy.diagnose); NaN where "
                       "a module's output does not reach the loss (calls = 0); a module "
                       "applied at several time steps (calls > 1) has per-call averages",
        "thresholds": f"vanishing < {VANISHING_RATIO:g}, exploding > {EXPLODING_RATIO:g} "
                      f"(ratio to the last module); dead: zero fraction > {DEAD_FRACTION:g}",
    })
    if scalars is not None:
        ds = _split_variants(ds, n_variants, {k: np.asarray(v) for k, v in scalars.items()})
    for name in ("backprop_norm", "param_grad_norm"):
        ds[name].attrs["long_name"] = {"backprop_norm": "‖∂L/∂output‖",
                                       "param_grad_norm": "‖∂L/∂θ‖ (parameters below)"}[name]
    return ds


def _check_variants(variants, variables, init_fn) -> dict[str, jax.Array] | None:
    """The variants' scalars as float arrays of one length, or None; ConfigError else."""
    if variants is None:
        return None
    if variables is not None or init_fn is None:
        raise ConfigError("variants: need init_fn(key, **scalars) and no fixed variables "
                          "(the scalars enter through the initialisation)")
    if not isinstance(variants, Mapping) or not variants:
        raise ConfigError(f"variants: must be a non-empty dict name -> list of numbers, "
                          f"got {type(variants).__name__}")
    out, length = {}, None
    for name, values in variants.items():
        if not isinstance(name, str) or not name.isidentifier() or name in ("seed", "variant"):
            raise ConfigError(f"variants: names must be identifiers other than seed and "
                              f"variant, got {name!r}")
        try:
            array = np.asarray(values, float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim != 1 or not 1 <= array.size <= 4096 \
                or not np.all(np.isfinite(array)):
            raise ConfigError(f"variants: {name} must be a list of 1 to 4096 finite numbers, "
                              f"got {values!r}"[:200])
        if length is not None and array.size != length:
            raise ConfigError(f"variants: every list needs one value per variant; "
                              f"{next(iter(out))} has {length}, {name} has {array.size}")
        length = array.size
        out[name] = jnp.asarray(array)
    return out


def _split_variants(ds, n_variants: int, scalars: dict[str, np.ndarray]):
    """The flat network axis ``seed`` (variant-major) as dims (variant, seed)."""
    import xarray as xr

    seeds = ds.sizes["seed"] // n_variants
    data = {}
    for name, var in ds.data_vars.items():
        if "seed" in var.dims:
            values = var.values.reshape((n_variants, seeds) + var.shape[1:])
            data[name] = (("variant",) + var.dims, values, var.attrs)
        else:
            data[name] = var
    coords = {k: v for k, v in ds.coords.items() if "seed" not in v.dims}
    coords.update({"variant": np.arange(n_variants), "seed": np.arange(seeds),
                   **{k: ("variant", v) for k, v in scalars.items()}})
    out = xr.Dataset(data, coords, ds.attrs)
    out.attrs["variants"] = ", ".join(scalars)
    return out


def variant_label(ds, k: int) -> str:
    """``"sigma_w2=0.5"`` for variant ``k`` of a Dataset with a ``variant`` dim."""
    names = [n.strip() for n in ds.attrs.get("variants", "").split(",") if n.strip()]
    return ", ".join(f"{n}={float(ds[n].values[k]):g}" for n in names)


def _check_seeds(seeds, name: str = "seeds") -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) \
            or not 1 <= seeds <= 4096:
        raise ConfigError(f"{name}: must be an integer in [1, 4096], got {seeds!r}")
    return int(seeds)


def diagnosis_summary(ds) -> list[dict]:
    """Per module (forward order): medians over seeds, ratios to the last module, flags."""
    if "variant" in ds.dims:
        raise ConfigError("ds: has a variant dim; summarise one variant, ds.isel(variant=k)")
    with _quiet():  # all-NaN columns (modules not reached) are NaN, flagged below
        return _summary(ds)


def _summary(ds) -> list[dict]:
    med = {name: np.nanmedian(ds[name].values, axis=0) if np.isfinite(ds[name].values).any()
           else np.full(ds.sizes["module"], np.nan)
           for name in ("backprop_norm", "param_grad_norm", "out_rms", "out_zero_frac")}
    last_bp = _last_finite(med["backprop_norm"])
    last_w = _last_finite(med["param_grad_norm"])
    rows = []
    for i, label in enumerate(ds.module.values):
        bp, w = med["backprop_norm"][i], med["param_grad_norm"][i]
        r_bp, r_w = bp / last_bp, w / last_w
        flags = []
        if not math.isfinite(bp):
            flags.append("not reached" if np.all(ds.calls.values[:, i] == 0) else "non-finite")
        if r_bp < VANISHING_RATIO or r_w < VANISHING_RATIO:
            flags.append("vanishing")
        if r_bp > EXPLODING_RATIO or r_w > EXPLODING_RATIO:
            flags.append("exploding")
        if med["out_zero_frac"][i] > DEAD_FRACTION:
            flags.append("dead")
        rows.append({"module": str(label), "params": int(ds.param_count.values[i]),
                     "backprop_norm": bp, "backprop_ratio": r_bp, "param_grad_norm": w,
                     "param_grad_ratio": r_w, "out_rms": med["out_rms"][i],
                     "zero_frac": med["out_zero_frac"][i], "flags": flags})
    return rows


def _last_finite(values) -> float:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return finite[-1] if finite else float("nan")


def diagnosis_table(ds) -> str:
    """The forward-order table printed by ``gradstudy diagnose`` (one per variant)."""
    if "variant" in ds.dims:
        return "\n\n".join(f"variant {k}: {variant_label(ds, k)}\n"
                             + diagnosis_table(ds.isel(variant=k))
                             for k in range(ds.sizes["variant"]))
    rows = diagnosis_summary(ds)
    width = max([len(r["module"]) for r in rows] + [6])
    head = (f"{'module':{width}}  {'params':>9}  {'‖∂L/∂out‖':>10} {'ratio':>8}  "
            f"{'‖∂L/∂θ‖':>10} {'ratio':>8}  {'rms out':>9}  {'zeros':>5}  flags")
    lines = [head, "-" * len(head)]

    def num(x):
        return f"{x:10.3e}" if math.isfinite(x) else f"{'nan':>10}"

    def ratio(x):
        return f"{x:8.2g}" if math.isfinite(x) else f"{'-':>8}"

    for r in rows:
        lines.append(f"{r['module']:{width}}  {r['params']:9d}  {num(r['backprop_norm'])} "
                     f"{ratio(r['backprop_ratio'])}  {num(r['param_grad_norm'])} "
                     f"{ratio(r['param_grad_ratio'])}  {num(r['out_rms'])[1:]}  "
                     f"{r['zero_frac']:5.2f}  {', '.join(r['flags'])}")
    for line in _through_time_lines(ds):
        lines.append(line)
    lines.extend(_repeated_call_lines(ds))
    lines.append(f"medians over {ds.sizes['seed']} seeds; ratios to the last module; flags: "
                 f"{ds.attrs['thresholds']}; loss {np.nanmedian(ds.loss.values):.4g}")
    return "\n".join(lines)


def outermost_recurrent(ds) -> list[str]:
    """The recurrent modules (inside an nn.RNN) that are not inside another of them: the
    cells, whose ‖∂L/∂output_t‖ is the back-propagated signal through time."""
    if "recurrent_module" not in ds.coords:
        return []
    names = [str(m) for m in ds.recurrent_module.values]
    return [m for m in names if not any(m.startswith(o + "/") for o in names if o != m)]


def _through_time_lines(ds) -> list[str]:
    lines = []
    for name in outermost_recurrent(ds):
        with _quiet():
            med = np.nanmedian(ds.backprop_norm_per_step.sel(recurrent_module=name).values,
                               axis=0)
        steps = [0, len(med) // 2, len(med) - 1]
        ratio = med[0] / med[-1]
        flag = (" vanishing" if ratio < VANISHING_RATIO else
                " exploding" if ratio > EXPLODING_RATIO else "")
        lines.append(f"through time, {name} ‖∂L/∂out_t‖: " + ", ".join(
            f"t={t}: {med[t]:.3e}" for t in steps) + f"; first/last {ratio:.2g}{flag}")
    return lines


def _repeated_call_lines(ds) -> list[str]:
    """Modules applied several times per forward pass with no per-step record (e.g. a cell
    in a user-written ``nn.scan`` over time whose parameters are broadcast): their row holds
    per-call averages, which the table must say."""
    stepped = set(outermost_recurrent(ds))
    if "recurrent_module" in ds.coords:
        stepped |= {str(m) for m in ds.recurrent_module.values}
    calls = np.nanmax(ds.calls.values, axis=0)
    repeated = [(str(m), int(c)) for m, p, c in zip(ds.module.values, ds.path.values, calls)
                if c > 1 and str(p) not in stepped]
    if not repeated:
        return []
    names = ", ".join(f"{m} ({c}×)" for m, c in repeated[:6]) + (" …" if len(repeated) > 6
                                                                  else "")
    return [f"applied several times per forward pass, rows are per-call averages: {names}; "
            "per-step values need the loop written as nn.RNN"]


def plot_diagnosis(ds, path: Path | str | None = None, title: str | None = None):
    """Per-module ‖∂L/∂output‖ and ‖∂L/∂θ‖: median and 10–90 % band over seeds, log axis.

    Modules whose values are not finite are marked (✕) at the bottom of the axis instead
    of being left out.  With a ``variant`` dim, every variant is drawn in its own colour
    (‖∂L/∂output‖ solid with its band, ‖∂L/∂θ‖ dashed).
    """
    from gradstudy import plotting  # on use: importing gradstudy must not import matplotlib

    variants = ds.sizes.get("variant", 0)
    first = ds.isel(variant=0) if variants else ds
    cells = outermost_recurrent(first)
    with plotting.style():
        if cells:  # a second panel: the signal through time
            fig, (ax, ax_t) = plotting.figure("double", 3.2, ncols=2,
                                              gridspec_kw={"width_ratios": [2, 1]})
        else:
            fig, ax = plotting.figure("double", 3.2)
        if variants:
            import matplotlib

            cmap = matplotlib.colormaps["viridis"]
            colours = [cmap(0.85 * k / max(variants - 1, 1)) for k in range(variants)]
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
        else:
            for name, colour, marker in (("backprop_norm", "C0", "o"),
                                         ("param_grad_norm", "C1", "s")):
                _draw_norms(ax, ds, name, colour, marker, "-",
                            ds[name].attrs["long_name"] + " (median)",
                            band=True, band_label=name == "backprop_norm")
            if cells:
                _plot_through_time(ax_t, ds, cells)
            with _quiet():
                last = _last_finite(np.nanmedian(ds.backprop_norm.values, axis=0))
            if np.isfinite(last):
                ax.axhline(VANISHING_RATIO * last, color="0.4", ls=":", lw=0.9,
                           label=f"vanishing flag: {VANISHING_RATIO:g} × last module's")
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
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo / 10 ** (0.45 * np.log10(hi / lo)), hi)  # room for the legend below
        what = f"{ds.sizes['seed']} seeds" + (f" × {variants} variants" if variants else "")
        ax.set_title(title or f"{ds.attrs.get('model', 'model')}: gradient flow per module "
                              f"(forward order, {what})", pad=12)
        ax.legend(loc="lower left", fontsize=6, ncol=2)
        if path is not None:
            plotting.save_figure(fig, Path(path).parent, Path(path).stem)
    return fig


def _draw_norms(ax, ds, name, colour, marker, style, label, band, band_label=True):
    """Median over seeds (and the 10–90 % band) of ``ds[name]`` per module; modules whose
    median is not finite marked ✕ at the bottom."""
    x = np.arange(ds.sizes["module"])
    values = ds[name].values
    finite = np.isfinite(values) & (values > 0)
    with np.errstate(invalid="ignore"), _quiet():
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
    t = ds.time.values
    for k, name in enumerate(cells):
        values = ds.backprop_norm_per_step.sel(recurrent_module=name).values
        with _quiet():
            med = np.nanmedian(values, axis=0)
            lo, hi = (np.nanpercentile(values, q, axis=0) for q in (10, 90))
        c = colour or f"C{k + 2}"
        ax.plot(t, med, color=c, lw=1.2, label=f"{label or name} (median)")
        ax.fill_between(t, lo, hi, color=c, alpha=0.25, lw=0)
        bad = ~np.isfinite(med)
        if bad.any():
            ax.plot(t[bad], np.full(bad.sum(), np.nanmin(med[~bad]) if (~bad).any() else 1.0),
                    "x", color=c, label="non-finite")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(r"$\|\partial L/\partial \mathrm{output}_t\|$")
    ax.set_title("through time (10–90 % of seeds)", pad=12)
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


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def load_factory(spec: str):
    """``"package.module:factory"`` (or ``"path/to/file.py:factory"``) → the callable.

    Raises:
        ConfigError: one line naming what could not be imported or found.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"factory: expected 'package.module:function', got {spec!r}")
    target, name = spec.split(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no file {target}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(mod)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            mod = importlib.import_module(target)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- any import failure: one line
        raise ConfigError(f"factory: cannot import {target!r} "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ConfigError(f"factory: {target!r} has no callable {name!r}")
    return fn


def call_factory(fn):
    """Call a factory: ``(module, batch, loss_fn)`` or ``(module, batch, loss_fn, options)``
    with options for :func:`diagnose` (e.g. ``{"call_args": ..., "train": False}``)."""
    import flax.linen as nn

    try:
        made = fn()
    except Exception as e:  # noqa: BLE001 -- the user's code: one line
        raise ConfigError(f"factory: {getattr(fn, '__name__', fn)!s}() raised "
                          f"{type(e).__name__}: {' '.join(str(e).split())[:160]}") from None
    if not (isinstance(made, tuple) and len(made) in (3, 4)):
        raise ConfigError("factory: must return (module, batch, loss_fn) or "
                          "(module, batch, loss_fn, options)")
    module, batch, loss_fn = made[:3]
    options = dict(made[3]) if len(made) == 4 else {}
    if not isinstance(module, nn.Module):
        raise ConfigError(f"factory: first item must be a flax.linen.Module, got "
                          f"{type(module).__name__}")
    if not callable(loss_fn):
        raise ConfigError("factory: third item (loss_fn) must be callable")
    return module, batch, loss_fn, options


