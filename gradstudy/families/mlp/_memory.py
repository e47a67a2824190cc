"""Memory of one MLP in a sweep program, estimated from its shapes (bytes).

The estimate counts the parameters (sampled at unit gain, then scaled: two copies plus one
in flight), the activations the backward pass keeps for every layer, and the cotangents of
all requested depths; the constants were fitted to XLA's own ``compiled.memory_analysis()``
on CPU and err on the high side (a test checks that the estimate is never below XLA's
figure nor above twice it).  The budget and the chunking are the engine's
(:func:`gradstudy.engine.plan_networks`).
"""

from __future__ import annotations

import numpy as np


def param_count(spec, depth: int) -> int:
    """Parameters of ``MLP(spec)`` built ``depth`` deep (norm scale/offset included)."""
    w, n_in, n_out = spec.width, spec.input_dim, spec.out_dim
    norm = 2 * w if spec.norm != "none" else 0
    return (n_in * w + w + norm) + (depth - 1) * (w * w + w + norm) + w * n_out + n_out


def network_bytes(spec, depths, batch: int, keep_backprop: bool = False) -> int:
    """Estimated working memory of one network's ``init_and_probe`` (bytes)."""
    itemsize = np.dtype(spec.dtype).itemsize
    depth, n = max(depths), len(depths)
    activations = depth * batch * spec.width
    grams = depth * batch * batch
    words = 2.5 * param_count(spec, depth) + (4.0 + 0.5 * n) * activations + 2.0 * grams
    return int(itemsize * words) + network_output_bytes(spec, depths, batch, keep_backprop)


def network_output_bytes(spec, depths, batch: int, keep_backprop: bool = False) -> int:
    """Bytes of one network's recorded results (values and status codes)."""
    itemsize = np.dtype(spec.dtype).itemsize
    depth, n = max(depths), len(depths)
    values = 3 * n * depth + 3 * n + 2 * depth
    if keep_backprop:
        values += n * depth * batch * spec.width
    return (itemsize + 1) * values
