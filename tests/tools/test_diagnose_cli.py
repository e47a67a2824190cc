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
    ds = xr.open_dataset(tmp_path / "results" / "diagnose" / "cnn1d" / "diagnose.nc")
    assert ds.sizes["seed"] == 2 and ds.sizes["module"] == 7
    assert np.all(np.isfinite(ds.backprop_norm.values)) and np.all(ds.backprop_norm > 0)
    # the ratio column is the median norm over that of the last module
    med = np.median(ds.backprop_norm.values, axis=0)
    assert float(lines[2].split()[3]) == pytest.approx(med[0] / med[-1], rel=0.05)
    assert (tmp_path / "figures" / "diagnose" / "cnn1d" / "cnn1d.png").is_file()
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
    ds = xr.open_dataset(tmp_path / "results" / "diagnose" / "nnx_lstm" / "diagnose.nc")
    assert ds.sizes["seed"] == 1 and ds.sizes["time"] == 40
    assert "rnn/cell/hf" in list(ds.recurrent_module.values)
    assert np.all(ds.calls.sel(module="rnn/cell/hf").values == 40)
    ds.close()
    code, out, err = _main(["diagnose", "examples.models:nnx_lstm", "--seeds", "3", "--out",
                            str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "seeds: an nnx.Module instance has one set of weights" in err
