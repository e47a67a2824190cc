"""Why a recorded value is not a normal number: one small integer per value.

A gradient norm of exactly 0 can mean that the gradient underflowed (the forward pass was
finite, the back-propagated signal fell below the smallest float); inf/NaN can mean that the
backward pass overflowed, or that the forward pass itself overflowed, in which case no
gradient of that network means anything.  ReLU hides the difference: its derivative at an
inf/NaN input is 0, which turns a NaN cotangent into an exact 0.  So every measured array
comes with a status array of the codes below (stored in the netCDF next to the variable,
with CF ``flag_values``/``flag_meanings`` attributes), and values of a network whose
forward pass is non-finite are recorded as NaN, never as a number.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

FINITE = 0
UNDERFLOW = 1  # exactly 0 with a finite forward pass
OVERFLOW = 2  # inf/NaN with a finite forward pass (the backward pass or the statistic overflowed)
FORWARD_NONFINITE = 3  # this network's forward pass has inf/NaN: the value is NaN
ABSENT = 4  # the layer is not part of this depth-d network: the value is NaN
NO_PATH = 5  # exactly 0 by structure: φ' = 0 at every unit of a layer above (dead ReLUs)

CODES = {
    FINITE: "finite",
    UNDERFLOW: "underflow",
    OVERFLOW: "overflow",
    FORWARD_NONFINITE: "forward_nonfinite",
    ABSENT: "absent",
    NO_PATH: "no_path",
}
MEANINGS = {
    FINITE: "finite, non-zero value",
    UNDERFLOW: "exactly 0 with a finite forward pass (underflow below the smallest float)",
    OVERFLOW: "inf or NaN with a finite forward pass (overflow)",
    FORWARD_NONFINITE: "the network's forward pass is not finite (overflow): value set to NaN",
    ABSENT: "layer not part of this depth-d network: NaN by construction",
    NO_PATH: "exactly 0 by structure: phi' = 0 at every unit and example of a layer above "
             "(e.g. all ReLUs dead), or every input of this layer is 0",
}


def classify(values, forward_finite, present=True, structural_zero=False):
    """Status codes of ``values`` (works on jax and numpy arrays; broadcasts).

    Args:
        values: the recorded numbers.
        forward_finite: whether the forward pass that produced each value was finite.
        present: False where the value does not exist by construction (layer > depth).
        structural_zero: True where the value is exactly 0 by the network's structure
            (no back-propagation path), so that a 0 there is not called underflow.
    """
    xp = jnp if isinstance(values, jnp.ndarray) and not isinstance(values, np.ndarray) else np
    zero = xp.where(structural_zero, NO_PATH, UNDERFLOW)
    code = xp.where(values == 0, zero, FINITE)
    code = xp.where(xp.isfinite(values), code, OVERFLOW)
    code = xp.where(forward_finite, code, FORWARD_NONFINITE)
    code = xp.where(present, code, ABSENT)
    return code.astype(xp.int8)


def mask_forward(values, forward_finite):
    """NaN where the forward pass was not finite (a gradient of such a network is meaningless,
    whatever number the backward pass produced)."""
    return jnp.where(forward_finite, values, jnp.nan)


def cf_attributes() -> dict:
    """CF-convention attributes describing the codes (for the netCDF status variables)."""
    return {"flag_values": np.array(sorted(CODES), np.int8),
            "flag_meanings": " ".join(CODES[k] for k in sorted(CODES)),
            "description": "; ".join(f"{k} {CODES[k]}: {MEANINGS[k]}" for k in sorted(CODES))}


def counts(status) -> dict[str, int]:
    """How many values have each non-finite reason (FINITE and ABSENT left out)."""
    status = np.asarray(status)
    return {CODES[k]: int(np.sum(status == k))
            for k in (UNDERFLOW, OVERFLOW, FORWARD_NONFINITE, NO_PATH)
            if np.any(status == k)}

__all__ = [
    "ABSENT", "cf_attributes", "classify", "CODES", "counts", "FINITE", "FORWARD_NONFINITE",
    "mask_forward", "MEANINGS", "NO_PATH", "OVERFLOW", "UNDERFLOW",
]
