"""Results caching that never returns a wrong number (issue 5, items 1.3 and 1.4).

A cached file is reused only for the same computation (functions compared by fingerprint,
not by name or code alone) and only if it is intact (it opens, describes this sweep, its
data match the stored checksum); otherwise the sweep is recomputed with one line saying
why. Every corruption case below is checked against a direct ``run_sweep_arrays`` of the
same sweep (the reference), and against a second call that must then be a silent cache hit.
"""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import gradstudy.engine._sweep
import gradstudy.nn._activations as activations_mod
import gradstudy.nn._initializers as initializers_mod
import gradstudy.results
from gradstudy import MLPSpec, Sweep
from gradstudy.engine import ENGINE_VERSION, run_cached, run_sweep_arrays
from gradstudy.nn import unit_normal
from gradstudy.results import cache_key, write_atomic, write_text_atomic
from gradstudy.studies import load_summaries

REPO = Path(__file__).resolve().parents[1]
TINY = dict(width=8, depth=2, out_dim=2)
# two gain points of one compiled program: every test below reuses it
SWEEP = Sweep(points=(MLPSpec(**TINY, sigma_w=1.0), MLPSpec(**TINY, sigma_w=1.5, sigma_b=0.1)),
              depths=(2, 3), seeds=2, batch=4)
OTHER_SWEEP = Sweep(points=SWEEP.points, depths=SWEEP.depths, seeds=2, batch=4, base_seed=1)


@pytest.fixture
def isolated_registries(monkeypatch):
    monkeypatch.setattr(initializers_mod, "_INITS", dict(initializers_mod._INITS))
    monkeypatch.setattr(activations_mod, "_ACTIVATIONS", dict(activations_mod._ACTIVATIONS))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep computed without any cache, and pristine cache files of it and of
    OTHER_SWEEP (a different seed) as bytes."""
    arrays = run_sweep_arrays(SWEEP, progress=False)
    folder = tmp_path_factory.mktemp("pristine")
    files = {}
    for label, sweep in (("this", SWEEP), ("other", OTHER_SWEEP)):
        run_cached(sweep, folder, label, progress=False)
        (path,) = folder.glob(f"{label}-*.nc")
        files[label] = (path.name, path.read_bytes())
    return arrays, files


@pytest.fixture
def counted(monkeypatch):
    """Count the sweeps ``run_cached`` computes (the real computation runs)."""
    calls = []

    def counting(sweep, progress=True, keep_backprop=False, **kwargs):
        calls.append(sweep)
        return run_sweep_arrays(sweep, progress=progress, keep_backprop=keep_backprop,
                                **kwargs)

    monkeypatch.setattr(gradstudy.engine._sweep, "run_sweep_arrays", counting)
    return calls


def _notices(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("gradstudy:")]


def _assert_equals_reference(ds, arrays):
    assert set(arrays) <= set(ds.data_vars)
    for name, value in arrays.items():
        np.testing.assert_array_equal(ds[name].values, value, err_msg=name)


# ------------------------------------------------------------------- damaged cache files
def _truncate(path, files):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path, files):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _empty(path, files):
    path.write_bytes(b"")


def _directory(path, files):
    path.unlink()
    path.mkdir()
    (path / "something").write_text("x")


def _other_sweep(path, files):
    path.write_bytes(files["other"][1])  # a valid netCDF of another sweep under this name


def _flip_one_data_byte(path, files):
    # the float32 data of weight_grad_norm are stored contiguously at this file offset;
    # flipping the lowest exponent bit of its first entry multiplies it by 2 or 1/2
    with h5py.File(path, "r") as f:
        offset = f["weight_grad_norm"].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_value_with_h5py(path, files):
    with h5py.File(path, "r+") as f:
        f["loss"][0, 0, 0] = f["loss"][0, 0, 0] * 1.001


def _edit_coordinate_with_h5py(path, files):
    with h5py.File(path, "r+") as f:
        f["sigma_w"][1] = 1.6


def _drop_checksum(path, files):
    with h5py.File(path, "r+") as f:  # what a file of an older gradstudy lacks
        if "checksum" in f.attrs:
            del f.attrs["checksum"]


def test_file_of_gradstudy_0_1_with_its_description_under_sweep_is_reused(reference, counted,
                                                                           tmp_path, capsys):
    """0.1 stored descriptions under the attribute "sweep" (now "description"): such a file
    is verified (description, checksum) and reused, not recomputed; a file holding neither
    attribute is refused."""
    arrays, files = reference
    name, pristine = files["this"]
    path = tmp_path / name
    path.write_bytes(pristine)
    with h5py.File(path, "r+") as f:
        f.attrs["sweep"] = f.attrs["description"]
        del f.attrs["description"]
    capsys.readouterr()
    ds = run_cached(SWEEP, tmp_path, "this", progress=False)
    assert counted == [] and _notices(capsys) == []
    _assert_equals_reference(ds, arrays)
    assert json.loads(ds.attrs["description"])["engine_version"] == ENGINE_VERSION
    assert "sweep" not in ds.attrs
    with h5py.File(path, "r+") as f:
        del f.attrs["sweep"]
    run_cached(SWEEP, tmp_path, "this", progress=False)
    assert len(counted) == 1 and "(no description)" in _notices(capsys)[0]


CORRUPTIONS = {
    "truncated_to_half": (_truncate, r"unreadable: \w+"),
    "random_bytes": (_random_bytes, r"unreadable: \w+"),
    "empty_file": (_empty, r"unreadable: \w+"),
    "directory_in_its_place": (_directory, r"a directory, not a file"),
    "valid_file_of_another_sweep": (_other_sweep, r"it holds a different computation"),
    "one_byte_flipped_in_data": (_flip_one_data_byte, r"checksum mismatch"),
    "value_edited_with_h5py": (_edit_value_with_h5py, r"checksum mismatch"),
    "coordinate_edited_with_h5py": (_edit_coordinate_with_h5py, r"checksum mismatch"),
    "checksum_attribute_missing": (_drop_checksum,
                                   r"no checksum: written by an older gradstudy"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_damaged_cache_file_is_detected_and_recomputed(case, reference, counted, tmp_path,
                                                       capsys):
    arrays, files = reference
    name, pristine = files["this"]
    path = tmp_path / name
    path.write_bytes(pristine)
    corrupt, reason = CORRUPTIONS[case]
    corrupt(path, files)
    if case in ("one_byte_flipped_in_data", "value_edited_with_h5py",
                "coordinate_edited_with_h5py"):
        # the damage is silent to a plain reader: the file opens, one number differs
        with xr.open_dataset(path, engine="h5netcdf") as plain:
            var = "sigma_w" if case.startswith("coordinate") else \
                "weight_grad_norm" if case.startswith("one_byte") else "loss"
            changed = plain[var].values
        reference_values = np.asarray([1.0, 1.5]) if var == "sigma_w" else arrays[var]
        assert not np.array_equal(changed, reference_values, equal_nan=True)
    capsys.readouterr()

    ds = run_cached(SWEEP, tmp_path, "this", progress=False)

    assert len(counted) == 1, "the damaged file was used instead of recomputing"
    _assert_equals_reference(ds, arrays)
    notices = _notices(capsys)
    assert len(notices) == 1, notices
    assert notices[0].startswith(f"gradstudy: cached {path} is unusable (")
    assert notices[0].endswith("); recomputing")
    assert re.fullmatch(reason, notices[0].split(" is unusable (", 1)[1][:-len("); recomputing")])
    # the file was rewritten: the next call is a silent cache hit with the same numbers
    assert path.is_file()
    again = run_cached(SWEEP, tmp_path, "this", progress=False)
    assert len(counted) == 1 and _notices(capsys) == []
    _assert_equals_reference(again, arrays)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_cache_file_carries_description_and_checksum(reference, counted, tmp_path):
    arrays, _ = reference
    run_cached(SWEEP, tmp_path, "this", progress=False)
    (path,) = tmp_path.glob("this-*.nc")
    with xr.open_dataset(path, engine="h5netcdf") as plain:
        attrs = dict(plain.attrs)
    assert json.loads(attrs["description"]) == json.loads(json.dumps(
        dict(SWEEP.describe(), keep_backprop=False), default=str))
    assert attrs["checksum"].startswith("sha256:") and len(attrs["checksum"]) == 7 + 64
    # the checksum is of the data: the same sweep recomputed elsewhere gives the same one
    run_cached(SWEEP, tmp_path / "again", "this", progress=False)
    (path2,) = (tmp_path / "again").glob("this-*.nc")
    with xr.open_dataset(path2, engine="h5netcdf") as plain2:
        assert plain2.attrs["checksum"] == attrs["checksum"]
    assert len(counted) == 2


# --------------------------------------------------------------------------- fingerprints
def _loss(sweep):
    """The loss computed without any cache."""
    return run_cached(sweep, None, progress=False).loss.values


def _tiny(activation=None, init=None, sigma_w=1.0):
    spec = MLPSpec(**TINY, sigma_w=sigma_w,
                   **({"activation": activation} if activation is not None else {}),
                   **({"init": init} if init is not None else {}))
    return Sweep(points=(spec,), depths=(2,), seeds=2, batch=4)


def _check_distinct_and_correct(make_activation, args, counted, tmp_path):
    """Sweeps differing only in a default/closure value: one cache file each, each with its
    own numbers (those of an uncached run of that function), and a new but identical
    function is a cache hit."""
    losses = []
    for a in args:
        activation = make_activation(a)
        ds = run_cached(_tiny(activation), tmp_path, "fp", progress=False)
        losses.append(ds.loss.values)
        np.testing.assert_array_equal(ds.loss.values, _loss(_tiny(activation)))
    assert len(list(tmp_path.glob("fp-*.nc"))) == len(args)
    assert not np.allclose(losses[0], losses[1])
    n = len(counted)
    again = run_cached(_tiny(make_activation(args[0])), tmp_path, "fp", progress=False)
    assert len(counted) == n  # cache hit
    np.testing.assert_array_equal(again.loss.values, losses[0])


def test_default_argument_changes_cache_key(counted, tmp_path):
    def scaled_tanh(k):
        return lambda x, k=k: k * jnp.tanh(x)

    assert scaled_tanh(1).__code__.co_code == scaled_tanh(5).__code__.co_code
    assert MLPSpec(activation=scaled_tanh(1)).describe() != \
        MLPSpec(activation=scaled_tanh(5)).describe()
    _check_distinct_and_correct(scaled_tanh, (1, 5), counted, tmp_path)


def test_closure_value_changes_cache_key(counted, tmp_path):
    def leaky(slope):
        def f(x):
            return jnp.where(x >= 0, x, slope * x)
        return f

    _check_distinct_and_correct(leaky, (0.01, 0.5), counted, tmp_path)


def _key(activation) -> str:
    return cache_key(_tiny(activation).describe())


def test_partial_keywords_and_array_closures_change_key():
    def clipped(x, lo=-1.0):
        return jnp.maximum(x, lo)

    assert _key(functools.partial(clipped, lo=-1.0)) != _key(functools.partial(clipped, lo=-2.0))
    assert _key(functools.partial(clipped, lo=-1.0)) == _key(functools.partial(clipped, lo=-1.0))

    def with_table(table):
        return lambda x: x * table[0]

    a = np.array([1.0, 2.0])
    assert _key(with_table(a)) == _key(with_table(a.copy()))
    assert _key(with_table(a)) != _key(with_table(np.array([1.0, 2.5])))
    assert _key(with_table(a)) != _key(with_table(a.astype(np.float32)))
    assert _key(with_table(a)) != _key(with_table(a.reshape(2, 1)))

    # a nested function's constant counts too
    def outer_1(x):
        return (lambda y: y * 1.0)(x)

    def outer_2(x):
        return (lambda y: y * 2.0)(x)

    assert _key(outer_1) != _key(outer_2)
    # library functions by importable name: the same in every process
    assert _key(jnp.tanh) == _key(jnp.tanh) != _key(jnp.sin)


def test_reregistered_activation_changes_key(isolated_registries):
    activations_mod.register_activation("softsign", lambda x: x / (1 + jnp.abs(x)))
    before = cache_key(_tiny("softsign").describe())
    activations_mod.register_activation("softsign", lambda x: 5 * x / (1 + jnp.abs(x)))
    after = cache_key(_tiny("softsign").describe())
    assert before != after
    assert MLPSpec(activation="softsign").describe()["activation"] == "softsign"  # label


def test_reregistered_initializer_changes_key(isolated_registries):
    def sample(key, shape, dtype=jnp.float32):
        return unit_normal(key, shape, dtype)

    initializers_mod.register_initializer("test_init", sample, lambda fi, fo: 1.0)
    before = cache_key(_tiny(init="test_init").describe())
    initializers_mod.register_initializer("test_init", sample, lambda fi, fo: 2.0)
    assert cache_key(_tiny(init="test_init").describe()) != before
    initializers_mod.register_scaled_initializer("test_scaled", "normal", lambda fi, fo: 1.0)
    scaled = cache_key(_tiny(init="test_scaled").describe())
    initializers_mod.register_scaled_initializer("test_scaled", "uniform", lambda fi, fo: 1.0)
    assert cache_key(_tiny(init="test_scaled").describe()) != scaled


def _softsign_times_5(x):
    return 5 * x / (1 + jnp.abs(x))


_SOFTSIGN_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax.numpy as jnp
    from gradstudy import MLPSpec, Sweep, register_activation
    from gradstudy.engine import run_cached
    k = float(sys.argv[2])
    register_activation("softsign", lambda x: k * x / (1 + jnp.abs(x)))
    sweep = Sweep(points=(MLPSpec(width=8, depth=2, out_dim=2, activation="softsign",
                                  sigma_w=3.0),), depths=(2,), seeds=2, batch=4)
    ds = run_cached(sweep, sys.argv[1], "softsign", progress=False)
    print(json.dumps(ds.loss.values.tolist()))
""")


def _python(script: str, *args, env=None, **kw):
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}, **kw)


def test_reregistered_activation_in_a_new_process_gets_its_own_results(tmp_path):
    """The issue's case: a later session registers "softsign" as 5x/(1+|x|); it must not
    get the cached x/(1+|x|) numbers but its own: those of the same function passed as a
    callable, computed here without a cache."""
    losses = {}
    for k in (1, 5):
        run = _python(_SOFTSIGN_SCRIPT, tmp_path, k)
        assert run.returncode == 0, run.stderr[-2000:]
        losses[k] = np.asarray(json.loads(run.stdout.splitlines()[-1]))
    assert len(list(tmp_path.glob("softsign-*.nc"))) == 2
    np.testing.assert_allclose(losses[5], _loss(_tiny(_softsign_times_5, sigma_w=3.0)),
                               rtol=1e-6)
    # outputs 5x larger: the MSE against N(0, 1) targets grows by an order of magnitude
    assert np.all(losses[5] > 3 * losses[1])


def test_reregistered_activation_in_the_same_process_gets_its_own_results(
        isolated_registries, tmp_path):
    activations_mod.register_activation("softsign", lambda x: x / (1 + jnp.abs(x)))
    sweep = _tiny("softsign", sigma_w=3.0)
    first = run_cached(sweep, tmp_path, "s", progress=False).loss.values
    activations_mod.register_activation("softsign", _softsign_times_5)
    second = run_cached(sweep, tmp_path, "s", progress=False).loss.values
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, _loss(_tiny(_softsign_times_5, sigma_w=3.0)),
                               rtol=1e-6)


class _ScaledTanh:
    """A callable object with mutable state: what it computes cannot be pinned down."""

    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return self.k * jnp.tanh(x)


_MUTABLE_SCALE = [1.0]


@pytest.mark.parametrize("activation", [_ScaledTanh(2.0), lambda x: _MUTABLE_SCALE[0] * x],
                         ids=["callable_object", "lambda_reading_a_global_list"])
def test_unfingerprintable_callable_is_never_cached(activation, counted, tmp_path, capsys):
    from gradstudy.nn import fingerprint

    assert fingerprint(activation) is None
    capsys.readouterr()
    for call in (1, 2):
        run_cached(_tiny(activation), tmp_path, "u", progress=False)
        assert len(counted) == call  # computed every time
        notices = _notices(capsys)
        assert len(notices) == 1, notices
        assert notices[0].startswith("gradstudy: u: not cached, computed afresh: cannot "
                                     "fingerprint point 'p0': activation ")
    assert list(tmp_path.iterdir()) == []


def _times_3(x):
    return 3.0 * x


def test_unfingerprintable_callable_is_computed_with_its_current_state(tmp_path):
    scale = [1.0]

    def activation(x):
        return scale[0] * x

    first = run_cached(_tiny(activation), tmp_path, "u", progress=False).loss.values
    scale[0] = 3.0
    second = run_cached(_tiny(activation), tmp_path, "u", progress=False).loss.values
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, _loss(_tiny(_times_3)), rtol=1e-6)


_KEYS_SCRIPT = textwrap.dedent("""
    import json
    from gradstudy import MLPSpec, Sweep
    from gradstudy.nn import activation_names
    from gradstudy.nn import initializer_names
    from gradstudy.results import cache_key
    out = {}
    for a in activation_names():
        out["activation:" + a] = MLPSpec(activation=a).describe()["activation_fingerprint"]
    for i in initializer_names():
        out["init:" + i] = MLPSpec(init=i).describe()["init_fingerprint"]
    sweep = Sweep(points=[MLPSpec(activation=a, init=i) for a in activation_names()
                          for i in initializer_names()], depths=(2,))
    out["sweep"] = cache_key(sweep.describe())
    print(json.dumps(out))
""")


def test_builtin_fingerprints_are_stable_across_processes():
    runs = []
    for hash_seed in ("1", "2"):
        run = _python(_KEYS_SCRIPT, env={"PYTHONHASHSEED": hash_seed})
        assert run.returncode == 0, run.stderr[-2000:]
        runs.append(json.loads(run.stdout.splitlines()[-1]))
    assert runs[0] == runs[1]
    missing = [k for k, v in runs[0].items() if v is None]
    assert missing == [], f"built-ins without a fingerprint: {missing}"
    here = MLPSpec(activation="tanh", init="he_normal").describe()
    assert runs[0]["activation:tanh"] == here["activation_fingerprint"]
    assert runs[0]["init:he_normal"] == here["init_fingerprint"]


# ------------------------------------------------------------------ temporary files
_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np, xarray as xr
    from gradstudy import results
    mode, folder = sys.argv[1], sys.argv[2]
    def stop(src, dst):
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        print("writing", flush=True)
        time.sleep(300)  # a live writer, in the middle of its write
    os.replace = stop
    if sys.argv[3] == "nc":
        results.write_atomic(xr.Dataset({"a": ("x", np.arange(5.0))}), f"{folder}/r.nc")
    else:
        results.write_json_atomic({"a": 1}, f"{folder}/summary.json")
""")


@pytest.mark.parametrize("kind", ["nc", "json"])
def test_temporary_file_of_killed_run_is_removed_by_next_run(kind, reference, tmp_path):
    run = _python(_KILLED_WRITER, "kill", tmp_path, kind)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].stat().st_size > 0  # what a killed run leaves
    if kind == "nc":
        run_cached(SWEEP, tmp_path, "this", progress=False)
    else:
        write_text_atomic("x", tmp_path / "other.txt")
    assert not left[0].exists()


def test_temporary_file_of_live_writer_is_kept(reference, tmp_path):
    with subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, "sleep", str(tmp_path), "nc"],
                          cwd=REPO, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}) as writer:
        try:
            assert writer.stdout.readline().strip() == "writing"
            (temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            run_cached(SWEEP, tmp_path, "this", progress=False)
            write_atomic(xr.Dataset({"b": ("x", np.arange(2.0))}), tmp_path / "b.nc")
            assert temp.exists(), "removed the file a running process is writing"
        finally:
            writer.kill()  # the process this test started, by its pid
            writer.wait()
    run_cached(SWEEP, tmp_path, "this", progress=False)
    assert not temp.exists()


def test_old_temporary_files_removed_by_age_others_kept(reference, tmp_path):
    two_hours_ago = time.time() - 7200
    old = {
        "tmpab12cd_3.nc.tmp": True,  # older gradstudy, no pid in the name
        "tmpzz99yy00.tmp": True,
        "this-0123.nc.k2j4_x.otherhost-4242.tmp": True,  # another host's, untouched 2 h
        "train-0123abcd-g0.ckpt.npz.k2j4x_9z.tmp": True,  # an older checkpoint's temporary
        "notes.tmp": False,  # not a name gradstudy makes: never touched
        "mine.ckpt.npz.tmp": False,
        "data.nc": False,
    }
    fresh = ["tmpab12cd_4.nc.tmp", "this-0123.nc.k2j4_y.otherhost-4242.tmp",
             "train-0123abcd-g0.ckpt.npz.k2j4x_9y.tmp"]
    for name in list(old) + fresh:
        (tmp_path / name).write_text("partial")
    for name in old:
        os.utime(tmp_path / name, (two_hours_ago, two_hours_ago))
    run_cached(SWEEP, tmp_path, "this", progress=False)
    remaining = {p.name for p in tmp_path.iterdir()}
    for name, removed in old.items():
        assert (name not in remaining) == removed, name
    assert set(fresh) <= remaining


# ------------------------------------------------------------------------ summaries
def _summary(study, scale="smoke"):
    return {"study": study, "scale": scale, "params": {}, "runtime_s": 0.1,
            "claims": [{"id": "c", "statement": "s", "measured": 1.0, "expected": 1.0,
                        "tolerance": 0.1, "comparison": "abs", "pass": True, "source": "x"}]}


BAD_SUMMARIES = {
    "not_json": b"{ this is not json",
    "binary": b"\xff\xfe\x00garbage",
    "a_list": b"[1, 2, 3]",
    "no_claims": json.dumps({"study": "no_claims", "scale": "smoke"}).encode(),
    "claim_without_pass": json.dumps(dict(_summary("claim_without_pass"), claims=[
        {"id": "c", "statement": "s", "measured": 1.0}])).encode(),
    # well-shaped, but not what gradstudy writes: counted as passing claims once
    "measured_text": json.dumps(dict(_summary("measured_text"), claims=[dict(
        _summary("x")["claims"][0], measured="abc", expected=1.0, tolerance=0.1,
        comparison="abs", **{"pass": True})])).encode(),
    "pass_contradicts_numbers": json.dumps(dict(_summary("pass_contradicts_numbers"), claims=[
        dict(_summary("x")["claims"][0], measured=5.0, expected=1.0, tolerance=0.1,
             comparison="abs", **{"pass": True})])).encode(),
}


def test_load_summaries_skips_unreadable_files_with_one_line_each(tmp_path, capsys):
    root = tmp_path / "results" / "smoke"
    for name in ("good_a", "good_b"):
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_text(json.dumps(_summary(name)))
    for name, data in BAD_SUMMARIES.items():
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_bytes(data)
    (root / "a_directory" / "summary.json").mkdir(parents=True)
    capsys.readouterr()
    summaries = load_summaries(tmp_path, "smoke")
    assert [s["study"] for s in summaries] == ["good_a", "good_b"]
    notices = _notices(capsys)
    bad = sorted(list(BAD_SUMMARIES) + ["a_directory"])
    assert len(notices) == len(bad), notices
    for name, line in zip(bad, notices):
        assert line.startswith(f"gradstudy: skipping {root / name / 'summary.json'}: "), line


def test_reproduce_only_survives_another_studys_bad_summary(tmp_path, monkeypatch, capsys):
    from gradstudy import cli

    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "tiny.py").write_text(textwrap.dedent("""
        from gradstudy.studies import Claim
        NAME = "tiny"
        DESCRIPTION = "one arithmetic claim"
        SCALES = {"smoke": {}, "paper": {}}
        def run(ctx, p):
            return [Claim("one", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]
    """))
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(experiments))
    broken = tmp_path / "out" / "results" / "smoke" / "other_study" / "summary.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"study": "other_study", "scale": "smo')  # a half-written file
    code = cli.main(["reproduce", "--scale", "smoke", "--only", "tiny", "--out",
                     str(tmp_path / "out"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1/1 claims pass" in captured.out
    assert [line for line in captured.err.splitlines() if str(broken) in line] == [
        f"gradstudy: skipping {broken}: unreadable (JSONDecodeError)"]
