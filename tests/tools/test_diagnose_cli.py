"""``gradstudy diagnose FACTORY``: the table, figure and netCDF for a user's Flax model, and
one-line errors (exit 2) for a bad import path, a factory that raises, a non-scalar loss."""

import textwrap

import numpy as np
import pytest
import xarray as xr
from test_cli import _main  # cli.main in-process: (exit code, stdout, stderr)


def test_diagnose_example_cnn(tmp_path, capsys):
    code, out, err = _main(["diagnose", "examples.models:cnn1d", "--seeds", "2", "--out",
                            str(tmp_path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["module", "params"]
    assert [line.split()[0] for line in lines[2:9]] == [f"Conv_{i}" for i in range(6)] + [
        "Dense_0"]
    assert "vanishing < 0.001" in out
    ds = xr.open_dataset(tmp_path / "results" / "diagnose" / "custom" / "cnn1d" / "diagnose.nc")
    assert ds.sizes["seed"] == 2 and ds.sizes["module"] == 7
    assert np.all(np.isfinite(ds.backprop_norm.values)) and np.all(ds.backprop_norm > 0)
    # the ratio column is the median norm over that of the last module
    med = np.median(ds.backprop_norm.values, axis=0)
    assert float(lines[2].split()[3]) == pytest.approx(med[0] / med[-1], rel=0.05)
    assert (tmp_path / "figures" / "diagnose" / "custom" / "cnn1d" / "cnn1d.png").is_file()
    ds.close()


def _write(tmp_path, body):
    path = tmp_path / "user_models.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("spec_body,words", [
    ("no_such_package.models:factory", ["factory: cannot import 'no_such_package.models'"]),
    ("examples.models:no_such_factory", ["has no callable 'no_such_factory'"]),
    ("no_colon", ["factory: expected 'package.module:function'"]),
])
def test_bad_factory_path_is_one_line(spec_body, words, tmp_path, capsys):
    code, out, err = _main(["diagnose", spec_body, "--out", str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("body,words", [
    ("def factory():\n    raise RuntimeError('boom')\n", ["factory() raised RuntimeError: boom"]),
    ("""
     import flax.linen as nn
     import jax.numpy as jnp
     def factory():
         return nn.Dense(3), jnp.ones((2, 4)), lambda y, b: y   # not a scalar
     """, ["loss_fn: must return a scalar"]),
    ("def factory():\n    return 1, 2\n", ["must return (module, batch, loss_fn)"]),
])
def test_factory_errors_are_one_line(body, words, tmp_path, capsys):
    path = _write(tmp_path, body)
    code, out, err = _main(["diagnose", f"{path}:factory", "--out", str(tmp_path / "o")],
                           capsys)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_diagnose_nnx_factories(tmp_path, capsys):
    """An NNX factory ``rngs -> model`` runs --seeds networks; a built NNX model is one
    network (its weights), and asking it for several seeds is a one-line error."""
    code, out, err = _main(["diagnose", "examples.models:nnx_lstm", "--out", str(tmp_path)],
                           capsys)
    assert code == 0, err
    ds = xr.open_dataset(tmp_path / "results" / "diagnose" / "custom" / "nnx_lstm" / "diagnose.nc")
    assert ds.sizes["seed"] == 1 and ds.sizes["time"] == 40
    assert "rnn/cell/hf" in list(ds.recurrent_module.values)
    assert np.all(ds.calls.sel(module="rnn/cell/hf").values == 40)
    ds.close()
    code, out, err = _main(["diagnose", "examples.models:nnx_lstm", "--seeds", "3", "--out",
                            str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "seeds: an nnx.Module instance has one set of weights" in err


TINY = """
import sys
import flax.linen as nn
import jax.numpy as jnp

class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(jnp.tanh(nn.Dense(4)(x)))

def _loss(y, b):
    return jnp.mean(y ** 2)

def tiny():
    return Net(), jnp.ones((2, 3)), _loss
"""


@pytest.mark.parametrize("body,words", [
    ("def factory():\n    return Net(), jnp.ones((2, 3)), _loss, jnp.ones(3)\n",
     ["factory: must return (module, batch, loss_fn) or (module, batch, loss_fn, options) "
      "with options a dict", "fourth item is an array"]),
    ("def factory():\n    sys.exit(3)\n",
     ["factory: calling factory() raised SystemExit(3)", "must return (module, batch"]),
    ("def factory():\n    return Net(), {'x': jnp.ones((2, 3)), 'y': jnp.ones(2)}, _loss\n",
     ["module: initialising the model (module.init) raised", "call_args option"]),
    ("def factory():\n    return Net(), {'x': jnp.ones((2, 3))}, lambda y, b: b['t'], "
     "{'call_args': lambda b: (b['x'],)}\n",
     ["loss_fn: calling the loss raised KeyError"]),
    ("def factory():\n    return Net(), jnp.ones((2, 3)), lambda y, b: (y.sum(), 1)\n",
     ["loss_fn: must return a scalar (a 0-d float array), got tuple"]),
    ("def factory():\n    return Net(), jnp.ones((2, 3)), _loss, {'no_such_option': 1}\n",
     ["factory: unknown option 'no_such_option'", "seed_batch", "call_args"]),
    ("def factory():\n    return Net(), jnp.ones((2, 3)), _loss, {'seed_bach': 2}\n",
     ["factory: unknown option 'seed_bach'", "seed_batch"]),
    ("def factory():\n    return Net(), jnp.ones((2, 3)), _loss, {'batch': 2}\n",
     ["factory: option 'batch' is a positional item", "seed_batch"]),
])
def test_factory_and_model_failures_name_the_step(body, words, tmp_path, capsys):
    path = _write(tmp_path, TINY + body)
    code, out, err = _main(["diagnose", f"{path}:factory", "--out", str(tmp_path / "o")],
                           capsys)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o" / "figures").exists()  # a failed run leaves no folders


@pytest.mark.parametrize("in_the_way", ["out", "out/figures/diagnose",
                                        "out/results/diagnose/custom"])
def test_a_file_where_a_folder_should_be_is_one_line(in_the_way, tmp_path, capsys):
    path = _write(tmp_path, TINY)
    target = tmp_path / in_the_way
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("a file")
    code, out, err = _main(["diagnose", f"{path}:tiny", "--seeds", "1", "--out",
                            str(tmp_path / "out")], capsys)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("gradstudy: error: --out:") and str(target) in err, err


def test_all_nan_model_is_recorded_with_a_note_and_no_warning(tmp_path, capsys):
    """NaN in the batch is data: recorded in the file and drawn, the table says why, and
    no RuntimeWarning reaches the user."""
    import warnings

    path = _write(tmp_path, TINY + "def nan():\n    return Net(), jnp.full((2, 3), jnp.nan), "
                                   "_loss\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = _main(["diagnose", f"{path}:nan", "--seeds", "3", "--out",
                                str(tmp_path)], capsys)
    assert code == 0 and err == "", err
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == ["note: every gradient norm is non-finite (recorded as NaN/inf): the "
                     "batch holds 6 non-finite entries (NaN/inf)"], out
    with xr.open_dataset(tmp_path / "results/diagnose/custom/nan/diagnose.nc") as ds:
        assert np.all(np.isnan(ds.backprop_norm.values)) and np.all(np.isnan(ds.loss))
        assert ds.attrs["batch_nonfinite"] == 6
    assert (tmp_path / "figures/diagnose/custom/nan/nan.png").is_file()


def test_user_runs_never_overwrite_the_reference_figures(tmp_path, capsys):
    """Without --reference the run goes to figures/diagnose/custom/NAME (as `run --set` goes
    to custom/); the reference figure figures/diagnose/NAME/NAME.png is rewritten only with
    --reference."""
    path = _write(tmp_path, TINY)
    reference = tmp_path / "figures" / "diagnose" / "tiny" / "tiny.png"
    reference.parent.mkdir(parents=True)
    reference.write_bytes(b"committed")
    code, out, err = _main(["diagnose", f"{path}:tiny", "--seeds", "2", "--out",
                            str(tmp_path)], capsys)
    assert code == 0, err
    assert reference.read_bytes() == b"committed"
    assert (tmp_path / "figures/diagnose/custom/tiny/tiny.png").is_file()
    assert f"figure: {tmp_path / 'figures/diagnose/custom/tiny/tiny.png'}" in out
    assert not (tmp_path / "results" / "diagnose" / "tiny").exists()
    code, out, err = _main(["diagnose", f"{path}:tiny", "--seeds", "2", "--out",
                            str(tmp_path), "--reference"], capsys)
    assert code == 0, err
    assert reference.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "results/diagnose/tiny/diagnose.nc").is_file()
    help_code, help_out, _ = _main(["diagnose", "--help"], capsys)
    assert help_code == 0 and "--reference" in help_out and "custom/NAME" in help_out


def test_typed_prng_key_in_a_factory_batch(tmp_path, capsys):
    """A typed PRNG key in the batch (the model's noise) is not data to count NaN in: the
    run succeeds and records the NaN of the array beside it."""
    path = _write(tmp_path, TINY + "import jax\n"
                  "def keyed():\n    return Net(), {'x': jnp.ones((2, 3)).at[0, 0].set(jnp.nan), "
                  "'k': jax.random.key(0)}, _loss, {'call_args': lambda b: (b['x'],)}\n")
    code, out, err = _main(["diagnose", f"{path}:keyed", "--seeds", "2", "--out",
                            str(tmp_path)], capsys)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "results/diagnose/custom/keyed/diagnose.nc") as ds:
        assert ds.attrs["batch_nonfinite"] == 1
