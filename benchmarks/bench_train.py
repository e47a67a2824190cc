"""Benchmark: training a grid of networks, gradstudy's engine vs PyTorch peers and a
per-run JAX loop.

Problem (the issue's): 16 seeds × 4 learning rates of a depth-20 ReLU MLP (He init) on
MNIST-1D, SGD, batch 128, 300 steps, at width 32 and at width 128.

* engine: ``gradstudy.engine.train`` — all 64 runs one ``vmap`` axis of a jitted
  ``lax.scan`` over steps (monitor, clipping bookkeeping and evaluation included).
* torch peers (``torch_train.py``, when torch is installed): a per-run loop, a stacked
  ensemble (batched matmuls, eager) and a ``torch.func`` ensemble; they train and record
  the losses, nothing else.  Every timed call initialises its runs itself (He normal by
  ``torch.randn``, minibatch indices by ``torch.randint``), as the engine's timed
  ``train`` initialises its own; the check runs them from the engine's initial weights
  and minibatch indices.
* JAX loop (``--no-jax-loop`` leaves it out): per run a jitted optax step called from
  Python (one compile per learning rate), the same keys and minibatches.

Every method is checked to agree with the engine (the minibatch losses of the first steps)
before its times are reported.  ``engine_cold_s`` is the engine's first training (compilation
included, as a study meets it), ``engine_s`` the median of ``--repeats`` further ones,
interleaved with the torch peers' (each peer's first call is its cold time).  The per-run
torch loop is timed once (``--torch-loop-runs N``: on N of the runs, scaled to all).
``useful_gflops`` counts the dense matmuls of forward and backward passes
(6·batch·Σ fan_in·fan_out per run-step) per steady second; ``matmul_gflops`` is this
machine's measured rate for the same batched matmul shapes, spread over the same devices
(gradstudy makes one host device per core); ``fraction_of_matmul`` their ratio.  One JSON
line per width on stdout; progress on stderr.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py [--steps N] [--widths 32,128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradstudy._xla import default_xla_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling torch_*.py modules
import torch_peers  # noqa: E402  (no torch import: that waits for load_torch)

RTOL = 1e-3
CHECK_STEPS = 3  # the steps whose losses are checked against the engine's


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--widths", type=str, default="32,128")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--rates", type=str, default="0.003,0.01,0.03,0.1")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3,
                   help="steady-state trainings of the engine and of each torch ensemble")
    torch_peers.add_arguments(p, "leave out the per-run JAX loop")
    p.add_argument("--torch-loop-runs", type=int, default=0,
                   help="time the per-run torch loop on this many runs, spread over the "
                        "rates, and scale to all (0: all runs; -1: leave it out)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: need >= 1")
    return args


def engine(training, data):
    """``gradstudy.engine.train`` of the whole grid: (dataset, seconds)."""
    from gradstudy.engine import train

    t0 = time.perf_counter()
    ds = train(training, data, progress=False)
    return ds, time.perf_counter() - t0


def loop(training, data, steps):
    """Per run: a jitted optax step called from Python (the same keys as the engine);
    (losses, first-pass seconds, second-pass seconds)."""
    from gradstudy.engine import initial_params, run_keys
    from gradstudy.families.mlp import MLP

    spec = training.points[0]
    model = MLP(spec)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    keys = run_keys(training)

    def loss_fn(params, xb, yb):
        out = model.apply({"params": params}, xb)[0]
        return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()

    def make_step(tx):
        @jax.jit
        def step(params, state, data_key, t):
            idx = jax.random.randint(jax.random.fold_in(data_key, t), (training.batch_size,),
                                     0, x.shape[0])
            value, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value

        return step

    losses = np.zeros((len(training.learning_rates), training.seeds, steps), np.float32)
    txs = [optax.sgd(lr) for lr in training.learning_rates]
    steps_of = {}
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        for i, tx in enumerate(txs):
            if i not in steps_of:
                steps_of[i] = make_step(tx)  # one compile per learning rate
            step = steps_of[i]
            for s in range(training.seeds):
                params = initial_params(training, 0, s)
                state = tx.init(params)
                data_key = jax.random.split(keys[s])[1]
                for t in range(steps):
                    params, state, value = step(params, state, data_key, t)
                    losses[i, s, t] = value  # a host sync per step, as a logging loop has
        times.append(time.perf_counter() - t0)
    return losses, times[0], times[1]


def bare_sgd_seconds(training, data, trials=3) -> float:
    """Seconds of the same runs' SGD steps with nothing else: no records, no monitor, no
    evaluation, spread over the devices and blocked as the engine does it, compiled
    (best of ``trials``).  The engine's ceiling on this machine: what it spends beyond is
    its bookkeeping."""
    from gradstudy.engine import over_devices, pad_runs, programs, run_block, run_devices
    from gradstudy.engine._training import _group_inputs, _groups
    from gradstudy.engine._training_programs import _loss_fn

    prog, idx = next(iter(_groups(training, training.steps).items()))
    keys, scalars, hyper = _group_inputs(training, idx, prog.branches)
    keys, scalars, hyper = pad_runs((np.asarray(keys), scalars, hyper), len(run_devices()))
    state = programs.__wrapped__(prog)[0](keys, scalars, hyper)
    loss_fn = _loss_fn(prog.spec, prog.loss)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)

    def one(params, data_key, lr):
        def step(p, t):
            i = jax.random.randint(jax.random.fold_in(data_key, t), (training.batch_size,), 0,
                                   x.shape[0])
            (value, _), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x[i], y[i])
            return jax.tree.map(lambda w, d: w - lr * d, p, g), value

        return jax.lax.scan(step, params, jnp.arange(training.steps))

    def blocks(params, data_key, lr):
        return jax.lax.map(lambda a: one(*a), (params, data_key, lr),
                           batch_size=run_block(prog.spec, lr.shape[0]))

    f = jax.jit(over_devices(blocks, 3))
    args = (state["params"], state["data_key"], jnp.asarray(hyper["learning_rate"]))
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rate(runs, batch, width, repeats=20, trials=5) -> float:
    """GFLOP/s of the batched (runs, batch, width) @ (runs, width, width) matmul, the runs
    spread over the devices as the engine spreads them (one host device per core); the
    best of ``trials`` timings of ``repeats`` calls (single timings varied 1.6x on this
    shared machine, and the reference is the rate the machine can reach)."""
    from gradstudy.engine import over_devices, place_runs, run_devices

    runs += -runs % len(run_devices())
    # placed where the program wants them, so that no call pays a transfer
    a = place_runs(np.ones((runs, batch, width), np.float32))
    b = place_runs(np.ones((runs, width, width), np.float32) / width)
    f = jax.jit(over_devices(lambda a, b: jnp.einsum("rbi,rij->rbj", a, b), 2))
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a = f(a, b)
        a.block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * runs * batch * width * width * repeats / best / 1e9


# ------------------------------------------------------------------- the PyTorch peers
def engine_minibatches(training, n_examples: int) -> np.ndarray:
    """The engine's minibatch indices (seeds, steps, batch): seed s's run key split into
    (init, data) keys and ``randint(fold_in(data_key, t))``, as its training program
    draws them at every rate."""
    from gradstudy.engine import run_keys

    keys = run_keys(training)[:training.seeds]

    def per_seed(key):
        data_key = jax.random.split(key)[1]
        return jax.vmap(lambda t: jax.random.randint(
            jax.random.fold_in(data_key, t), (training.batch_size,), 0, n_examples))(
            jnp.arange(training.steps))

    return np.asarray(jax.jit(jax.vmap(per_seed))(keys))


def torch_problem(training, data):
    """The torch peers' problem and the engine's start (its initial weights and
    minibatches, for the agreement check); SystemExit if torch's He normal scales are not
    the engine's."""
    import torch_train

    from gradstudy.engine import initial_params

    spec = training.points[0]
    dims = (spec.input_dim,) + (spec.width,) * spec.depth + (spec.out_dim,)
    problem = torch_train.problem_from_numpy(
        training.learning_rates, data.x, data.y, dims, training.seeds, training.steps,
        training.batch_size, spec.sigma_w, spec.sigma_b)
    stds = torch_train.he_stds(problem)
    try:  # input layer, a hidden layer, readout
        np.testing.assert_allclose([stds[0], stds[1], stds[-1]], spec.kernel_scales(),
                                   rtol=1e-6)
    except AssertionError as err:
        raise SystemExit(f"FAIL: torch peers initialise unlike the engine:\n{err}")
    params = jax.tree.map(np.asarray, initial_params(training, 0, range(training.seeds)))
    idx = engine_minibatches(training, data.x.shape[0])
    return problem, torch_train.init_from_numpy(params, idx)


def check_losses(name: str, got, want) -> float:
    """Max relative difference of a method's first ``CHECK_STEPS`` minibatch losses from the
    engine's ((runs, steps) each); SystemExit beyond RTOL.  Only the first steps: at the
    largest rates a 20-layer net amplifies float32 rounding differences within a few."""
    got, want = np.asarray(got)[:, :CHECK_STEPS], np.asarray(want)[:, :CHECK_STEPS]
    try:
        np.testing.assert_allclose(got, want, rtol=RTOL)
    except AssertionError as err:
        raise SystemExit(f"FAIL: {name} and the engine disagree on the first losses:\n{err}")
    return float(np.max(np.abs(got - want) / np.abs(want)))


def loop_runs(runs: int, wanted: int) -> np.ndarray:
    """``wanted`` run numbers spread evenly over all (so over every learning rate)."""
    if wanted <= 0 or wanted >= runs:
        return np.arange(runs)
    return np.unique(np.linspace(0, runs - 1, wanted).round().astype(int))


def cold_torch(args, training, data, want):
    """Every torch peer's first call (its cold time: it draws its own initial weights and
    minibatches, as every timed call does), then its first ``CHECK_STEPS`` steps from the
    engine's initial weights and minibatches, checked against the engine's losses ``want``
    (runs, steps): ({peer: no-argument function}, {peer: PeerTiming}, worst relative
    difference); the per-run loop is timed only here.  Empty without torch."""
    torch = torch_peers.load_torch(args.torch, args.torch_threads)
    if torch is None:
        return {}, {}, None
    import torch_train

    torch.manual_seed(0)  # the peers' own initial weights and minibatches, reproducibly
    problem, engine_init = torch_problem(training, data)
    check_init = engine_init.first_steps(CHECK_STEPS)
    fns = {name: (lambda f=f: f(problem)) for name, f in torch_train.PEERS.items()}
    timings, worst = {}, 0.0
    for name, fn in fns.items():
        log(f"torch {name}: first call ...")
        first_s = torch_peers.timed(fn)[1]
        losses = torch_train.PEERS[name](problem, check_init)
        worst = max(worst, check_losses(f"torch peer {name}", losses, want))
        timings[name] = torch_peers.PeerTiming(first_s, [])
        log(f"torch {name}: first call {first_s:.1f}s, agrees with the engine")
    if args.torch_loop_runs >= 0:
        runs = loop_runs(problem.runs, args.torch_loop_runs)
        log(f"torch per_run_loop: {len(runs)} of {problem.runs} runs ...")
        s = torch_peers.timed(lambda: torch_train.per_run_loop(problem, runs=runs))[1]
        losses = torch_train.per_run_loop(problem, check_init)  # all runs, a few steps
        worst = max(worst, check_losses("torch peer per_run_loop", losses, want))
        scaled = s * problem.runs / len(runs)
        # timed once: eager PyTorch compiles nothing, its first run warms up the rest
        timings["per_run_loop"] = torch_peers.PeerTiming(scaled, [scaled])
        log(f"torch per_run_loop: {s:.1f}s for {len(runs)} runs, {scaled:.1f}s scaled")
    return fns, timings, worst


def torch_fields(args, timings, engine_s, engine_cold_s, flop, matmul, runs, width):
    """The PyTorch comparison (torch_peers.comparison_fields) and its rates."""
    import torch

    out = torch_peers.comparison_fields(timings, engine_s, engine_cold_s)
    out.update({
        "torch_best_gflops": flop / out["torch_best_s"] / 1e9,
        "torch_best_fraction_of_matmul": flop / out["torch_best_s"] / 1e9 / matmul,
        "torch_matmul_gflops": torch_peers.torch_bmm_gflops(torch, runs, args.batch, width),
        **torch_peers.torch_version(torch),
    })
    if "per_run_loop" in timings:
        out["torch_per_run_loop_timed_runs"] = len(loop_runs(runs, args.torch_loop_runs))
    return out


# ------------------------------------------------------------------------------ main
def measure_width(args, data, rates, width) -> dict:
    """Every method at one width: agreement first, then interleaved timing; the JSON."""
    from gradstudy import MLPSpec
    from gradstudy.engine import OptimizerSpec, Training

    spec = MLPSpec(width=width, depth=args.depth, in_dim=40, out_dim=10,
                   activation="relu", init="he_normal")
    training = Training(points=(spec,), optimizer=OptimizerSpec("sgd", rates[0]),
                        steps=args.steps, learning_rates=rates, seeds=args.seeds,
                        batch_size=args.batch, eval_every=args.steps,
                        record_every=max(1, args.steps // 10))
    runs = len(rates) * args.seeds
    log(f"width {width}: engine (cold) ...")
    ds, engine_cold_s = engine(training, data)
    want = ds.loss.isel(point=0).values.reshape(runs, args.steps)  # (rate, seed) rate-major
    log(f"width {width}: engine cold {engine_cold_s:.1f}s")
    out = {"width": width, "depth": args.depth, "runs": runs, "steps": args.steps,
           "batch": args.batch, "repeats": args.repeats,
           # others' load on a shared machine (eager PyTorch suffers most from it)
           "load_avg_1m_start": os.getloadavg()[0]}
    if args.jax_loop:
        log(f"width {width}: JAX loop ...")
        losses, loop_cold_s, loop_s = loop(training, data, args.steps)
        # the initial loss to float32 rounding as well: the same program modulo vmap
        np.testing.assert_allclose(want[:, 0], losses.reshape(runs, -1)[:, 0], rtol=1e-5)
        check_losses("the JAX loop", losses.reshape(runs, -1), want)
        out.update({"loop_cold_s": loop_cold_s, "loop_s": loop_s})
    torch_fns, timings, torch_worst = cold_torch(args, training, data, want)

    engine_times = []
    for r in range(args.repeats):  # interleaved, so that others' load hits all alike
        engine_times.append(engine(training, data)[1])
        for name, fn in torch_fns.items():
            timings[name].times_s.append(torch_peers.timed(fn)[1])
        log(f"width {width}: repeat {r + 1}/{args.repeats}: engine {engine_times[-1]:.2f}s"
            + "".join(f" torch {k} {timings[k].times_s[-1]:.2f}s" for k in torch_fns))
    engine_s = statistics.median(engine_times)
    weights = 40 * width + (args.depth - 1) * width * width + width * 10
    flop = 6.0 * args.batch * weights * runs * args.steps
    matmul = matmul_rate(runs, args.batch, width)
    out.update({
        "engine_s": engine_s, "engine_cold_s": engine_cold_s, "engine_times_s": engine_times,
        "useful_gflops": flop / engine_s / 1e9, "cold_gflops": flop / engine_cold_s / 1e9,
        "matmul_gflops": matmul, "fraction_of_matmul": flop / engine_s / 1e9 / matmul,
        "steps_per_s": runs * args.steps / engine_s,
    })
    if args.jax_loop:
        out["speedup_vs_loop"] = out["loop_s"] / engine_s
        out["speedup_vs_loop_cold"] = out["loop_cold_s"] / engine_cold_s
    if timings:
        out.update(torch_fields(args, timings, engine_s, engine_cold_s, flop, matmul, runs,
                                width))
        out["torch_max_rel_diff"] = torch_worst
    try:  # the engine's ceiling; it reads engine internals, which may move
        bare = flop / bare_sgd_seconds(training, data) / 1e9
        out.update({"bare_sgd_gflops": bare, "bare_fraction_of_matmul": bare / matmul,
                    "fraction_of_bare": flop / engine_s / 1e9 / bare})
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        log(f"width {width}: bare SGD ceiling not measured ({type(err).__name__}: {err})")
    out["load_avg_1m_end"] = os.getloadavg()[0]
    # a persistent compilation cache (if the library turns one on) makes "cold" warm
    out["jax_compilation_cache_dir"] = jax.config.jax_compilation_cache_dir
    return out


def main(argv=None) -> int:
    default_xla_flags()
    args = parse_args(argv)
    from gradstudy.data import mnist1d

    data = mnist1d("results/data")
    rates = tuple(float(r) for r in args.rates.split(","))
    for width in (int(w) for w in args.widths.split(",")):
        print(json.dumps(measure_width(args, data, rates, width)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
