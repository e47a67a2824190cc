"""Per-example log squared norms of the forward signal and of the back-propagated gradient,
layer by layer, for thousands of MLPs at initialisation: the finite-width statistics of
Hanin (2018) and Hanin & Nica (2019), which a sweep does not record (it keeps the batch
second moment of the pre-activations h_l, not the norm of the post-activations x_l = φ(h_l)
next to the input's, and its backward norms sum over the batch).

The networks, inputs and targets are the sweep's (drawn by the family's
:func:`gradstudy.families.mlp.sample_network` from ``seed_keys(base_seed, seeds)``), so the
backward norms equal a batch-1 sweep's ``backprop_norm`` of the same seeds.  One jitted
program: the seeds are a vmapped axis, run a memory-bounded chunk at a time by
``jax.lax.map``.  Log norms are taken of max|·|-scaled vectors (no overflow or underflow of
the squares); a zero vector (a dead ReLU layer) gives −inf and an overflowed one +inf or
NaN: recorded, never raised.

References:
    B. Hanin (2018), Which neural net architectures give rise to exploding and vanishing
    gradients? NeurIPS.
    B. Hanin, M. Nica (2020), Products of many large random matrices and gradients in deep
    neural networks. Commun. Math. Phys. 376.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from gradstudy._seeds import seed_keys
from gradstudy._validate import check_int
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._family import MLP_FAMILY, sample_network
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._losses import LOSS_FUNCTIONS, PROBE_LOSSES
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

SIGNAL_NORMS_VERSION = 1  # bumped whenever what signal_log_norms computes changes
CHUNK_BYTES = 64 * 2**20  # working set of one vmapped chunk of networks
MAX_SIGNAL_SEEDS = 10**6


def log_sq_norm(v: jax.Array) -> jax.Array:
    """log ‖v‖² over the last axis, from max|v|-scaled entries: −inf for a zero vector,
    +inf for an infinite entry, NaN for a NaN one."""
    scale = jnp.max(jnp.abs(v), axis=-1)
    safe = jnp.where((scale > 0) & jnp.isfinite(scale), scale, 1.0)
    value = 2 * jnp.log(safe) + jnp.log(jnp.sum((v / safe[..., None]) ** 2, axis=-1))
    value = jnp.where(scale == 0, -jnp.inf, value)
    return jnp.where(jnp.isinf(scale), jnp.inf, value)


def _check_spec(spec) -> MLPSpec:
    if not isinstance(spec, MLPSpec):
        raise ConfigError(f"spec: must be an MLPSpec, got {type(spec).__name__}")
    if spec.norm != "none" or spec.residual_alpha is not None:
        raise ConfigError("spec: signal norms are measured for plain MLPs (norm 'none', no "
                          "residual branch)")
    return spec


def _one_network(spec: MLPSpec, batch: int, loss: str):
    """key -> (forward, backward), each (batch, depth + 1) log squared norms: column 0 the
    input x (‖x‖², ‖∂L/∂x‖²), column l ≥ 1 layer l (‖φ(h_l)‖², ‖∂L/∂h_l‖²)."""
    phi = get_activation(spec.activation)
    loss_fn = LOSS_FUNCTIONS[loss]

    def measure(key):
        params, x, targets = sample_network(spec, key, batch)

        def net(x, eps):  # eps (depth, batch, width) is added to each h_l: ∂L/∂eps_l = δ_l
            first = params["input_layer"]["dense"]
            h = x @ first["kernel"] + first["bias"] + eps[0]
            hs = h[None]
            if spec.depth > 1:
                def step(h, layer):
                    dense, e = layer
                    h = phi(h) @ dense["kernel"] + dense["bias"] + e
                    return h, h

                h, rest = jax.lax.scan(step, h, (params["hidden"]["dense"], eps[1:]))
                hs = jnp.concatenate([hs, rest])
            out = params["readout"]["dense"]
            return loss_fn(phi(h) @ out["kernel"] + out["bias"], targets), hs

        zeros = jnp.zeros((spec.depth, batch, spec.width), x.dtype)
        (ct_x, ct_h), hs = jax.grad(net, argnums=(0, 1), has_aux=True)(x, zeros)
        forward = jnp.concatenate([log_sq_norm(x)[None], log_sq_norm(phi(hs))])
        backward = jnp.concatenate([log_sq_norm(ct_x)[None], log_sq_norm(ct_h)])
        return forward.T, backward.T  # (batch, depth + 1)

    return measure


def chunk_size(spec: MLPSpec, seeds: int, batch: int) -> int:
    """Networks per vmapped chunk: their weights and activations within ``CHUNK_BYTES``."""
    itemsize = np.dtype(spec.dtype).itemsize
    per_network = itemsize * (3 * spec.depth * spec.width * (spec.width + 4 * batch)
                              + spec.input_dim * spec.width)
    return int(max(1, min(seeds, CHUNK_BYTES // per_network)))


def measured_signal_log_norms(spec: MLPSpec, seeds: int, batch: int = 1, base_seed: int = 0,
                              loss: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Per-example log squared norms of the forward signal and of the gradient, per layer.

    One jitted program: the networks of ``seed_keys(base_seed, seeds)`` (drawn as a sweep
    draws them) vmapped a chunk at a time (:func:`chunk_size`) by ``jax.lax.map``.

    Args:
        spec: a plain MLP (no normalisation, no residual branch), its own gains and σ_b.
        seeds: number of networks.
        batch: examples per network, x ~ N(0, 1) (each a separate measurement).
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).
        loss: "linear" (⟨y, t⟩: an output cotangent independent of the network) or "mse".

    Returns:
        ``(forward, backward)``, each (seeds, batch, depth + 1) float64: column 0 is
        log ‖x‖² and log ‖∂L/∂x‖², column l ≥ 1 is log ‖φ(h_l)‖² and log ‖∂L/∂h_l‖².
    """
    measure = _one_network(spec, batch, loss)
    chunk = chunk_size(spec, seeds, batch)
    with jax.enable_x64(spec.dtype == "float64"):  # as a sweep does
        program = jax.jit(lambda keys: jax.lax.map(measure, keys, batch_size=chunk))
        forward, backward = program(seed_keys(base_seed, seeds))
        return np.asarray(forward, float), np.asarray(backward, float)


def signal_log_norms(spec: MLPSpec, seeds: int, batch: int = 1, base_seed: int = 0,
                     loss: str = "linear", cache_dir: Path | str | None = None,
                     name: str = "signal_norms") -> xr.Dataset:
    """:func:`measured_signal_log_norms`, cached.

    The file is keyed by the spec (its functions by fingerprint), ``seeds``, ``batch``,
    ``base_seed`` and ``loss``; a spec whose functions cannot be fingerprinted is measured
    afresh.

    Args:
        spec, seeds, batch, base_seed, loss: as :func:`measured_signal_log_norms`.
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with dims ``seed``, ``example``, ``layer`` (0 = the input, 1..depth):
        ``forward_log_sq_norm`` and ``backward_log_sq_norm`` (float64, natural log).

    Raises:
        ConfigError: a spec that is not a plain MLPSpec, an unknown loss, counts out of
        range.

    References:
        Hanin (2018); Hanin & Nica (2020).
    """
    spec = _check_spec(spec)
    seeds = check_int("seeds", seeds, 1, MAX_SIGNAL_SEEDS)
    batch = check_int("batch", batch, 1, 10**5)
    base_seed = check_int("base_seed", base_seed, 0, 2**32 - 1)
    if loss not in PROBE_LOSSES:
        raise ConfigError(f"loss: unknown value {loss!r}; allowed: {', '.join(PROBE_LOSSES)}")
    description = {"measurement": "per-example log squared norms of x_l and dL/dh_l at init",
                   "point": spec.describe(), "seeds": seeds, "batch": batch,
                   "base_seed": base_seed, "loss": loss, "input_std": 1.0,
                   "signal_norms_version": SIGNAL_NORMS_VERSION}

    def compute():
        forward, backward = measured_signal_log_norms(spec, seeds, batch, base_seed, loss)
        dims = ("seed", "example", "layer")
        return labeled_dataset(
            {"forward_log_sq_norm": forward, "backward_log_sq_norm": backward},
            {"forward_log_sq_norm": dims, "backward_log_sq_norm": dims},
            {"seed": np.arange(seeds), "example": np.arange(batch),
             "layer": np.arange(spec.depth + 1)},
            {DESCRIPTION_ATTR: describe_json(description), "batch": batch},
            {"forward_log_sq_norm": "log ||x_l||^2, x_0 the input, x_l = phi(h_l)",
             "backward_log_sq_norm": "log ||dL/dh_l||^2, layer 0: log ||dL/dx||^2"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  MLP_FAMILY.why_unfingerprintable(spec))
