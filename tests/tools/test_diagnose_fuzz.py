"""A deterministic fuzz of ``diagnose()`` and ``monitor()`` inputs.

Every case starts from a valid call on a tiny model and replaces one or two arguments by
values drawn (fixed seed) from pools of bad and good values.  Each case must end as

* a one-line ``ConfigError`` whose first word names an argument (or ``memory``), or
* a correct result: a Dataset of the requested seeds whose numbers are finite, or NaN
  exactly where the batch holds NaN (NaN is data, recorded); for ``monitor``, updates
  passed through unchanged and norms equal to a plain computation.

A case whose values include one marked bad must be refused (an accept is a *silent
accept*); anything else raised is a *traceback*.  The counts are printed (``-s``)."""

import math
from collections import Counter

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradstudy.errors import ConfigError
from gradstudy.tools import diagnose, monitor, monitor_dataset

OK, BAD = True, False
ARG_NAMES = {"module", "batch", "loss_fn", "variables", "init_fn", "seeds", "base_seed",
             "variants", "seed_batch", "select", "call_args", "memory", "every",
             "capacity", "stacked", "inner", "updates", "params", "GRADSTUDY_MEMORY_GB"}


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(jnp.tanh(nn.Dense(4)(x)))


X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
GOOD_VARIABLES = Net().init(jax.random.PRNGKey(0), X)


def _names_an_argument(text: str) -> bool:
    """The message starts with the argument(s) it is about: ``seeds: ...``,
    ``variables, init_fn: ...``."""
    return all(name in ARG_NAMES for name in text.split(":", 1)[0].split(", "))


def _loss(y, b):
    return jnp.mean(y ** 2)


def _init_scaled(key, a=1.0):
    params = Net().init(key, X)
    return jax.tree.map(lambda w: w * a, params)


def _raise(*_):
    raise RuntimeError("user code fails")


DIAGNOSE_POOLS = {
    "module": [(3, BAD), ("Net", BAD), (None, BAD), (Net, BAD), (object(), BAD),
               (nn.Dense(2), OK), (Net(), OK), (lambda rngs: 3, BAD), ([Net()], BAD)],
    "batch": [(None, BAD), ({}, BAD), ([], BAD), ("text", BAD), (jnp.ones((4, 7)), OK),
              (jnp.ones((3,)), OK), (X.at[0, 0].set(jnp.nan), OK),
              (jnp.full((4, 3), jnp.inf), OK), (np.asarray(X), OK), (X.astype(int), OK),
              ({"x": X}, BAD), ((X,), BAD), (jnp.ones((0, 3)), BAD), (X, OK)],
    "loss_fn": [(3, BAD), (None, BAD), ("mse", BAD), (lambda y, b: (jnp.mean(y), 0.0), BAD),
                (lambda y, b: y, BAD), (lambda y, b: jnp.sum(y > 0), BAD),
                (lambda y, b: "x", BAD), (_raise, BAD), (lambda y, b: jnp.nan * jnp.sum(y), OK),
                (lambda y, b: jnp.sum(y).astype(jnp.float32), OK), (lambda y, b: [1.0], BAD)],
    "variables": [(3, BAD), ({}, BAD), ({"params": 3}, BAD), ({"params": {}}, BAD),
                  (nn.Dense(5).init(jax.random.PRNGKey(0), jnp.ones((2, 7))), BAD),
                  (Net().init(jax.random.PRNGKey(0), jnp.ones((2, 5))), BAD),
                  (GOOD_VARIABLES, OK), (jnp.ones(3), BAD),
                  ({"params": {"Dense_0": {"kernel": [[1.0]]}}}, BAD)],
    "init_fn": [(3, BAD), (lambda key: jnp.ones(3), BAD), (_raise, BAD),
                (lambda key: {"params": {}}, BAD), (lambda key: GOOD_VARIABLES, OK),
                (lambda key: Net().init(key, X), OK), (lambda key: None, BAD)],
    "seeds": [(0, BAD), (-1, BAD), (1.5, BAD), (True, BAD), ("2", BAD), (5000, BAD),
              (np.int64(2), OK), (1, OK), (3, OK), (None, OK), (float("nan"), BAD),
              (jnp.int32(2), OK), (jnp.float32(2), BAD)],
    "base_seed": [(1.5, BAD), (-1, BAD), (2**32, BAD), ("0", BAD), (None, BAD), (True, BAD),
                  (np.int32(3), OK), (2**32 - 1, OK), (0, OK), (float("inf"), BAD),
                  (jnp.int32(3), OK), (jnp.int32(-1), BAD), (jnp.ones(2, int), BAD)],
    "variants": [({}, BAD), ([1, 2], BAD), ({"a": []}, BAD), ({"a": [1.0, float("nan")]}, BAD),
                 ({"seed": [1.0]}, BAD), ({"a": "xy"}, BAD), ({"a": [[1.0]]}, BAD),
                 ({"a": [1.0], "b": [1.0, 2.0]}, BAD), ({1: [1.0]}, BAD)],
    "seed_batch": [(0, BAD), (2.5, BAD), (-3, BAD), ("1", BAD), (1, OK), (10**3, OK)],
    "select": [(3, BAD), ("nomatch*", BAD), (lambda m, p: False, BAD), ("Dense_*", OK),
               (nn.Dense, OK), ((nn.Dense, nn.Conv), OK), ([1, 2], BAD)],
    "call_args": [(3, BAD), (lambda b: b, BAD), (lambda b: 1 / 0, BAD), (lambda b: (b,), OK),
                  (lambda b: [b], OK), ("x", BAD)],
}


def _diagnose_cases(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = list(DIAGNOSE_POOLS)
    cases = []
    for _ in range(n):
        chosen = rng.choice(names, size=int(rng.integers(1, 3)), replace=False)
        case = {}
        for name in chosen:
            pool = DIAGNOSE_POOLS[name]
            case[name] = pool[int(rng.integers(len(pool)))]
        cases.append(case)
    return cases


def _check_dataset(ds, kwargs, batch, loss_fn):
    """A correct result: the requested seeds; the batch's non-finite entries counted; NaN
    recorded (every seed's loss non-finite) where the batch or the loss is non-finite, and
    finite numbers everywhere else.  What to expect is computed from the inputs, not read
    from the result."""
    seeds = kwargs.get("seeds")
    fixed = kwargs.get("variables") is not None
    expected = 1 if fixed else (8 if seeds is None else int(seeds))
    assert ds.sizes["seed"] == expected
    nonfinite = sum(int(np.sum(~np.isfinite(np.asarray(x, float))))
                    for x in jax.tree.leaves(batch))
    assert ds.attrs["batch_nonfinite"] == nonfinite
    # the loss on finite outputs: NaN only for a loss that is NaN by construction
    finite_loss = math.isfinite(float(loss_fn(jnp.ones((4, 2)), batch)))
    values = ds.backprop_norm.values
    if nonfinite == 0 and finite_loss:
        assert np.all(np.isfinite(ds.loss.values))
        assert np.all(np.isfinite(values[ds.calls.values > 0]))
    else:  # NaN is data: recorded, not replaced by a number
        assert not np.any(np.isfinite(ds.loss.values)), ds.loss.values
        assert not np.all(np.isfinite(values[ds.calls.values > 0]))


@pytest.fixture(scope="module")
def counts():
    return {"diagnose": Counter(), "monitor": Counter()}


def test_diagnose_fuzz(counts):
    c = counts["diagnose"]
    problems = []
    for case in _diagnose_cases(260):
        args = {"module": Net(), "batch": X, "loss_fn": _loss, "seeds": 2}
        valid = True
        for name, (value, ok) in case.items():
            args[name] = value
            valid &= ok
        if "variants" in args and "init_fn" not in args:
            args["init_fn"] = _init_scaled
        module, batch, loss_fn = args.pop("module"), args.pop("batch"), args.pop("loss_fn")
        c["tried"] += 1
        try:
            ds = diagnose(module, batch, loss_fn, **args)
        except ConfigError as e:
            text = str(e)
            if "\n" in text or not _names_an_argument(text):
                problems.append(("badly worded error", case, text[:200]))
                c["badly worded errors"] += 1
            elif valid:  # a false refusal of a valid call is a problem, not a pass
                problems.append(("valid refused", case, text[:200]))
                c["valid refused"] += 1
            else:
                c["one-line errors"] += 1
            continue
        except Exception as e:  # noqa: BLE001 -- the fuzz counts what escapes
            problems.append(("traceback", case, f"{type(e).__name__}: {str(e)[:200]}"))
            c["tracebacks"] += 1
            continue
        c["accepted"] += 1
        if not valid:
            problems.append(("silent accept", case, ""))
            c["silent accepts"] += 1
            continue
        try:
            _check_dataset(ds, {**args, "variables": args.get("variables")}, batch, loss_fn)
            c["valid accepted (checked)"] += 1
        except AssertionError as e:
            problems.append(("wrong result", case, str(e)[:200]))
            c["wrong results"] += 1
    print("\ndiagnose fuzz:", dict(c))
    assert not problems, "\n".join(f"{kind}: {case}: {msg}" for kind, case, msg in problems)


PARAMS = {"w": jnp.linspace(0.1, 1.0, 12).reshape(3, 4), "b": jnp.ones(4),
          "stack": jnp.linspace(-1.0, 1.0, 12).reshape(3, 2, 2)}

MONITOR_POOLS = {
    "every": [(0, BAD), (-1, BAD), (1.5, BAD), ("10", BAD), (None, BAD), (True, BAD),
              (2**31, BAD), (1, OK), (3, OK), (np.int64(2), OK)],
    "capacity": [(0, BAD), (-5, BAD), (2.5, BAD), ("100", BAD), (10**8, BAD), (10**7, BAD),
                 (1, OK), (4, OK), (np.int32(7), OK), (None, BAD)],
    "stacked": [(3, BAD), ("stack", BAD), (lambda n, x: n == "stack", OK),
                (lambda n, x: False, OK), (lambda n, x: x.ndim == 0, OK)],
    "inner": [(3, BAD), ("adam", BAD), (optax.sgd(0.1), OK), (optax.adam(1e-3), OK),
              (optax.identity(), OK)],
    "updates": [("fewer", BAD), ("more", BAD), ("nan", OK), ("inf", OK), ("same", OK)],
    "params": [("none", OK), ("fewer", BAD), ("same", OK)],
}


def _tree(kind: str):
    if kind == "fewer":
        return {"w": PARAMS["w"]}
    if kind == "more":
        return {**PARAMS, "extra": jnp.ones(2)}
    if kind == "nan":
        return {**PARAMS, "w": PARAMS["w"].at[0, 0].set(jnp.nan)}
    if kind == "inf":
        return {**PARAMS, "b": PARAMS["b"].at[1].set(jnp.inf)}
    if kind == "none":
        return None
    return PARAMS


def _monitor_cases(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    names = list(MONITOR_POOLS)
    out = []
    for _ in range(n):
        chosen = rng.choice(names, size=int(rng.integers(1, 3)), replace=False)
        out.append({name: MONITOR_POOLS[name][int(rng.integers(len(MONITOR_POOLS[name])))]
                    for name in chosen})
    return out


def _check_monitor(tx_args, updates_kind, params_kind, state, out, updates, inner):
    """Updates are inner's (or passed through), the one record equals a plain norm."""
    expected = updates if inner is None else inner.update(
        updates, inner.init(PARAMS), _tree(params_kind))[0]
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ds = monitor_dataset(state, PARAMS)
    assert ds.sizes["step"] == 1 and list(ds.step.values) == [0]
    stacked = tx_args.get("stacked")
    for name, g in updates.items():
        layers = stacked is not None and stacked(name, g) and g.ndim > 0
        rows = [g[i] for i in range(g.shape[0])] if layers else [g]
        for layer, row in enumerate(rows):
            entry = f"{name}[{layer}]" if layers else name
            bad = int(np.sum(~np.isfinite(np.asarray(row))))
            assert int(ds.nonfinite.sel(leaf=entry).values[0]) == bad
            if bad == 0:
                np.testing.assert_allclose(float(ds.grad_norm.sel(leaf=entry).values[0]),
                                           float(np.linalg.norm(np.asarray(row))), rtol=1e-6)


def test_monitor_fuzz(counts, monkeypatch):
    monkeypatch.setenv("GRADSTUDY_MEMORY_GB", "0.01")  # 10 MB: capacity 10**7 is beyond it
    c = counts["monitor"]
    problems = []
    for case in _monitor_cases(220):
        tx_args = {"every": 1, "capacity": 2}
        valid = True
        updates_kind, params_kind = "same", "same"
        for name, (value, ok) in case.items():
            valid &= ok
            if name == "updates":
                updates_kind = value
            elif name == "params":
                params_kind = value
            else:
                tx_args[name] = value
        c["tried"] += 1
        try:
            tx = monitor(**tx_args)
            state = tx.init(PARAMS)
            updates = _tree(updates_kind)
            out, state = tx.update(updates, state, _tree(params_kind))
        except ConfigError as e:
            text = str(e)
            if "\n" in text or not _names_an_argument(text):
                problems.append(("badly worded error", case, text[:200]))
                c["badly worded errors"] += 1
            elif valid:  # a false refusal of a valid call is a problem, not a pass
                problems.append(("valid refused", case, text[:200]))
                c["valid refused"] += 1
            else:
                c["one-line errors"] += 1
            continue
        except Exception as e:  # noqa: BLE001 -- the fuzz counts what escapes
            problems.append(("traceback", case, f"{type(e).__name__}: {str(e)[:200]}"))
            c["tracebacks"] += 1
            continue
        c["accepted"] += 1
        if not valid:
            problems.append(("silent accept", case, ""))
            c["silent accepts"] += 1
            continue
        try:
            _check_monitor(tx_args, updates_kind, params_kind, state, out, updates,
                           tx_args.get("inner"))
            c["legitimate accepts (checked)"] += 1
        except AssertionError as e:
            problems.append(("wrong result", case, str(e)[:200]))
            c["wrong results"] += 1
    print("\nmonitor fuzz:", dict(c))
    assert not problems, "\n".join(f"{kind}: {case}: {msg}" for kind, case, msg in problems)
