"""The benchmark's own agreement check (engine vs a per-configuration jax.grad loop) at
tiny shapes: the speed numbers it prints are only meaningful if this holds."""

import importlib.util
import json
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sweep.py"


def test_benchmark_engine_agrees_with_loop(capsys):
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--width", "8", "--batch", "4", "--seeds", "2", "--depths", "2,4",
                      "--repeats", "1"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("engine_s", "loop_s", "speedup_vs_loop", "useful_gflops", "matmul_gflops",
                "fraction_of_matmul", "wasted_flop_fraction"):
        assert key in line and np.isfinite(line[key])
    # main() raises SystemExit on disagreement; here the max deviation is float32 rounding
    assert out["max_rel_diff"] < 1e-4
    # depths 2 and 4 of a 4-layer stack: a masking design wastes (4-2)/(2*4) of the layers
    assert line["masking_wasted_flop_fraction"] == 0.25 and line["wasted_flop_fraction"] == 0


def test_train_benchmark_agrees_with_its_loop(capsys):
    path = BENCH.with_name("bench_train.py")
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # main() asserts the engine's and the loop's losses agree before printing
    assert bench.main(["--steps", "3", "--widths", "8", "--depth", "3", "--seeds", "1",
                       "--rates", "0.01,0.1", "--batch", "8"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("engine_s", "loop_s", "speedup_vs_loop", "useful_gflops", "matmul_gflops",
                "fraction_of_matmul", "steps_per_s", "engine_warm_s", "loop_warm_s",
                "speedup_vs_loop_warm", "bare_sgd_gflops", "warm_fraction_of_bare"):
        assert key in line and np.isfinite(line[key])
    assert line["runs"] == 2 and line["width"] == 8
