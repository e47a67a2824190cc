"""Benchmark: a seed x depth gradient-norm sweep, gradstudy's engine vs a per-config loop
and vs PyTorch peers.

Default problem (the issue's spec): tanh MLP, width 256, batch 128, Gaussian init σ_w = 1,
σ_b = 0, 16 seeds, depths 8, 16, ..., 64, one gain point.

* engine: ``gradstudy.engine.compiled_program(spec(depth=max), depths, ...)``, one call for
  all seeds and depths (one shared forward pass, segment-wise stacked backward pass).
* loop: what one would write without gradstudy: per depth d a ``jax.jit`` of a single
  depth-d network (init, data, ``jax.grad`` of the MSE w.r.t. params and the
  perturbations), then a Python loop over the seeds (``--no-jax-loop`` leaves it out).
* torch peers (``torch_sweep.py``, when torch is installed): a per-(seed, depth) autograd
  loop, a ``torch.func`` vmap, a hand-written backward pass (gradstudy's algorithm in
  PyTorch) and its ``torch.compile`` (``--no-compile`` leaves it out).  Each timed call
  draws its own weights and data with torch's RNG, from the engine's distributions, as the
  engine's timed program draws its own; the agreement check runs them on the engine's.

All are checked to agree (per-layer back-propagated and weight-gradient norms) before any
time is reported.  Progress goes to stderr; the last line on stdout is one JSON object.

    cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/bench_sweep.py [--help]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy._seeds import seed_keys

# main() sets gradstudy's default XLA flags (CPU: --xla_backend_optimization_level=1) before
# JAX starts its backend, exactly as the gradstudy command does.
from gradstudy._xla import default_xla_flags
from gradstudy.engine import compiled_program, plan_devices
from gradstudy.families import family_of
from gradstudy.families.mlp import (
    MLP,
    MLPSpec,
    apply_gains,
    init_params,
    sample_network,
    zero_perturbation,
)
from gradstudy.nn import mse_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling torch_*.py modules
import torch_peers  # noqa: E402  (no torch import: that waits for load_torch)

RTOL = 1e-3


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--depths", type=str, default="8,16,24,32,40,48,56,64",
                   help="comma-separated network depths (default 8,16,...,64)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed steady-state runs of each method (>= 3 is sensible)")
    p.add_argument("--activation", type=str, default="tanh")
    p.add_argument("--sigma-w", type=float, default=1.0)
    p.add_argument("--sigma-b", type=float, default=0.0)
    p.add_argument("--base-seed", type=int, default=0)
    torch_peers.add_arguments(
        p, "leave out the per-config JAX loop (saves its compile and run time)")
    p.add_argument("--no-compile", dest="torch_compile", action="store_false",
                   help="leave out the torch.compile peer (its first call compiles ~1 min)")
    args = p.parse_args(argv)
    args.depths = tuple(sorted({int(d) for d in args.depths.split(",") if d.strip()}))
    if not args.depths or args.depths[0] < 1:
        p.error("--depths: need positive integers")
    if args.repeats < 1:
        p.error("--repeats: need >= 1")
    return args


# --------------------------------------------------------------------------------------
# The baseline: one jitted single-network function per depth, a Python loop over seeds.
# --------------------------------------------------------------------------------------

def _fro(x: jax.Array, axes) -> jax.Array:
    return jnp.sqrt(jnp.sum(x * x, axis=axes))


def make_single_network_fn(spec_d: MLPSpec, batch: int, input_std: float, sigma_w: float,
                           sigma_b: float):
    """``key -> per-layer norms`` of one depth-``spec_d.depth`` network, jitted.

    Samples weights and data exactly like :func:`gradstudy.families.mlp.init_and_probe`.
    """
    model = MLP(spec_d)
    dtype = jnp.dtype(spec_d.dtype)
    depth = spec_d.depth

    def one(key):
        k_init, k_x, k_t = jax.random.split(key, 3)
        params = apply_gains(init_params(spec_d.static_key(), k_init),
                             spec_d.replace(sigma_w=sigma_w).kernel_scales(), sigma_b)
        x = input_std * jax.random.normal(k_x, (batch, spec_d.input_dim), dtype)
        t = jax.random.normal(k_t, (batch, spec_d.out_dim), dtype)
        pert = zero_perturbation(batch, spec_d.width, dtype, depth, dense=False)

        def loss(p, e):
            y, _ = model.apply({"params": p}, x, e)
            return mse_loss(y, t)

        g_params, g_pert = jax.grad(loss, argnums=(0, 1))(params, pert)
        k1 = g_params["input_layer"]["dense"]["kernel"]
        b1 = g_params["input_layer"]["dense"]["bias"]
        w_norm, b_norm = [_fro(k1, (0, 1))[None]], [_fro(b1, (0,))[None]]
        if depth > 1:
            w_norm.append(_fro(g_params["hidden"]["dense"]["kernel"], (1, 2)))
            b_norm.append(_fro(g_params["hidden"]["dense"]["bias"], (1,)))
        return {
            "weight_grad_norm": jnp.concatenate(w_norm),
            "bias_grad_norm": jnp.concatenate(b_norm),
            "backprop_norm": _fro(g_pert["h"], (1, 2)),
        }

    return jax.jit(one)


def run_loop(fns: dict, key_list: list) -> dict:
    """The whole baseline sweep: every depth, every seed; blocks on all results."""
    out = {d: [fn(k) for k in key_list] for d, fn in fns.items()}
    return jax.block_until_ready(out)


# --------------------------------------------------------------------------------------
# FLOP accounting (multiply-add = 2 FLOPs; elementwise work not counted).
# --------------------------------------------------------------------------------------

def layer_fan_in(spec: MLPSpec, l: int) -> int:
    """Fan-in of layer l (1-based): the input layer reads ``in_dim``, the rest ``width``."""
    return spec.input_dim if l == 1 else spec.width


def loop_flops(spec: MLPSpec, depths, batch: int, seeds: int) -> int:
    """Useful FLOPs: per (seed, depth d) forward through d layers + readout, backward 2x."""
    B, w, out = batch, spec.width, spec.out_dim
    total = 0
    for d in depths:
        fwd = sum(2 * B * layer_fan_in(spec, l) * w for l in range(1, d + 1)) + 2 * B * w * out
        total += 3 * fwd
    return seeds * total


def engine_flops(spec: MLPSpec, depths, batch: int, seeds: int) -> dict:
    """FLOPs of gradstudy.families.mlp.gradient_norms as written, per term, for all seeds.

    Mirrors its segment loop: forward once through L = max(depths) layers (with the Gram
    a aᵀ of every dense input), a readout + its gradient at every requested depth, then
    segment j (layers [d_{j-1}, d_j)) is pulled back for the stacked cotangents of depths
    d_j..d_n only.  "wasted" is work on a (depth d, layer l) pair with l > d.
    """
    B, w, out = batch, spec.width, spec.out_dim
    L, n = depths[-1], len(depths)
    bounds = (0,) + tuple(depths)
    f = {"forward_layers": 0, "forward_gram": 0, "readout": 0, "backward_input_grad": 0,
         "backward_gram": 0, "wasted": 0}
    for l in range(1, L + 1):
        f["forward_layers"] += 2 * B * layer_fan_in(spec, l) * w
        f["forward_gram"] += 2 * B * B * layer_fan_in(spec, l)
    # readout forward, its input-gradient and its weight-gradient, once per depth
    f["readout"] = n * 3 * 2 * B * w * out
    for j in range(n):
        rows = depths[j:]  # the cotangent stack entering segment j
        for l in range(bounds[j] + 1, bounds[j + 1] + 1):
            for d in rows:
                # input gradient (dL/da = g Wᵀ), then g gᵀ and Σ (a aᵀ)⊙(g gᵀ)
                work = 2 * B * w * layer_fan_in(spec, l) + 2 * B * B * w + 2 * B * B
                f["backward_input_grad"] += 2 * B * w * layer_fan_in(spec, l)
                f["backward_gram"] += 2 * B * B * w + 2 * B * B
                if l > d:
                    f["wasted"] += work
    f = {k: v * seeds for k, v in f.items()}
    f["total"] = sum(v for k, v in f.items() if k != "wasted")
    return f


def masking_wasted_fraction(depths) -> float:
    """Layer work a masking design wastes: every depth run through all L layers."""
    L = depths[-1]
    return sum(L - d for d in depths) / (len(depths) * L)


# --------------------------------------------------------------------------------------
# Timing helpers.
# --------------------------------------------------------------------------------------

def clock(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def make_matmul(seeds: int, batch: int, width: int, dtype):
    """A warmed-up jitted vmapped (S, B, w) x (S, w, w) matmul (no arguments), its FLOPs."""
    ka, kb = jax.random.split(jax.random.PRNGKey(1))
    a = jax.random.normal(ka, (seeds, batch, width), dtype)
    b = jax.random.normal(kb, (seeds, width, width), dtype)
    mm = jax.jit(jax.vmap(jnp.matmul))
    for _ in range(3):
        jax.block_until_ready(mm(a, b))
    return (lambda: mm(a, b)), 2 * seeds * batch * width * width


# --------------------------------------------------------------------------------------

def check_agreement(engine_out: dict, loop_out: dict, depths) -> float:
    """Max relative difference; raises if any norm differs by more than RTOL."""
    worst = 0.0
    for name in ("backprop_norm", "weight_grad_norm", "bias_grad_norm"):
        eng = np.asarray(engine_out[name])[0]  # (S, n, L): gain point 0
        for j, d in enumerate(depths):
            ref = np.stack([np.asarray(r[name]) for r in loop_out[d]])  # (S, d)
            got = eng[:, j, :d]
            if not np.all(np.isnan(eng[:, j, d:])):
                raise SystemExit(f"FAIL: engine {name} for depth {d} not NaN beyond layer {d}")
            try:
                np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
            except AssertionError as err:
                raise SystemExit(f"FAIL: engine and loop disagree on {name}, depth {d}:\n{err}")
            rel = np.max(np.abs(got - ref) / np.abs(ref))
            worst = max(worst, float(rel))
    return worst


class Problem(NamedTuple):
    """The benchmarked sweep: the max-depth network, its dtype, the input scale, the seeds'
    keys (array and list) and the one gain point the program scales by."""

    spec: MLPSpec
    dtype: np.dtype
    input_std: float
    keys: jax.Array
    key_list: list
    sigma_w: np.ndarray
    sigma_b: np.ndarray


class Cold(NamedTuple):
    """One method's compile time, first (cold) run time and first results."""

    compile_s: float
    first_s: float
    out: Any


class Timings(NamedTuple):
    """Steady-state times of every method (per repeat) and of the matmul reference; the
    loop's list is empty without ``--jax-loop``, ``torch_times`` maps a peer to its list."""

    engine_times: list
    loop_times: list
    mm_times: list
    mm_flops: int
    torch_times: dict

    @property
    def engine_s(self) -> float:
        return statistics.median(self.engine_times)

    @property
    def loop_s(self) -> float:
        return statistics.median(self.loop_times)

    @property
    def mm_s(self) -> float:
        return statistics.median(self.mm_times)

    @property
    def matmul_gflops(self) -> float:
        return self.mm_flops / self.mm_s / 1e9


def make_problem(args: argparse.Namespace) -> Problem:
    """The problem from the command line; logs it and the machine."""
    depths, L = args.depths, args.depths[-1]
    spec = MLPSpec(width=args.width, depth=L, activation=args.activation, init="gaussian",
                   sigma_w=args.sigma_w, sigma_b=args.sigma_b)
    dtype = np.dtype(spec.dtype)
    log(f"jax {jax.__version__} backend={jax.default_backend()} "
        f"device={jax.devices()[0].device_kind} "
        f"cpus={os.cpu_count()} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    log(f"problem: width={args.width} batch={args.batch} seeds={args.seeds} depths={depths} "
        f"activation={args.activation} σ_w={args.sigma_w} σ_b={args.sigma_b}")
    keys = seed_keys(args.base_seed, args.seeds)
    key_list = [keys[s] for s in range(args.seeds)]
    # the program samples from spec.static_key() and scales by the point's kernel_scales()
    sigma_w = np.asarray([spec.kernel_scales()], dtype)
    sigma_b = np.asarray([spec.sigma_b], dtype)
    jax.block_until_ready((keys, key_list))
    return Problem(spec, dtype, 1.0, keys, key_list, sigma_w, sigma_b)


def cold_engine(args: argparse.Namespace, problem: Problem):
    """gradstudy's program compiled, and its first (cold) run: (program, :class:`Cold`)."""
    spec, depths = problem.spec, args.depths
    log("engine: compiling ...")
    # devices and networks per chunk as a sweep chooses them within the memory budget
    key = spec.static_key()
    working, output, what = family_of(key).memory(key, depths, args.batch, False)
    devices, chunk = plan_devices(working, output, args.seeds, what)
    log(f"engine: {chunk} of {args.seeds} networks per vmapped chunk on each of "
        f"{len(devices)} device(s) (memory budget)")
    program = compiled_program.__wrapped__(key, depths, args.batch, problem.input_std, chunk,
                                           devices=devices)
    t0 = time.perf_counter()
    # lower() traces: included, as the first call of a sweep pays it
    engine = program.lower(problem.keys, problem.sigma_w, problem.sigma_b).compile()
    compile_s = time.perf_counter() - t0
    out, first_s = clock(engine, problem.keys, problem.sigma_w, problem.sigma_b)
    log(f"engine: compile {compile_s:.2f}s, first run {first_s:.3f}s")
    return engine, Cold(compile_s, first_s, out)


def cold_loop(args: argparse.Namespace, problem: Problem):
    """One single-network function per depth compiled, and the first (cold) loop over the
    seeds: (functions by depth, :class:`Cold` with the total compile time)."""
    log("loop: compiling one single-network function per depth ...")
    loop_fns, compile_s = {}, {}
    for d in args.depths:
        fn = make_single_network_fn(problem.spec.replace(depth=d), args.batch,
                                    problem.input_std, args.sigma_w, args.sigma_b)
        t0 = time.perf_counter()
        loop_fns[d] = fn.lower(problem.key_list[0]).compile()
        compile_s[d] = time.perf_counter() - t0
    out, first_s = clock(run_loop, loop_fns, problem.key_list)
    compile_total = sum(compile_s.values())
    log(f"loop: compile {compile_total:.2f}s total "
        f"({', '.join(f'{d}:{t:.2f}' for d, t in compile_s.items())}), "
        f"first loop {first_s:.3f}s")
    return loop_fns, Cold(compile_total, first_s, out)


# --------------------------------------------------------------------------------------
# The PyTorch peers (torch_sweep.py): checked on the engine's own weights and data, timed
# on their own (drawn by torch inside every timed call, as the engine draws its own).
# --------------------------------------------------------------------------------------

def draw_networks(problem: Problem, batch: int) -> dict:
    """Every seed's max-depth network and data as the engine draws them (numpy)."""
    spec = problem.spec
    draw = jax.jit(jax.vmap(lambda k: sample_network(spec, k, batch, problem.input_std)))
    params, x, t = jax.tree.map(np.asarray, draw(problem.keys))
    hidden = params.get("hidden", {"dense": {
        "kernel": np.zeros((len(x), 0, spec.width, spec.width), problem.dtype),
        "bias": np.zeros((len(x), 0, spec.width), problem.dtype)}})["dense"]
    return {"w_in": params["input_layer"]["dense"]["kernel"],
            "b_in": params["input_layer"]["dense"]["bias"],
            "w_hidden": hidden["kernel"], "b_hidden": hidden["bias"],
            "w_out": params["readout"]["dense"]["kernel"],
            "b_out": params["readout"]["dense"]["bias"], "x": x, "t": t}


def torch_sizes(args: argparse.Namespace, problem: Problem, ts):
    """The ``torch_sweep.Sizes`` the peers draw in their timed calls; SystemExit if
    torch's kernel scales (σ_w/√fan_in per layer, written for the ``gaussian`` init) are
    not the engine's."""
    spec = problem.spec
    sizes = ts.Sizes(args.seeds, args.batch, spec.input_dim, spec.width, spec.out_dim,
                     spec.depth, args.sigma_w, args.sigma_b, problem.input_std)
    try:
        np.testing.assert_allclose(ts.kernel_stds(sizes), spec.kernel_scales(), rtol=1e-6)
    except AssertionError as err:
        raise SystemExit(f"FAIL: torch peers draw kernels unlike the engine:\n{err}")
    return sizes


def cold_torch(args: argparse.Namespace, problem: Problem, engine_out: dict):
    """Every PyTorch peer's first call (setup, compilation and its own sampling included:
    its cold time), then a call on the engine's weights and data, checked against the
    engine's results: ({peer: no-argument function, drawing its own networks},
    {peer: first seconds}, worst relative difference); ``({}, {}, 0.0)`` when torch is
    absent or not wanted."""
    torch = torch_peers.load_torch(args.torch, args.torch_threads)
    if torch is None:
        return {}, {}, 0.0
    import torch_sweep as ts

    if args.activation not in ts.ACTIVATIONS:
        log(f"torch peers: skipped, activation {args.activation!r} not written for them "
            f"(allowed: {', '.join(ts.ACTIVATIONS)})")
        return {}, {}, 0.0
    torch.manual_seed(args.base_seed)  # the peers' own networks, reproducibly
    sizes = torch_sizes(args, problem, ts)
    nets = ts.networks_from_numpy(**draw_networks(problem, args.batch))
    want = {k: np.asarray(engine_out[k])[0] for k in ts.NAMES}  # gain point 0
    gram = ts.use_gram(args.width, args.batch)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; hand-written weight "
        f"norms by {'the Gram identity' if gram else 'forming aᵀg'}; timed calls draw "
        f"their own weights and data")
    names = [n for n in ts.PEERS if n != "compiled" or args.torch_compile]
    fns, first, worst = {}, {}, 0.0
    for name in names:
        log(f"torch {name}: first call ...")
        t0 = time.perf_counter()
        fns[name] = ts.make_peer(name, sizes, args.depths, args.activation, gram)
        fns[name]()  # draws its own networks, as every timed call does
        first[name] = time.perf_counter() - t0
        # the same code on the engine's networks: its numbers must be the engine's
        rel = ts.max_rel_diff(name, ts.to_numpy(fns[name](nets)), want, args.depths, RTOL)
        worst = max(worst, rel)
        log(f"torch {name}: first call {first[name]:.2f}s, agrees with the engine "
            f"(max relative difference {rel:.2e})")
    return fns, first, worst


def torch_fields(args: argparse.Namespace, spec: MLPSpec, first: dict, t: Timings,
                 engine_cold_s: float) -> dict:
    """The PyTorch comparison (torch_peers.comparison_fields) and its FLOP rates."""
    if not first:
        return {}
    import torch

    peers = {k: torch_peers.PeerTiming(first[k], t.torch_times[k]) for k in first}
    out = torch_peers.comparison_fields(peers, t.engine_s, engine_cold_s)
    useful = loop_flops(spec, args.depths, args.batch, args.seeds)
    bmm = torch_peers.torch_bmm_gflops(torch, args.seeds, args.batch, args.width)
    out.update({
        "torch_best_gflops": useful / out["torch_best_s"] / 1e9,
        "torch_best_fraction_of_matmul": useful / out["torch_best_s"] / 1e9 / t.matmul_gflops,
        "torch_matmul_gflops": bmm,
        "torch_weight_norms": "gram" if args.width >= args.batch else "direct",
        **torch_peers.torch_version(torch),
    })
    return out


# --------------------------------------------------------------------------------------

def steady_state(args: argparse.Namespace, problem: Problem, engine, loop_fns,
                 torch_fns: dict) -> Timings:
    """One warm-up each, then interleaved timed repeats of every method and a matmul."""
    engine_args = (problem.keys, problem.sigma_w, problem.sigma_b)
    clock(engine, *engine_args)
    if loop_fns:
        clock(run_loop, loop_fns, problem.key_list)
    # the first calls of the torch peers were their warm-up
    # the matmul reference is timed between the repeats too, so that load from other
    # processes on a shared machine hits it as it hits the methods
    mm, mm_flops = make_matmul(args.seeds, args.batch, args.width, problem.dtype)
    mm_calls = max(10, -(-30 // args.repeats))
    t = Timings([], [], [], mm_flops, {k: [] for k in torch_fns})
    for r in range(args.repeats):
        t.engine_times.append(clock(engine, *engine_args)[1])
        if loop_fns:
            t.loop_times.append(clock(run_loop, loop_fns, problem.key_list)[1])
        for name, fn in torch_fns.items():
            t.torch_times[name].append(torch_peers.timed(fn)[1])
        t.mm_times.extend(clock(mm)[1] for _ in range(mm_calls))
        log(f"repeat {r + 1}/{args.repeats}: engine {t.engine_times[-1]:.3f}s"
            + (f" loop {t.loop_times[-1]:.3f}s" if loop_fns else "")
            + "".join(f" torch {k} {v[-1]:.3f}s" for k, v in t.torch_times.items())
            + f" matmul {statistics.median(t.mm_times[-mm_calls:]) * 1e3:.2f}ms")
    log(f"matmul ({args.seeds},{args.batch},{args.width})x({args.seeds},{args.width},"
        f"{args.width}): {t.mm_s * 1e3:.2f} ms, {t.matmul_gflops:.1f} GFLOP/s")
    return t


def speed_fields(engine: Cold, loop: Cold | None, t: Timings) -> dict:
    """The result's times and speed-ups (the loop's only with ``--jax-loop``)."""
    engine_total_s = engine.compile_s + engine.first_s
    out = {
        "benchmark": "sweep_seed_x_depth",
        "engine_s": t.engine_s,
        "engine_cold_s": engine_total_s,
        "engine_compile_s": engine.compile_s,
        "engine_first_run_s": engine.first_s,
        "engine_total_s": engine_total_s,
        "engine_min_s": min(t.engine_times),
        "engine_times_s": t.engine_times,
    }
    if loop is None:
        return out
    loop_total_s = loop.compile_s + loop.first_s
    return {**out,
            "loop_s": t.loop_s,
            "speedup_vs_loop": t.loop_s / t.engine_s,
            "loop_compile_s": loop.compile_s,
            "loop_first_run_s": loop.first_s,
            "loop_total_s": loop_total_s,
            "speedup_vs_loop_total": loop_total_s / engine_total_s,
            "loop_min_s": min(t.loop_times),
            "speedup_vs_loop_min": min(t.loop_times) / min(t.engine_times),
            "loop_times_s": t.loop_times}


def flop_fields(args: argparse.Namespace, spec: MLPSpec, t: Timings) -> dict:
    """The result's FLOP counts and rates, against the matmul reference."""
    useful = loop_flops(spec, args.depths, args.batch, args.seeds)
    eng = engine_flops(spec, args.depths, args.batch, args.seeds)
    useful_gflops = useful / t.engine_s / 1e9
    out = {
        "useful_gflop": useful / 1e9,
        "useful_gflops": useful_gflops,
        "matmul_s": t.mm_s,
        "matmul_calls": len(t.mm_times),
        "matmul_gflops": t.matmul_gflops,
        "fraction_of_matmul": useful_gflops / t.matmul_gflops,
        "engine_flops": eng["total"],
        "engine_flops_breakdown": {k: v for k, v in eng.items() if k not in ("total",)},
        "loop_flops": useful,
        "engine_flop_ratio_vs_loop": eng["total"] / useful,
        "engine_gflops": eng["total"] / t.engine_s / 1e9,
        "engine_fraction_of_matmul": eng["total"] / t.engine_s / 1e9 / t.matmul_gflops,
        "wasted_flop_fraction": eng["wasted"] / eng["total"],
        "masking_wasted_flop_fraction": masking_wasted_fraction(args.depths),
    }
    if t.loop_times:
        out["loop_gflops"] = useful / t.loop_s / 1e9
        out["loop_fraction_of_matmul"] = useful / t.loop_s / 1e9 / t.matmul_gflops
    return out


def setup_fields(args: argparse.Namespace, spec: MLPSpec, worst: float) -> dict:
    """The result's problem, agreement and machine description."""
    return {
        "max_rel_diff": worst,
        "rtol": RTOL,
        "width": args.width,
        "batch": args.batch,
        "seeds": args.seeds,
        "depths": list(args.depths),
        "gain_points": 1,
        "activation": args.activation,
        "init": "gaussian",
        "sigma_w": args.sigma_w,
        "sigma_b": args.sigma_b,
        "dtype": spec.dtype,
        "repeats": args.repeats,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "python": platform.python_version(),
        # others' load on a shared machine: eager PyTorch suffers most from it (its
        # threads wait for each other at every small op)
        "load_avg_1m_end": os.getloadavg()[0],
        # a persistent compilation cache (if the library turns one on) makes "cold" warm
        "jax_compilation_cache_dir": jax.config.jax_compilation_cache_dir,
    }


def main(argv=None) -> dict:
    default_xla_flags()  # first: XLA reads XLA_FLAGS when the backend initialises
    args = parse_args(argv)
    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    problem = make_problem(args)
    engine, engine_cold = cold_engine(args, problem)
    worst = None  # the JAX loop's agreement; None without it
    loop_fns, loop_cold = cold_loop(args, problem) if args.jax_loop else ({}, None)
    if loop_cold is not None:  # agreement before timing
        worst = check_agreement(engine_cold.out, loop_cold.out, args.depths)
        log(f"agreement: OK (max relative difference {worst:.2e}, rtol {RTOL})")
        loop_cold = loop_cold._replace(out=None)
    torch_fns, torch_first, torch_worst = cold_torch(args, problem, engine_cold.out)
    engine_cold = engine_cold._replace(out=None)

    timings = steady_state(args, problem, engine, loop_fns, torch_fns)
    result = {**speed_fields(engine_cold, loop_cold, timings),
              **torch_fields(args, problem.spec, torch_first, timings,
                             engine_cold.compile_s + engine_cold.first_s),
              **flop_fields(args, problem.spec, timings),
              **setup_fields(args, problem.spec, worst),
              "wall_s": time.perf_counter() - t_start, "load_avg_1m_start": load_start}
    if torch_first:
        result["torch_max_rel_diff"] = torch_worst
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
