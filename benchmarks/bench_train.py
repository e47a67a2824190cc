"""Benchmark: training a grid of networks, gradstudy's engine vs a per-run Python loop.

Problem (the issue's): 16 seeds × 4 learning rates of a depth-20 ReLU MLP (He init) on
MNIST-1D, SGD, batch 64, at width 32 and at width 128.

* engine: ``gradstudy.engine.train`` — all 64 runs one ``vmap`` axis of a jitted
  ``lax.scan`` over steps (monitor, clipping bookkeeping and evaluation included).
* loop: what users write: per run a jitted optax step called from Python (one compile per
  learning rate), the same keys and minibatches.

Both are checked to agree (the minibatch losses of the first steps) before timing.  Each
runs twice: ``engine_s``/``loop_s`` (and ``speedup_vs_loop``, ``useful_gflops``,
``fraction_of_matmul``) time the first pass, compilation included, as a study meets it;
``engine_warm_s``/``loop_warm_s`` (``speedup_vs_loop_warm``) the second, every program
already compiled (the engine's programs are cached across trainings, the loop's steps
across its passes).  ``useful_gflops`` counts the dense matmuls of forward and
backward passes (6·batch·Σ fan_in·fan_out per run-step); ``matmul_gflops`` is this
machine's measured rate for the same batched matmul shapes, spread over the same devices
(gradstudy makes one host device per core); ``fraction_of_matmul`` their
ratio.  One JSON line per width on stdout; progress on stderr.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py [--steps N] [--widths 32,128]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradstudy._xla import default_xla_flags


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--widths", type=str, default="32,128")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--rates", type=str, default="0.003,0.01,0.03,0.1")
    p.add_argument("--batch", type=int, default=64)
    return p.parse_args(argv)


def engine(training, data):
    """(dataset, first-pass seconds, second-pass seconds)."""
    from gradstudy.engine import train

    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        ds = train(training, data, progress=False)
        times.append(time.perf_counter() - t0)
    return ds, times[0], times[1]


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


def main(argv=None) -> int:
    default_xla_flags()
    args = parse_args(argv)
    from gradstudy import MLPSpec
    from gradstudy.data import mnist1d
    from gradstudy.engine import OptimizerSpec, Training

    data = mnist1d("results/data")
    rates = tuple(float(r) for r in args.rates.split(","))
    for width in (int(w) for w in args.widths.split(",")):
        spec = MLPSpec(width=width, depth=args.depth, in_dim=40, out_dim=10,
                       activation="relu", init="he_normal")
        training = Training(points=(spec,), optimizer=OptimizerSpec("sgd", rates[0]),
                            steps=args.steps, learning_rates=rates, seeds=args.seeds,
                            batch_size=args.batch, eval_every=args.steps,
                            record_every=max(1, args.steps // 10))
        log(f"width {width}: engine ...")
        ds, engine_s, engine_warm_s = engine(training, data)
        log(f"width {width}: engine {engine_s:.1f} s (warm {engine_warm_s:.1f} s); loop ...")
        losses, loop_s, loop_warm_s = loop(training, data, args.steps)
        got = ds.loss.isel(point=0).values
        # agreement first: the initial loss to float32 rounding, the next two steps to 1e-3
        # (vmapped and single-run programs round differently, and at the largest rates a
        # 20-layer net amplifies that by a few steps later)
        np.testing.assert_allclose(got[..., 0], losses[..., 0], rtol=1e-5)
        np.testing.assert_allclose(got[..., :3], losses[..., :3], rtol=1e-3)
        runs = len(rates) * args.seeds
        weights = 40 * width + (args.depth - 1) * width * width + width * 10
        useful = 6.0 * args.batch * weights * runs * args.steps / engine_s / 1e9
        matmul = matmul_rate(runs, args.batch, width)
        flop = 6.0 * args.batch * weights * runs * args.steps
        bare = flop / bare_sgd_seconds(training, data) / 1e9
        print(json.dumps({
            "width": width, "depth": args.depth, "runs": runs, "steps": args.steps,
            "engine_s": round(engine_s, 2), "loop_s": round(loop_s, 2),
            "speedup_vs_loop": round(loop_s / engine_s, 2),
            "engine_warm_s": round(engine_warm_s, 2), "loop_warm_s": round(loop_warm_s, 2),
            "speedup_vs_loop_warm": round(loop_warm_s / engine_warm_s, 2),
            "useful_gflops": round(useful, 2), "matmul_gflops": round(matmul, 2),
            "fraction_of_matmul": round(useful / matmul, 3),
            "warm_gflops": round(flop / engine_warm_s / 1e9, 2),
            "warm_fraction_of_matmul": round(flop / engine_warm_s / 1e9 / matmul, 3),
            "bare_sgd_gflops": round(bare, 2),  # the same steps, nothing else: the ceiling
            "bare_fraction_of_matmul": round(bare / matmul, 3),
            "warm_fraction_of_bare": round(flop / engine_warm_s / 1e9 / bare, 3),
            "steps_per_s": round(runs * args.steps / engine_s, 1),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
