"""How a fully connected network maps the correlation of two inputs, layer by layer,
measured and cached like a sweep: the finite-width counterpart of the network's C-map
(:func:`gradstudy.theory.composed_correlation_map`) and Q-map.

Per network, pairs of inputs with an exact cosine similarity ``c0`` and an exact mean square
``input_q`` go through the spec's own layers (:class:`gradstudy.families.mlp.InputLayer`,
then :class:`gradstudy.families.mlp.HiddenLayer` scanned over the stacked parameters, so
the residual branch and layer norm are the model's), and every hidden layer's
pre-activations ``h_l`` of the pair give their cosine similarity and mean squares.  One
jitted program per spec, vmapped over the seeds; all ``c0`` are one batch.

References:
    B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli. "Exponential
    expressivity in deep neural networks through transient chaos." NeurIPS 2016 (the
    correlation of two inputs through depth).

    J. Martens et al. "Rapid training of deep neural networks without skip connections or
    normalization layers using Deep Kernel Shaping." arXiv:2110.01765 (2021), Sec. 3.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from gradstudy._numerics import max_abs_scale
from gradstudy._seeds import seed_keys
from gradstudy._validate import check_int, check_real
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._family import MLP_FAMILY
from gradstudy.families.mlp._jacobians import first_hidden_state
from gradstudy.families.mlp._model import (
    HiddenLayer,
    sample_params,
    zero_perturbation,
)
from gradstudy.families.mlp._spec import MLPSpec
from gradstudy.results import DESCRIPTION_ATTR, cached, describe_json, labeled_dataset

CORRELATIONS_VERSION = 1  # bumped whenever what input_correlations computes changes
CHUNK_BYTES = 128 * 2**20  # the weights of the networks measured together (one chunk)


def network_bytes(spec: MLPSpec) -> int:
    """Bytes of one network's weights and biases (the readout's included)."""
    width, itemsize = spec.width, jnp.dtype(spec.dtype).itemsize
    count = (spec.input_dim + 1) * width + (spec.depth - 1) * (width + 1) * width \
        + (width + 1) * spec.out_dim
    return count * itemsize


def correlated_pairs(key: jax.Array, dim: int, correlations, input_q: float = 1.0,
                     dtype=jnp.float32, pairs: int = 1) -> jax.Array:
    """Input pairs with exactly the given cosine similarities and mean square ``input_q``.

    Per pair of correlation ``c``, two orthonormal directions ``e_1, e_2`` (Gram–Schmidt on
    Gaussian vectors, so the pair's orientation is uniformly random) give
    ``x_a = √(dim q) e_1`` and ``x_b = √(dim q) (c e_1 + √(1 − c²) e_2)``.

    Returns:
        ``(2 · pairs · len(correlations), dim)``: rows ``2i`` and ``2i + 1`` are pair ``i``;
        pair ``i`` has correlation ``correlations[i // pairs]``.
    """
    c = jnp.repeat(jnp.asarray(correlations, dtype), pairs)
    g = jax.random.normal(key, (c.shape[0], 2, dim), dtype)
    e1 = g[:, 0] / jnp.linalg.norm(g[:, 0], axis=-1, keepdims=True)
    rest = g[:, 1] - jnp.sum(g[:, 1] * e1, axis=-1, keepdims=True) * e1
    e2 = rest / jnp.linalg.norm(rest, axis=-1, keepdims=True)
    radius = jnp.sqrt(jnp.asarray(dim * input_q, dtype))
    x_b = c[:, None] * e1 + jnp.sqrt(1 - c[:, None] ** 2) * e2
    return (radius * jnp.stack([e1, x_b], axis=1)).reshape(2 * c.shape[0], dim)


def _pair_statistics(h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cosine similarity of each pair of rows and each row's mean square, without overflow
    of the squares (rows scaled by their max |entry| first; inf/NaN stay non-finite)."""
    pairs = h.reshape(h.shape[0] // 2, 2, h.shape[-1])
    scale = max_abs_scale(pairs, axis=-1)[..., None]
    unit = pairs / scale
    norms = jnp.linalg.norm(unit, axis=-1)
    cosine = jnp.sum(unit[:, 0] * unit[:, 1], axis=-1) / (norms[:, 0] * norms[:, 1])
    mean_square = (scale[..., 0] * norms) ** 2 / h.shape[-1]
    return cosine, mean_square


def layer_pre_activations(spec: MLPSpec, params: dict, x: jax.Array) -> jax.Array:
    """``h_1 … h_depth`` of ``x`` through the spec's own layers: ``(depth, batch, width)``."""
    dtype = jnp.dtype(spec.dtype)
    h = first_hidden_state(spec, params, x)
    if spec.depth == 1:
        return h[None]
    layer = HiddenLayer(spec)
    zeros = zero_perturbation(x.shape[0], spec.width, dtype)

    def step(h, layer_params):
        h_next, _ = layer.apply({"params": layer_params}, h, zeros)
        return h_next, h_next

    _, hidden = lax.scan(step, h, params["hidden"])
    return jnp.concatenate([h[None], hidden])


def measured_input_correlations(spec: MLPSpec, correlations, seeds: int, base_seed: int = 0,
                                input_q: float = 1.0, pairs: int = 1
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Per network and layer, the cosine similarity and mean squares of input pairs' h_l.

    Networks are drawn as in a sweep (``sample_params`` from the first half of a split of
    ``seed_keys(base_seed, seeds)``; the pairs from the second, by
    :func:`correlated_pairs`).  One jitted program, vmapped over the seeds.

    Returns:
        ``(cosine, mean_square)`` of shapes ``(seeds, depth, n_c, pairs)`` and
        ``(seeds, depth, n_c, pairs, 2)`` (float64 copies of the spec's dtype).
    """
    correlations = tuple(float(c) for c in correlations)

    def per_seed(key):
        k_params, k_x = jax.random.split(key)
        params = sample_params(spec, k_params)
        x = correlated_pairs(k_x, spec.input_dim, correlations, input_q, jnp.dtype(spec.dtype),
                             pairs)
        cosine, mean_square = jax.vmap(_pair_statistics)(layer_pre_activations(spec, params, x))
        shape = (spec.depth, len(correlations), pairs)
        return cosine.reshape(shape), mean_square.reshape(shape + (2,))

    # vmapped over chunks of seeds, the chunks in sequence: every seed's weights at once
    # would not fit in memory at width 1024 and depth 100
    chunk = max(1, min(seeds, CHUNK_BYTES // network_bytes(spec)))
    program = jax.jit(lambda keys: lax.map(per_seed, keys, batch_size=chunk))
    cosine, mean_square = program(seed_keys(base_seed, seeds))
    return np.asarray(cosine, float), np.asarray(mean_square, float)


def input_correlations(spec: MLPSpec, correlations, seeds: int, base_seed: int = 0,
                       input_q: float = 1.0, pairs: int = 1,
                       cache_dir: Path | str | None = None,
                       name: str = "correlations") -> xr.Dataset:
    """The layer-by-layer correlation of input pairs through ``seeds`` networks, cached.

    The file is keyed by the spec (its functions by fingerprint), the input correlations,
    ``seeds``, ``base_seed`` and ``input_q``; a spec whose functions cannot be fingerprinted
    is measured afresh.

    Args:
        spec: the network; no batchnorm (a pair is not a batch to normalise over).
        correlations: the cosine similarities ``c0`` of the input pairs, in [−1, 1].
        seeds: number of networks.
        base_seed: seed of the networks' keys (as ``Sweep.base_seed``).
        input_q: the inputs' mean square ``‖x‖² / in_dim``.
        pairs: input pairs per correlation and network (independent orientations).
        cache_dir: folder of the cached file, or None to compute without storing.
        name: file-name stem of the cached file.

    Returns:
        Dataset with dims ``seed``, ``layer`` (1..depth), ``c0``, ``pair`` and ``input``
        (a, b): ``cosine`` (seed, layer, c0, pair) and ``mean_square`` (seed, layer, c0,
        pair, input); inf/NaN
        where a forward pass overflowed (kept as data).

    Raises:
        ConfigError: a spec that is not an MLPSpec or uses batchnorm; values out of range.

    References:
        Poole et al. (2016); Martens et al. (2021), Sec. 3.
    """
    if not isinstance(spec, MLPSpec):
        raise ConfigError(f"spec: must be an MLPSpec, got {type(spec).__name__}")
    if spec.norm == "batchnorm":
        raise ConfigError("spec: batchnorm mixes the inputs of a batch; use none or layernorm")
    correlations = tuple(check_real("correlations", c, -1.0, 1.0) for c in correlations)
    if not correlations:
        raise ConfigError("correlations: need at least one")
    seeds = check_int("seeds", seeds, 1, 10**5)
    base_seed = check_int("base_seed", base_seed, 0, 2**32 - 1)
    input_q = check_real("input_q", input_q, 1e-12, 1e12)
    pairs = check_int("pairs", pairs, 1, 10**4)
    description = {"measurement": "cosine similarity of input pairs' pre-activations",
                   "point": spec.describe(), "correlations": list(correlations),
                   "seeds": seeds, "base_seed": base_seed, "input_q": input_q, "pairs": pairs,
                   "correlations_version": CORRELATIONS_VERSION}

    def compute():
        cosine, mean_square = measured_input_correlations(spec, correlations, seeds,
                                                          base_seed, input_q, pairs)
        coords = {"seed": np.arange(seeds), "layer": np.arange(1, spec.depth + 1),
                  "c0": np.asarray(correlations), "pair": np.arange(pairs),
                  "input": ["a", "b"]}
        return labeled_dataset(
            {"cosine": cosine, "mean_square": mean_square},
            {"cosine": ("seed", "layer", "c0", "pair"),
             "mean_square": ("seed", "layer", "c0", "pair", "input")},
            coords, {DESCRIPTION_ATTR: describe_json(description)},
            {"cosine": "cosine similarity of the pair's pre-activations h_l",
             "mean_square": "‖h_l‖² / width of each input of the pair"})

    return cached(name, description, compute, None if cache_dir is None else Path(cache_dir),
                  MLP_FAMILY.why_unfingerprintable(spec))
