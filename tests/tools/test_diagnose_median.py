"""The table of ``diagnose`` is the MEDIAN over seeds, against an independent per-seed loop.

With 2 seeds the mean and the median agree, so the tests elsewhere cannot tell them apart;
here 5 seeds of a small ReLU network, where the two differ by well over the tolerance."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gradstudy.tools import diagnose, diagnosis_summary, diagnosis_table, probe

SEEDS = 5


class ReLUNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = nn.relu(nn.Dense(6)(x))
        return nn.Dense(2)(x)


X = jax.random.normal(jax.random.PRNGKey(3), (4, 5))


def _loss(y, x):
    return jnp.mean((y - 1.0) ** 2)


def test_summary_is_the_median_over_seeds_of_a_per_seed_loop():
    module = ReLUNet()
    ds = diagnose(module, X, _loss, seeds=SEEDS, base_seed=7)
    labels = [str(m) for m in ds.module.values]
    per_seed = {name: [] for name in ("backprop_norm", "param_grad_norm", "out_q",
                                      "out_zero_frac")}
    losses = []
    for s in range(SEEDS):  # independent of diagnose: one plain probe per seed's key
        key = jax.random.fold_in(jax.random.PRNGKey(7), s)
        out = probe(module, module.init(key, X), X, _loss)
        for name in per_seed:
            per_seed[name].append([float(out["modules"][m][name]) for m in labels])
        losses.append(float(out["loss"]))
    ref = {name: np.median(np.array(v), axis=0) for name, v in per_seed.items()}
    mean = {name: np.mean(np.array(v), axis=0) for name, v in per_seed.items()}
    # the case separates median from mean: at least one module differs by > 5 % in each
    for name in ("backprop_norm", "param_grad_norm"):
        assert np.max(np.abs(mean[name] / ref[name] - 1)) > 0.05, name
    rows = diagnosis_summary(ds)
    assert [r["module"] for r in rows] == labels
    for i, r in enumerate(rows):
        np.testing.assert_allclose(r["backprop_norm"], ref["backprop_norm"][i], rtol=1e-5)
        np.testing.assert_allclose(r["param_grad_norm"], ref["param_grad_norm"][i], rtol=1e-5)
        np.testing.assert_allclose(r["out_rms"], np.median(np.sqrt(np.array(
            per_seed["out_q"])), axis=0)[i], rtol=1e-5)
        np.testing.assert_allclose(r["zero_frac"], ref["out_zero_frac"][i], rtol=1e-6)
        np.testing.assert_allclose(r["backprop_ratio"],
                                   ref["backprop_norm"][i] / ref["backprop_norm"][-1],
                                   rtol=1e-5)
    # the table's last line: the median loss
    last = diagnosis_table(ds).splitlines()[-1]
    assert last.startswith(f"medians over {SEEDS} seeds")
    assert float(last.rsplit("loss ", 1)[1]) == float(f"{np.median(losses):.4g}")
    assert abs(np.mean(losses) / np.median(losses) - 1) > 1e-3  # the loss separates too
