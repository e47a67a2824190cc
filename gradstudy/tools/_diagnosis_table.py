"""The text of a diagnosis: per-module medians, ratios to the last module and flags
(:func:`diagnosis_summary`), and the table ``gradstudy diagnose`` prints
(:func:`diagnosis_table`), with lines for the signal through time and for modules applied
several times per forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from gradstudy._numerics import quiet
from gradstudy.errors import ConfigError
from gradstudy.tools._diagnose import (
    DEAD_FRACTION,
    EXPLODING_RATIO,
    VANISHING_RATIO,
    outermost_recurrent,
    variant_label,
)


def diagnosis_summary(ds) -> list[dict]:
    """Per module (forward order): medians over seeds, ratios to the last module, flags."""
    if "variant" in ds.dims:
        raise ConfigError("ds: has a variant dim; summarise one variant, ds.isel(variant=k)")
    with quiet():  # all-NaN columns (modules not reached) are NaN, flagged below
        return _summary(ds)


def _summary(ds) -> list[dict]:
    med = {name: np.nanmedian(ds[name].values, axis=0) if np.isfinite(ds[name].values).any()
           else np.full(ds.sizes["module"], np.nan)
           for name in ("backprop_norm", "param_grad_norm", "out_rms", "out_zero_frac")}
    last_bp = last_finite(med["backprop_norm"])
    last_w = last_finite(med["param_grad_norm"])
    rows = []
    for i, label in enumerate(ds.module.values):
        bp, w = med["backprop_norm"][i], med["param_grad_norm"][i]
        r_bp, r_w = bp / last_bp, w / last_w
        flags = _flags(bp, r_bp, r_w, med["out_zero_frac"][i], ds.calls.values[:, i])
        rows.append({"module": str(label), "params": int(ds.param_count.values[i]),
                     "backprop_norm": bp, "backprop_ratio": r_bp, "param_grad_norm": w,
                     "param_grad_ratio": r_w, "out_rms": med["out_rms"][i],
                     "zero_frac": med["out_zero_frac"][i], "flags": flags})
    return rows


def _flags(bp, r_bp, r_w, zero_frac, calls) -> list[str]:
    """A module's flags from its median ‖∂L/∂output‖ ``bp``, the two ratios to the last
    module, its median zero fraction and its per-seed call counts."""
    flags = []
    if not math.isfinite(bp):
        flags.append("not reached" if np.all(calls == 0) else "non-finite")
    if r_bp < VANISHING_RATIO or r_w < VANISHING_RATIO:
        flags.append("vanishing")
    if r_bp > EXPLODING_RATIO or r_w > EXPLODING_RATIO:
        flags.append("exploding")
    if zero_frac > DEAD_FRACTION:
        flags.append("dead")
    return flags


def last_finite(values) -> float:
    """The last finite positive value (the module nearest the loss that has one), or NaN:
    the reference of every ratio and flag."""
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
    lines.extend(_row_line(r, width) for r in rows)
    lines.extend(_through_time_lines(ds))
    lines.extend(_repeated_call_lines(ds))
    with quiet():  # every seed's loss NaN: the median is NaN, said in the note below
        loss = np.nanmedian(ds.loss.values)
    lines.append(f"medians over {ds.sizes['seed']} seeds; ratios to the last module; flags: "
                 f"{ds.attrs['thresholds']}; loss {loss:.4g}")
    lines.extend(_nonfinite_note(ds))
    return "\n".join(lines)


def _nonfinite_note(ds) -> list[str]:
    """One line when no measured gradient norm is finite: the values are recorded (NaN is
    data), and the line says why, where the Dataset knows."""
    norms = np.concatenate([ds.backprop_norm.values.ravel(), ds.param_grad_norm.values.ravel()])
    if np.isfinite(norms).any():
        return []
    bad = int(ds.attrs.get("batch_nonfinite", 0))
    if bad:
        why = f"the batch holds {bad} non-finite entries (NaN/inf)"
    elif not np.isfinite(ds.loss.values).any():
        why = ("the loss is non-finite for every seed (the forward pass overflows or the "
               "loss is undefined)")
    else:
        why = "the loss is finite but the backward pass overflows"
    return [f"note: every gradient norm is non-finite (recorded as NaN/inf): {why}"]


def _row_line(r: dict, width: int) -> str:
    """One module's line of the table (a row of :func:`diagnosis_summary`)."""
    return (f"{r['module']:{width}}  {r['params']:9d}  {_number(r['backprop_norm'])} "
            f"{_ratio(r['backprop_ratio'])}  {_number(r['param_grad_norm'])} "
            f"{_ratio(r['param_grad_ratio'])}  {_number(r['out_rms'])[1:]}  "
            f"{r['zero_frac']:5.2f}  {', '.join(r['flags'])}")


def _number(x) -> str:
    return f"{x:10.3e}" if math.isfinite(x) else f"{'nan':>10}"


def _ratio(x) -> str:
    return f"{x:8.2g}" if math.isfinite(x) else f"{'-':>8}"


def _through_time_lines(ds) -> list[str]:
    """Per recurrent cell: its median ‖∂L/∂output_t‖ at the first, middle and last step,
    and the first/last ratio with its flag."""
    lines = []
    for name in outermost_recurrent(ds):
        with quiet():
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
            "per-step values need the loop written as nn.RNN (nnx.RNN)"]
