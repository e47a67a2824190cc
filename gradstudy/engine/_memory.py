"""Memory of a sweep program, estimated from its shapes before anything is allocated.

A sweep evaluates many networks (gain points × seeds) in one compiled program.  Run all of
them at once and a paper-scale study needs 10 GB; so the networks are evaluated in chunks
(``lax.map`` over chunks, ``vmap`` within one) whose size is chosen from this estimate to fit
a budget, and a configuration whose single network cannot fit is refused with one line.

The estimate counts, per network, the parameters (sampled at unit gain, then scaled: two
copies plus one in flight), the activations the backward pass keeps for every layer, and the
cotangents of all requested depths; the constants were fitted to XLA's own
``compiled.memory_analysis()`` on CPU and err on the high side (a test checks that the
estimate is never below XLA's figure nor above twice it).
"""

from __future__ import annotations

from gradstudy._budget import BUDGET_ENV, DEFAULT_BUDGET_GB, budget_bytes, human
from gradstudy.errors import ConfigError
from gradstudy.families.mlp._memory import network_bytes, network_output_bytes

__all__ = ["BUDGET_ENV", "DEFAULT_BUDGET_GB", "budget_bytes", "human", "plan_chunk",
           "plan_networks"]


def plan_chunk(spec, depths, batch: int, networks: int, keep_backprop: bool = False,
               budget: int | None = None, most: int | None = None) -> int:
    """:func:`plan_networks` for ``networks`` MLPs of ``spec`` (the MLP family's estimate)."""
    what = (f"width {spec.width}, depth {max(depths)}, batch {batch}, {spec.dtype}"
            + (", raw back-propagated signals kept" if keep_backprop else ""))
    return plan_networks(network_bytes(spec, depths, batch, keep_backprop),
                         network_output_bytes(spec, depths, batch, keep_backprop), networks,
                         what, budget, most)


def plan_networks(per_network: int, output_per_network: int, networks: int, what: str,
                  budget: int | None = None, most: int | None = None) -> int:
    """How many of ``networks`` to evaluate at once so the program fits ``budget`` bytes.

    The networks are split into ``ceil(networks / chunk)`` equal chunks; the caller pads the
    last one (fewer than one network per chunk is wasted).  A remainder chunk would be
    compiled as a second copy of the whole program, which doubles compile time and the
    compiler's memory (measured: 1.07 GB against 0.73 GB peak for a 32-layer tanh program).

    Args:
        per_network: working bytes of one network (any model family's estimate).
        output_per_network: bytes of one network's recorded results.
        what: the shapes, for the refusal message (e.g. "width 256, depth 64, ...").
        most: an upper bound on the chunk besides the budget (e.g. a sweep's gain_chunk).

    Raises:
        ConfigError: one line with the estimate, if not even one network (or the results of
            all of them) fit.
    """
    budget = budget_bytes() if budget is None else budget
    outputs = networks * output_per_network
    if per_network + outputs > budget:
        need = per_network + outputs
        raise ConfigError(
            f"memory: this sweep needs ≈ {human(need)} ({what}: {human(per_network)} per "
            f"network, {human(outputs)} of results for {networks} networks) but the budget is "
            f"{human(budget)}; use a smaller width, depth, batch or seeds, or raise "
            f"{BUDGET_ENV}")
    fit = max(1, min(networks, (budget - outputs) // per_network))
    if most is not None:
        fit = max(1, min(fit, most))
    n_chunks = -(-networks // fit)
    return -(-networks // n_chunks)  # equal chunks, the smallest that need n_chunks
