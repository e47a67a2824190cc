"""The benchmarks' own agreement checks at tiny shapes: the engine against a per-configuration
jax.grad loop and against the PyTorch peers (skipped without torch).  The speed numbers
they print are only meaningful if these hold; the JSON fields are checked to be the
ratios they claim to be."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sweep.py"
TINY_SWEEP = ["--width", "8", "--seeds", "2", "--depths", "2,3", "--repeats", "1"]
TINY_TRAIN = ["--steps", "3", "--widths", "8", "--depth", "3", "--seeds", "2",
              "--rates", "0.01,0.1", "--batch", "8", "--repeats", "1"]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # also puts benchmarks/ on sys.path (torch_*.py)
    return module


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_benchmark_engine_agrees_with_loop(capsys):
    out = load("bench_sweep").main(["--width", "8", "--batch", "4", "--seeds", "2",
                                    "--depths", "2,4", "--repeats", "1", "--no-torch"])
    line = last_json(capsys)
    for key in ("engine_s", "loop_s", "speedup_vs_loop", "useful_gflops", "matmul_gflops",
                "fraction_of_matmul", "wasted_flop_fraction"):
        assert key in line and np.isfinite(line[key])
    assert not any(k.startswith("torch") for k in line)  # --no-torch
    # main() raises SystemExit on disagreement; here the max deviation is float32 rounding
    assert out["max_rel_diff"] < 1e-4
    # depths 2 and 4 of a 4-layer stack: a masking design wastes (4-2)/(2*4) of the layers
    assert line["masking_wasted_flop_fraction"] == 0.25 and line["wasted_flop_fraction"] == 0


def check_torch_fields(line: dict, peers: tuple) -> None:
    """The comparison fields exist and are the ratios and minima they claim to be."""
    steady = {p: line[f"torch_{p}_s"] for p in peers}
    first = {p: line[f"torch_{p}_first_s"] for p in peers}
    assert all(np.isfinite(v) and v > 0 for v in (*steady.values(), *first.values()))
    assert line["torch_best_peer"] == min(steady, key=steady.get)
    assert line["torch_best_s"] == min(steady.values())
    assert line["torch_best_cold_s"] == first[line["torch_best_peer"]]
    assert line["torch_fastest_cold_s"] == min(first.values())
    assert math.isclose(line["speedup_vs_torch"], line["torch_best_s"] / line["engine_s"])
    assert math.isclose(line["speedup_vs_torch_cold"],
                        line["torch_fastest_cold_s"] / line["engine_cold_s"])
    assert line["torch_max_rel_diff"] < 1e-4
    assert line["torch_samples_weights"] is True  # the timed calls draw their own networks
    for p in peers:
        assert line[f"torch_{p}_s"] == float(np.median(line[f"torch_{p}_times_s"]))


@pytest.mark.parametrize("batch, mode, extra", [
    (4, "gram", []),                   # width 8 >= batch 4: the Gram identity, compiled too
    (16, "direct", ["--no-compile"]),  # width 8 < batch 16: aᵀg formed
])
def test_torch_sweep_peers_agree_with_engine(capsys, batch, mode, extra):
    pytest.importorskip("torch")
    load("bench_sweep").main(TINY_SWEEP + ["--batch", str(batch), "--no-jax-loop"] + extra)
    line = last_json(capsys)
    peers = ("autograd_loop", "func_vmap", "handwritten") + (() if extra else ("compiled",))
    assert line["torch_weight_norms"] == mode
    assert "loop_s" not in line and line["max_rel_diff"] is None  # --no-jax-loop
    check_torch_fields(line, peers)
    assert math.isclose(line["engine_cold_s"],
                        line["engine_compile_s"] + line["engine_first_run_s"])


def test_torch_sweep_check_can_fail():
    """The agreement check raises on a peer off by more than rtol, naming it."""
    pytest.importorskip("torch")
    load("bench_sweep")
    import torch_sweep

    depths = (2, 3)
    want = {k: np.full((2, 2, 3), 1.0) for k in torch_sweep.NAMES}
    for k in want:
        want[k][:, 0, 2] = np.nan
    got = {k: v.copy() for k, v in want.items()}
    assert torch_sweep.max_rel_diff("p", got, want, depths, 1e-3) == 0
    got["bias_grad_norm"][1, 1, 2] *= 1.01
    with pytest.raises(SystemExit, match="peer p .* bias_grad_norm, depth 3"):
        torch_sweep.max_rel_diff("p", got, want, depths, 1e-3)


def _std_close(tensor, want: float, rel: float) -> None:
    got = float(tensor.double().std())
    assert abs(got / want - 1) < rel, (tuple(tensor.shape), got, want)


def test_torch_sweep_samples_the_engines_distributions():
    """The networks the timed sweep peers draw: the engine's kernel scales per layer (input
    layer, hidden, readout: σ_w/√fan_in, from MLPSpec), biases σ_b·N(0,1), x ~ N(0,
    input_std²), t ~ N(0,1); a fresh draw per call; the nn.Linear layout on request."""
    torch = pytest.importorskip("torch")
    load("bench_sweep")
    import torch_sweep as ts

    from gradstudy.families.mlp import MLPSpec

    sizes = ts.Sizes(seeds=4, batch=64, in_dim=50, width=200, out_dim=10, depth=3,
                     sigma_w=1.5, sigma_b=0.5, input_std=2.0)
    spec = MLPSpec(width=200, depth=3, in_dim=50, out_dim=10, sigma_w=1.5, sigma_b=0.5)
    np.testing.assert_allclose(ts.kernel_stds(sizes), spec.kernel_scales(), rtol=1e-6)
    torch.manual_seed(0)
    for transposed in (False, True):
        nets = ts.sample_networks(sizes, transposed)
        assert [tuple(w.shape) for w in nets.W] == [(4, 50, 200), (4, 200, 200), (4, 200, 200)]
        assert tuple(nets.W_out.shape) == (4, 200, 10) and len(nets.b) == 3
        # independent of kernel_stds: σ_w/√fan_in written out
        _std_close(nets.W[0], 1.5 / 50**0.5, 0.02)
        _std_close(nets.W[2], 1.5 / 200**0.5, 0.02)
        _std_close(nets.W_out, 1.5 / 200**0.5, 0.05)
        _std_close(torch.cat([b.flatten() for b in nets.b]), 0.5, 0.1)
        _std_close(nets.x, 2.0, 0.05)
        _std_close(nets.t, 1.0, 0.1)
        assert nets.W[1].transpose(1, 2).is_contiguous() == transposed
    # every call without networks draws new ones; with networks it is deterministic
    peer = ts.make_peer("handwritten", sizes._replace(sigma_b=0.0), (2, 3), "tanh", True)
    a, b = peer()["backprop_norm"][:, 1], peer()["backprop_norm"][:, 1]  # depth 3: no NaN
    assert torch.isfinite(a).all() and torch.isfinite(b).all() and not torch.equal(a, b)
    nets = ts.sample_networks(sizes)
    assert torch.equal(peer(nets)["weight_grad_norm"][:, 1], peer(nets)["weight_grad_norm"][:, 1])


def test_torch_sweep_refuses_other_kernel_scales():
    """A peer drawing kernels unlike the engine (here: σ_w 2 for an engine at σ_w 1) stops
    the benchmark before timing."""
    pytest.importorskip("torch")
    bench = load("bench_sweep")
    import torch_sweep as ts

    args = bench.parse_args(TINY_SWEEP)
    problem = bench.Problem(bench.MLPSpec(width=8, depth=3), np.dtype("float32"), 1.0,
                            None, [], None, None)
    assert bench.torch_sizes(args, problem, ts).width == 8
    args.sigma_w = 2.0
    with pytest.raises(SystemExit, match="draw kernels unlike the engine"):
        bench.torch_sizes(args, problem, ts)


def test_without_torch_one_line_on_stderr(monkeypatch, capsys):
    """Absent torch is one line; the rest of a run is as with --no-torch (tests above)."""
    peers = load("bench_sweep").torch_peers
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert peers.load_torch() is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch is not installed" in err[0] and ".[bench]" in err[0]


def test_train_benchmark_agrees_with_its_loop(capsys):
    bench = load("bench_train")
    # main() checks the engine's and the loop's losses agree before printing
    assert bench.main(TINY_TRAIN + ["--no-torch"]) == 0
    line = last_json(capsys)
    for key in ("engine_s", "engine_cold_s", "loop_s", "loop_cold_s", "speedup_vs_loop",
                "speedup_vs_loop_cold", "useful_gflops", "matmul_gflops",
                "fraction_of_matmul", "steps_per_s", "bare_sgd_gflops", "fraction_of_bare"):
        assert key in line and np.isfinite(line[key])
    assert line["runs"] == 4 and line["width"] == 8 and line["batch"] == 8
    assert math.isclose(line["speedup_vs_loop"], line["loop_s"] / line["engine_s"])
    assert not any(k.startswith("torch") for k in line)


def test_torch_train_peers_agree_with_engine(capsys):
    pytest.importorskip("torch")
    bench = load("bench_train")
    # main() raises SystemExit if any peer's first losses differ from the engine's
    assert bench.main(TINY_TRAIN + ["--no-jax-loop", "--torch-loop-runs", "3"]) == 0
    line = last_json(capsys)
    check_torch_fields(line, ("stacked", "func_ensemble", "per_run_loop"))
    assert line["torch_per_run_loop_timed_runs"] == 3
    assert "loop_s" not in line


def test_torch_train_initialises_like_the_engine():
    """The timed training peers' own start: He normal per layer (σ_w·√(2/fan_in), the
    engine's kernel scales), σ_b·N(0,1) biases, indices in range; fresh per call."""
    torch = pytest.importorskip("torch")
    load("bench_train")
    import torch_train as tt

    from gradstudy.families.mlp import MLPSpec

    x, y = np.zeros((500, 40)), np.zeros(500, int)
    p = tt.problem_from_numpy([0.01, 0.1], x, y, (40, 300, 300, 10), seeds=4, steps=5,
                              batch=32, sigma_w=1.2, sigma_b=0.3)
    spec = MLPSpec(width=300, depth=2, in_dim=40, init="he_normal", sigma_w=1.2)
    stds = tt.he_stds(p)
    np.testing.assert_allclose([stds[0], stds[1], stds[-1]], spec.kernel_scales(), rtol=1e-6)
    torch.manual_seed(0)
    init = tt.sample_init(p)
    assert [tuple(w.shape) for w in init.W] == [(4, 40, 300), (4, 300, 300), (4, 300, 10)]
    _std_close(init.W[0], 1.2 * (2 / 40) ** 0.5, 0.02)
    _std_close(init.W[1], 1.2 * (2 / 300) ** 0.5, 0.02)
    _std_close(init.W[2], 1.2 * (2 / 300) ** 0.5, 0.05)
    _std_close(torch.cat([b.flatten() for b in init.b]), 0.3, 0.1)
    assert tuple(init.idx.shape) == (4, 5, 32)
    assert int(init.idx.min()) >= 0 and int(init.idx.max()) < 500
    assert not torch.equal(init.W[1], tt.sample_init(p).W[1])
    assert tuple(tt.sample_init(p, 1).idx.shape) == (1, 5, 32)


def test_train_check_can_fail():
    bench = load("bench_train")
    want = np.array([[2.3, 2.2, 2.1, 2.0]])
    assert bench.check_losses("x", want * (1 + 1e-4), want) < 1e-3
    with pytest.raises(SystemExit, match="x and the engine disagree"):
        bench.check_losses("x", want * np.array([1, 1, 1.01, 1]), want)
    assert list(bench.loop_runs(64, 8)) == [0, 9, 18, 27, 36, 45, 54, 63]
