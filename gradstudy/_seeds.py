"""Per-seed PRNG keys: the one place where seed ``s`` becomes a key.

Seed ``s`` is ``fold_in(PRNGKey(base_seed), s)`` in sweeps, trainings and ``diagnose``:
the same ``base_seed`` and ``s`` give the same network everywhere (common random numbers
across the points of a grid).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def seed_keys(base_seed: int, seeds: int) -> jax.Array:
    """``(seeds,)`` keys: key ``s`` is ``fold_in(PRNGKey(base_seed), s)``."""
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(base_seed), s))(
        jnp.arange(seeds))
