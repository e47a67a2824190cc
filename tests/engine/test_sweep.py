"""Tests of gradstudy.engine and gradstudy.results.

The vmapped (seeds) / lax.map'ed (gains) / grouped (programs) sweep is compared with a plain
Python loop over (point, seed) calling ``init_and_probe`` with the same keys; the cache is
read back with plain xarray; the exploding regime must give inf/NaN, not an exception.
"""

import json
import math
import os
import stat

import jax
import numpy as np
import pytest
import xarray as xr

import gradstudy.engine._sweep
import gradstudy.results
from gradstudy import MLPSpec, Sweep
from gradstudy._seeds import seed_keys
from gradstudy.engine import run_cached, run_sweep_arrays
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import init_and_probe
from gradstudy.results import write_atomic

WIDTH, SEEDS, BATCH, DEPTHS = 6, 3, 4, (2, 4)
POINTS = (
    MLPSpec(width=WIDTH, depth=1, out_dim=2, activation="tanh", sigma_w=1.0),
    MLPSpec(width=WIDTH, depth=1, out_dim=2, activation="relu", sigma_w=1.4, sigma_b=0.2),
    MLPSpec(width=WIDTH, depth=1, out_dim=2, activation="tanh", sigma_w=math.sqrt(2.0)),
    # He init N(0, 2/fan_in) at gain 1 is the Gaussian init at σ_w = √2: the point above
    MLPSpec(width=WIDTH, depth=1, out_dim=2, activation="tanh", init="he_normal"),
)
LABELS = ("tanh_a", "relu", "tanh_b", "tanh_he")
VAR_FACTOR = {"gaussian": 1.0, "he_normal": 2.0}  # fan_in · Var W at unit gain
PER_LAYER = ("weight_grad_norm", "bias_grad_norm", "backprop_norm")
PER_DEPTH = ("loss", "input_grad_norm", "readout_grad_norm")
FORWARD = ("preact_mean", "preact_q")


def _sweep(**kw):
    args = dict(points=POINTS, depths=DEPTHS, seeds=SEEDS, batch=BATCH, base_seed=3,
                labels=LABELS, gain_chunk=1)
    args.update(kw)
    return Sweep(**args)


@pytest.fixture(scope="module")
def swept():
    sweep = _sweep()
    return sweep, run_sweep_arrays(sweep, progress=False)


@pytest.fixture(scope="module")
def loop_reference():
    """Per (point, seed): ``init_and_probe`` on one network at a time with the sweep's keys.

    Gains are passed as traced kernel scales worked out by hand (Gaussian/He init: every
    kernel entry has std σ_w·√(factor/fan_in), and fan_in = WIDTH for all three parts
    here), so the tanh points share one compiled reference program."""
    sweep = _sweep()
    keys = seed_keys(sweep.base_seed, sweep.seeds)
    one = jax.jit(init_and_probe, static_argnums=(0, 1, 2, 3))
    out = {}
    for i, p in enumerate(sweep.points):
        spec = p.replace(depth=sweep.max_depth, sigma_w=1.0, sigma_b=0.0, init="gaussian")
        scales = np.full(3, p.sigma_w * math.sqrt(VAR_FACTOR[p.init] / WIDTH), np.float32)
        for s in range(sweep.seeds):
            r = jax.device_get(one(spec, sweep.depths, sweep.batch, float(sweep.input_std),
                                   keys[s], scales, np.float32(p.sigma_b)))
            for name, value in r.items():
                fill = 0 if name.endswith("_status") else np.nan
                out.setdefault(name, np.full((len(sweep.points), sweep.seeds) + value.shape,
                                             fill, value.dtype))[i, s] = value
    return out


def test_groups_by_program():
    groups = _sweep().groups()
    assert sorted(groups.values()) == [[0, 2, 3], [1]]
    for spec, idx in groups.items():
        assert spec.depth == max(DEPTHS)
        assert {POINTS[i].activation for i in idx} == {spec.activation}


def test_sweep_equals_per_seed_loop(swept, loop_reference):
    _, got = swept
    assert set(got) == set(loop_reference)
    n = len(POINTS)
    for name in PER_LAYER:
        assert got[name].shape == (n, SEEDS, len(DEPTHS), max(DEPTHS))
    for name in PER_DEPTH:
        assert got[name].shape == (n, SEEDS, len(DEPTHS))
    for name in FORWARD:
        assert got[name].shape == (n, SEEDS, max(DEPTHS))
    for name, ref in loop_reference.items():
        assert got[name].dtype == (np.int8 if name.endswith("_status") else np.float32), name
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=0, equal_nan=True,
                                   err_msg=name)


def test_points_land_at_their_index(swept, loop_reference):
    """Each point's row is its own network: the relu point (index 1, another program) is
    not any tanh point's result, and changing gains changes the numbers."""
    _, got = swept
    loss = got["loss"]
    assert np.all(np.isfinite(loss))
    for i in range(3):
        for j in range(3):
            same = np.allclose(loss[i], loop_reference["loss"][j], rtol=1e-5)
            assert same == (i == j), (i, j)


def test_gain_chunks_with_remainder(swept):
    """Three gain points in chunks of 2 (a vmapped chunk plus a remainder) give the same
    numbers as one point at a time."""
    _, got = swept
    idx = [0, 2, 3]
    sweep = _sweep(points=[POINTS[i] for i in idx], labels=[LABELS[i] for i in idx],
                   gain_chunk=2)
    assert len(sweep.groups()) == 1
    chunked = run_sweep_arrays(sweep, progress=False)
    for name, value in chunked.items():
        np.testing.assert_allclose(value, got[name][idx], rtol=1e-5, equal_nan=True,
                                   err_msg=name)


def test_he_equals_gaussian_at_sqrt2(swept):
    """He init at gain 1 and Gaussian init at σ_w = √2 are the same distribution; with common
    random numbers they are the same networks, so every measured number agrees."""
    _, got = swept
    for name, value in got.items():
        np.testing.assert_allclose(value[3], value[2], rtol=1e-5, equal_nan=True, err_msg=name)


def test_seeds_use_common_random_numbers(swept):
    """Seed s draws the same unit-gain weights and data for every point: with σ_b = 0,
    h_1 = σ_w·W_1 x, so layer 1's mean and second moment scale by σ_w and σ_w² exactly."""
    _, got = swept
    q, m = got["preact_q"], got["preact_mean"]
    assert not np.allclose(q[0, 0], q[0, 1])  # but seeds differ
    np.testing.assert_allclose(q[2, :, 0], 2.0 * q[0, :, 0], rtol=1e-5)
    np.testing.assert_allclose(m[2, :, 0], math.sqrt(2.0) * m[0, :, 0], rtol=1e-4)
    keys = np.asarray(seed_keys(3, SEEDS))
    ref = np.stack([np.asarray(jax.random.fold_in(jax.random.PRNGKey(3), s))
                    for s in range(SEEDS)])
    np.testing.assert_array_equal(keys, ref)


def test_run_cached_netcdf_roundtrip(swept, tmp_path, monkeypatch):
    sweep, arrays = swept
    # the arrays are already measured: let run_cached reuse them, and count the calls
    calls = []

    def fake_run(sw, progress=True, keep_backprop=False, desc="sweep"):
        calls.append(sw)
        return arrays

    monkeypatch.setattr(gradstudy.engine._sweep, "run_sweep_arrays", fake_run)
    ds = run_cached(sweep, tmp_path, "probe", progress=False)
    assert len(calls) == 1
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".nc" and files[0].name.startswith("probe-")
    assert not list(tmp_path.glob("*.tmp"))

    with xr.open_dataset(files[0], engine="h5netcdf") as plain:
        plain = plain.load()
    assert plain.weight_grad_norm.dims == ("point", "seed", "depth", "layer")
    assert plain.loss.dims == ("point", "seed", "depth")
    assert plain.preact_q.dims == ("point", "seed", "layer")
    assert dict(plain.sizes) == {"point": 4, "seed": SEEDS, "depth": 2, "layer": 4}
    assert list(plain.point.values) == list(LABELS)
    assert list(plain.depth.values) == list(DEPTHS)
    assert list(plain.layer.values) == [1, 2, 3, 4]
    assert list(plain.activation.values) == ["tanh", "relu", "tanh", "tanh"]
    assert list(plain.init.values) == ["gaussian", "gaussian", "gaussian", "he_normal"]
    np.testing.assert_allclose(plain.sigma_w.values, [1.0, 1.4, math.sqrt(2), 1.0])
    np.testing.assert_allclose(plain.sigma_b.values, [0.0, 0.2, 0.0, 0.0])
    # effective σ_w² = σ_w² · fan_in Var W: Gaussian 1, He 2
    np.testing.assert_allclose(plain.sigma_w2.values, [1.0, 1.96, 2.0, 2.0], rtol=1e-12)
    for name, value in arrays.items():
        np.testing.assert_array_equal(plain[name].values, value, err_msg=name)
        np.testing.assert_array_equal(ds[name].values, value, err_msg=name)
    assert ds.attrs["description"] == plain.attrs["description"]
    desc = json.loads(plain.attrs["description"])
    assert desc["seeds"] == SEEDS and desc["depths"] == list(DEPTHS)
    assert [p["sigma_w"] for p in desc["points"]] == [p.sigma_w for p in POINTS]
    vers = json.loads(plain.attrs["versions"])
    assert vers["jax"] == jax.__version__ and vers["gradstudy"] == gradstudy.__version__
    assert plain.attrs["backend"].startswith(jax.default_backend() + ":")

    # second call: a cache hit, no computation
    def boom(*a, **k):
        raise AssertionError("cache miss: the sweep was recomputed")

    monkeypatch.setattr(gradstudy.engine._sweep, "run_sweep_arrays", boom)
    again = run_cached(sweep, tmp_path, "probe", progress=False)
    for name, value in arrays.items():
        np.testing.assert_array_equal(again[name].values, value, err_msg=name)
    assert again.attrs["description"] == plain.attrs["description"]
    # ...but any change to the config is a miss
    for changed in (_sweep(seeds=2), _sweep(base_seed=4), _sweep(batch=BATCH + 1),
                    _sweep(points=POINTS[:2], labels=LABELS[:2])):
        with pytest.raises(AssertionError, match="cache miss"):
            run_cached(changed, tmp_path, "probe", progress=False)
    with pytest.raises(AssertionError, match="cache miss"):
        run_cached(sweep, tmp_path, "probe", progress=False, keep_backprop=True)
    assert len(list(tmp_path.iterdir())) == 1


def test_write_atomic_failure_leaves_nothing(tmp_path, monkeypatch):
    ds = xr.Dataset({"a": ("x", np.arange(3.0))})
    path = tmp_path / "sub" / "out.nc"

    def fail(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(ds, path)
    assert list((tmp_path / "sub").iterdir()) == []
    monkeypatch.undo()
    write_atomic(ds, path)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.nc"]
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_array_equal(back.a.values, [0.0, 1.0, 2.0])


def test_written_results_respect_umask(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    write_atomic(xr.Dataset({"a": ("x", np.arange(2.0))}), tmp_path / "r.nc")
    gradstudy.results.write_json_atomic({"a": 1}, tmp_path / "s.json")
    (tmp_path / "plain.txt").write_text("x")  # what an ordinary file gets
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "r.nc").stat().st_mode) == expected


def test_exploding_config_gives_nonfinite_without_raising(tmp_path):
    """relu, σ_w = 30, depth 40, float32: q_l grows like (σ_w²/2)^l = 450^l, far past
    float32's max (3.4e38) by layer 15; the sweep must record inf/NaN, not raise."""
    spec = MLPSpec(width=8, depth=1, out_dim=2, activation="relu", sigma_w=30.0)
    sweep = Sweep(points=(spec,), depths=(40,), seeds=2, batch=4)
    ds = run_cached(sweep, tmp_path, "explode", progress=False)
    q = ds.preact_q.values[0]  # (seed, layer)
    wg = ds.weight_grad_norm.values[0, :, 0]
    assert not np.all(np.isfinite(q)) and not np.all(np.isfinite(wg))
    # early layers are finite and follow the relu mean-field growth σ_w²/2 per layer
    finite = np.isfinite(q[:, :10]).all()
    assert finite
    growth = np.median(np.log(q[:, 2:10] / q[:, 1:9]))
    assert abs(growth - math.log(450.0)) < 1.5  # width 8: large fluctuations, log scale
    assert np.any(np.isinf(q[:, -1]) | np.isnan(q[:, -1]))
    assert not list(tmp_path.glob("*.tmp"))


def test_sweep_validation():
    with pytest.raises(ConfigError, match="^points:"):
        Sweep(points=(), depths=(2,))
    with pytest.raises(ConfigError, match="^depths:"):
        Sweep(points=POINTS, depths=(0, 2))
    with pytest.raises(ConfigError, match="^seeds:"):
        Sweep(points=POINTS, depths=(2,), seeds=0)
    with pytest.raises(ConfigError, match="^labels:"):
        Sweep(points=POINTS, depths=(2,), labels=("a", "a", "b"))
    assert Sweep(points=POINTS, depths=(4, 2, 2)).depths == (2, 4)


def test_mixed_dtype_sweep_keeps_float64(tmp_path):
    """A float64 point after a float32 point must not be stored through float32: its
    vanishing gradients (~1e-60, below float32's range) survive, equal to a float64-only run."""
    deep = dict(width=8, depth=1, out_dim=2, activation="sigmoid", sigma_w=0.5)
    f32, f64 = MLPSpec(**deep), MLPSpec(**deep, dtype="float64")
    mixed = run_sweep_arrays(Sweep(points=(f32, f64), depths=(40,), seeds=2, batch=4),
                             progress=False)
    alone = run_sweep_arrays(Sweep(points=(f64,), depths=(40,), seeds=2, batch=4),
                             progress=False)
    assert mixed["backprop_norm"].dtype == np.float64
    first = mixed["backprop_norm"][1, :, 0, 0]
    assert np.all((first > 0) & (first < 1e-30))
    np.testing.assert_array_equal(first, alone["backprop_norm"][0, :, 0, 0])


def test_different_callables_get_different_cache_keys():
    a = MLPSpec(activation=lambda x: x).describe()["activation"]
    b = MLPSpec(activation=lambda x: x**3).describe()["activation"]
    assert a != b
    assert a == MLPSpec(activation=lambda x: x).describe()["activation"]
