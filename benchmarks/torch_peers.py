"""What the PyTorch peers of both benchmarks share: loading torch, timing a peer, and the
JSON fields that compare the fastest peer with gradstudy's engine.

torch is optional (``pip install -c constraints.txt -e ".[bench]"``): :func:`load_torch`
returns ``None`` and says so in one line on stderr when it is absent, and the benchmarks
then run without their PyTorch part.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

INSTALL_HINT = 'pip install -c constraints.txt -e ".[bench]"'


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def add_arguments(parser, jax_loop_help: str) -> None:
    """The command-line options both benchmarks share: which comparisons to run, torch's
    threads."""
    parser.add_argument("--no-jax-loop", dest="jax_loop", action="store_false",
                        help=jax_loop_help)
    parser.add_argument("--no-torch", dest="torch", action="store_false",
                        help="leave out the PyTorch peers")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the number of cores)")


def load_torch(wanted: bool = True, threads: int | None = None):
    """The ``torch`` module with ``threads`` threads (default: one per core), or ``None``
    (one line on stderr) when it is not installed or ``wanted`` is False."""
    if not wanted:
        log("torch peers: skipped (--no-torch)")
        return None
    try:
        import torch
    except ImportError:
        log(f"torch peers: skipped, torch is not installed ({INSTALL_HINT})")
        return None
    # torch defaults to the physical cores it detects; the engine uses every core the OS
    # gives it, so the peers get the same
    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch


class PeerTiming(NamedTuple):
    """One peer: its first call (setup, compilation, warm-up included) and steady calls."""

    first_s: float
    times_s: list

    @property
    def steady_s(self) -> float:
        return statistics.median(self.times_s)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of one call; torch CPU ops are synchronous, so the clock stops
    when the work is done."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def comparison_fields(peers: dict[str, PeerTiming], engine_s: float,
                      engine_cold_s: float) -> dict:
    """The JSON fields comparing the PyTorch peers with the engine.

    ``torch_best_*`` is the peer fastest at steady state; ``torch_fastest_cold_*`` the peer
    whose first call (compilation included) ends first, which is what
    ``speedup_vs_torch_cold`` compares against the engine's compile + first run.
    """
    best = min(peers, key=lambda name: peers[name].steady_s)
    cold = min(peers, key=lambda name: peers[name].first_s)
    out = {
        "torch_best_peer": best,
        "torch_best_s": peers[best].steady_s,
        "torch_best_cold_s": peers[best].first_s,
        "torch_fastest_cold_peer": cold,
        "torch_fastest_cold_s": peers[cold].first_s,
        "speedup_vs_torch": peers[best].steady_s / engine_s,
        "speedup_vs_torch_cold": peers[cold].first_s / engine_cold_s,
        # every timed torch call draws its own initial weights and data with torch's RNG,
        # as the engine's timed program draws its own (the agreement check runs the peers
        # on the engine's): both sides do the same work
        "torch_samples_weights": True,
    }
    for name, p in peers.items():
        out[f"torch_{name}_s"] = p.steady_s
        out[f"torch_{name}_first_s"] = p.first_s
        out[f"torch_{name}_times_s"] = list(p.times_s)
    return out


def torch_bmm_gflops(torch, runs: int, batch: int, width: int, calls: int = 20,
                     trials: int = 3) -> float:
    """PyTorch's rate (GFLOP/s) for the (runs, batch, width) × (runs, width, width) batched
    matmul the peers are made of: best of ``trials`` timings of ``calls`` calls."""
    a = torch.randn(runs, batch, width)
    b = torch.randn(runs, width, width) / width**0.5
    out = torch.empty(runs, batch, width)
    torch.bmm(a, b, out=out)
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.bmm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * runs * batch * width * width * calls / best / 1e9


def torch_version(torch) -> dict:
    return {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
