"""A deterministic fuzz of what ``train()`` is given as data: a few hundred datasets and
cache folders, each a clean one with one to three of its fields replaced by junk (wrong
dtypes, shapes, lengths and containers, NaN/inf in random places, labels out of range,
``classes`` of every kind, cache folders that are files or cannot be made).

An *oracle written here*, from the documented rules (:func:`gradstudy.data.check_dataset`
and :func:`gradstudy.engine.train` docstrings) and independently of the library's checks,
says which fields are at fault.  Every case must then be either

* a one-line :class:`ConfigError` whose leading field is one the oracle blames, or
* accepted, where the oracle finds nothing wrong, and trained as the arrays it converts to
  (float32 inputs, int32 labels): bit-identical to training those arrays directly.

Anything else is counted (tracebacks, silent accepts, false rejects, wrong field) and the
test fails unless all are 0.  The counts are printed (``pytest ... -s``).  One compiled
program serves every accepted case (their shapes are the clean dataset's).
"""

from __future__ import annotations

import numbers
from collections import Counter
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from gradstudy import MLPSpec
from gradstudy.data import Dataset
from gradstudy.engine import OptimizerSpec, Training, train
from gradstudy.errors import ConfigError

N, M, F, CLASSES = 24, 8, 5, 3
_RNG = np.random.default_rng(2024)
_XS = _RNG.normal(size=(N + M, F)).astype(np.float32)
_YS = _RNG.integers(0, CLASSES, N + M).astype(np.int32)
CLEAN = Dataset(_XS[:N], _YS[:N], _XS[N:], _YS[N:], CLASSES)
TRAINING = Training(points=(MLPSpec(width=4, depth=1, in_dim=F, out_dim=CLASSES,
                                    activation="tanh", init="glorot_normal"),),
                    optimizer=OptimizerSpec("sgd", 0.05), steps=2, seeds=1, batch_size=4,
                    record_every=1, eval_every=2)


# ------------------------------------------------------------------------ the mutations
def _set(a, value, rng):
    a = np.array(a, dtype=np.result_type(np.asarray(a).dtype, np.asarray(value).dtype))
    a.reshape(-1)[rng.integers(a.size)] = value
    return a


def _ragged(a):
    rows = np.asarray(a).tolist()
    rows[-1] = rows[-1][:-1]
    return rows


INPUT_MUTATIONS = {  # field value -> replacement (n = the field's examples)
    "list": lambda a, r: np.asarray(a).tolist(),
    "tuples": lambda a, r: tuple(tuple(row) for row in np.asarray(a).tolist()),
    "jax": lambda a, r: jnp.asarray(a),
    "float64": lambda a, r: np.asarray(a, np.float64),
    "float16": lambda a, r: np.asarray(a, np.float16),
    "int32": lambda a, r: np.round(np.asarray(a) * 3).astype(np.int32),
    "uint8": lambda a, r: np.abs(np.round(np.asarray(a) * 3)).astype(np.uint8),
    "bool": lambda a, r: np.asarray(a) > 0,
    "tiny": lambda a, r: _set(np.asarray(a, np.float64), 1e-45, r),
    "big_finite": lambda a, r: _set(a, np.float32(1e30), r),
    "complex": lambda a, r: np.asarray(a, np.complex64),
    "object": lambda a, r: np.asarray(a).astype(object),
    "str": lambda a, r: np.asarray(a).astype(str),
    "datetime": lambda a, r: np.zeros(np.shape(a), "datetime64[s]"),
    "none": lambda a, r: None,
    "scalar": lambda a, r: 1.0,
    "text": lambda a, r: "x",
    "dict": lambda a, r: {"x": np.asarray(a)},
    "1d": lambda a, r: np.asarray(a)[:, 0],
    "3d": lambda a, r: np.asarray(a)[:, :, None],
    "no_features": lambda a, r: np.asarray(a)[:, :0],
    "no_examples": lambda a, r: np.asarray(a)[:0],
    "features-1": lambda a, r: np.asarray(a)[:, :-1],
    "features+1": lambda a, r: np.concatenate([a, a[:, :1]], axis=1),
    "rows-1": lambda a, r: np.asarray(a)[:-1],
    "rows+1": lambda a, r: np.concatenate([a, a[:1]]),
    "nan": lambda a, r: _set(a, np.nan, r),
    "inf": lambda a, r: _set(a, np.inf, r),
    "-inf": lambda a, r: _set(a, -np.inf, r),
    "overflow": lambda a, r: _set(np.asarray(a, np.float64), 1e39, r),
    "ragged": lambda a, r: _ragged(a),
}
LABEL_MUTATIONS = {
    "list": lambda a, r: np.asarray(a).tolist(),
    "jax": lambda a, r: jnp.asarray(a),
    "int64": lambda a, r: np.asarray(a, np.int64),
    "int8": lambda a, r: np.asarray(a, np.int8),
    "uint8": lambda a, r: np.asarray(a, np.uint8),
    "uint64": lambda a, r: np.asarray(a, np.uint64),
    "one_class": lambda a, r: np.ones_like(a),
    "float32": lambda a, r: np.asarray(a, np.float32),
    "float_half": lambda a, r: np.asarray(a, np.float64) + 0.5,
    "float_nan": lambda a, r: _set(np.asarray(a, np.float64), np.nan, r),
    "bool": lambda a, r: np.asarray(a) > 0,
    "str": lambda a, r: np.asarray(a).astype(str),
    "object": lambda a, r: np.asarray(a).astype(object),
    "none": lambda a, r: None,
    "scalar": lambda a, r: 1,
    "-1": lambda a, r: _set(a, -1, r),
    "classes": lambda a, r: _set(a, CLASSES, r),
    "2**31": lambda a, r: _set(np.asarray(a, np.int64), 2**31, r),
    "-2**40": lambda a, r: _set(np.asarray(a, np.int64), -(2**40), r),
    "uint64_huge": lambda a, r: _set(np.asarray(a, np.uint64), np.uint64(2**63), r),
    "column": lambda a, r: np.asarray(a)[:, None],
    "two_columns": lambda a, r: np.stack([a, a], axis=1),
    "rows-1": lambda a, r: np.asarray(a)[:-1],
    "rows+1": lambda a, r: np.concatenate([a, a[:1]]),
    "no_rows": lambda a, r: np.asarray(a)[:0],
}
CLASSES_VALUES = [3, np.int64(3), np.int8(3), 0, 1, 2, 4, -1, 3.0, "3", None, True,
                  10**7, 2**70, np.float64(3)]


def _cache_dirs(root: Path) -> list:
    file = root / "a_file"
    file.write_text("not a folder")
    return [None, root / "cache", str(root / "cache"), root / "new" / "deeper", file,
            file / "below", "", 3, b"bytes", ["a"], Path("/proc/1/no_such_folder")]


# --------------------------------------------------------------------------- the oracle
def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _array(v):
    try:
        a = np.asarray(v)
    except Exception:  # noqa: BLE001 -- ragged
        return None
    return a if a.dtype.kind in "biuf" else None


def oracle(data: Dataset, cache_dir) -> set[str]:
    """The fields at fault (empty: valid), from the documented rules: ``classes`` 0 or an
    integer ≥ 2 (and here 3: the network has 3 outputs and the loss is cross-entropy);
    inputs real numbers of shape (examples ≥ 1, 5), finite in float32; labels integers in
    0..2, one per example; a cache folder None or a path that is or can be a folder."""
    bad = set()
    c = data.classes
    if not (_is_int(c) and (c == 0 or 2 <= c <= 10**6)):
        bad.add("classes")
    elif c != CLASSES:
        bad |= {"classes", "points", "loss"}
    shapes = {}
    for name in ("x", "x_test"):
        a = _array(getattr(data, name))
        if a is None or a.ndim < 2 or a.shape[0] == 0 or a.size == 0:
            bad.add(name)
            continue
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(a.astype(np.float32))):
                bad.add(name)
        shapes[name] = a.shape
    if len(shapes) == 2 and (shapes["x"][1:] != (F,) or shapes["x_test"][1:] != (F,)):
        bad |= {"x", "x_test", "points"}
    labels = {}
    for name, inputs in (("y", "x"), ("y_test", "x_test")):
        a = np.asarray(getattr(data, name)) if _array(getattr(data, name)) is not None \
            else None
        if a is None or a.ndim == 0:
            bad.add(name)
            continue
        if inputs in shapes and len(a) != shapes[inputs][0]:
            bad |= {name, inputs}
        if a.dtype.kind not in "iu" or a.ndim != 1:
            bad.add(name)
            if c == 0 and a.dtype.kind == "f":
                bad.add("loss")  # float targets with cross-entropy: the loss is wrong
        elif a.size and (a.min() < 0 or a.max() >= (c if _is_int(c) else CLASSES)):
            bad.add(name)
        labels[name] = a
    if len(labels) == 2 and labels["y"].shape[1:] != labels["y_test"].shape[1:]:
        bad |= {"y", "y_test"}
    ok_dir = cache_dir is None or (isinstance(cache_dir, (str, Path)) and str(cache_dir)
                                   and not any(p.is_file() for p in
                                               [Path(cache_dir), *Path(cache_dir).parents])
                                   and not str(cache_dir).startswith("/proc/"))
    if not ok_dir:
        bad.add("cache_dir")
    return bad


def _canonical(data: Dataset) -> Dataset:
    """The arrays an accepted dataset is documented to train as."""
    return Dataset(np.asarray(data.x, np.float32), np.asarray(data.y).astype(np.int32),
                   np.asarray(data.x_test, np.float32),
                   np.asarray(data.y_test).astype(np.int32), int(data.classes))


# ---------------------------------------------------------------------------- the cases
def _cases(root: Path, combos: int = 180):
    dirs = _cache_dirs(root)
    rng = np.random.default_rng(16)

    def mutate(field, kind, data):
        table = INPUT_MUTATIONS if field in ("x", "x_test") else LABEL_MUTATIONS
        return data._replace(**{field: table[kind](getattr(data, field), rng)})

    for field in ("x", "x_test"):
        for kind in INPUT_MUTATIONS:
            yield f"{field}:{kind}", mutate(field, kind, CLEAN), None
    for field in ("y", "y_test"):
        for kind in LABEL_MUTATIONS:
            yield f"{field}:{kind}", mutate(field, kind, CLEAN), None
    for c in CLASSES_VALUES:
        yield f"classes:{c!r}", CLEAN._replace(classes=c), None
    for d in dirs:
        yield f"cache_dir:{d!r}", CLEAN, d
    fields = ("x", "x_test", "y", "y_test", "classes", "cache_dir")
    for i in range(combos):
        chosen = rng.choice(len(fields), size=rng.integers(2, 4), replace=False)
        data, cache_dir, names = CLEAN, None, []
        for f in sorted(fields[j] for j in chosen):
            if f == "classes":
                data = data._replace(classes=CLASSES_VALUES[rng.integers(len(CLASSES_VALUES))])
                names.append(f"classes={data.classes!r}")
            elif f == "cache_dir":
                cache_dir = dirs[rng.integers(len(dirs))]
                names.append(f"cache_dir={cache_dir!r}")
            else:
                table = INPUT_MUTATIONS if f in ("x", "x_test") else LABEL_MUTATIONS
                kind = list(table)[rng.integers(len(table))]
                data = mutate(f, kind, data)
                names.append(f"{f}:{kind}")
        yield "combo " + " + ".join(names), data, cache_dir


def test_train_inputs_fuzz(tmp_path, capsys):
    tally, faults, accepts = Counter(), [], Counter()
    references = {}

    def reference(canonical: Dataset):
        key = tuple(np.asarray(a).tobytes() for a in canonical[:4])
        if key not in references:
            references[key] = train(TRAINING, canonical, progress=False)
        return references[key]

    for label, data, cache_dir in _cases(tmp_path):
        tally["tried"] += 1
        blamed = oracle(data, cache_dir)
        try:
            ds = train(TRAINING, data, cache_dir=cache_dir, progress=False)
        except ConfigError as e:
            message = str(e)
            field = message.split(":", 1)[0].strip()
            if "\n" in message:
                faults.append(f"{label}: two lines: {message!r}")
                tally["not one line"] += 1
            elif not blamed:
                faults.append(f"{label}: valid input rejected: {message}")
                tally["false rejects"] += 1
            elif field not in blamed:
                faults.append(f"{label}: names {field!r}, expected one of {sorted(blamed)}: "
                              f"{message}")
                tally["wrong field"] += 1
            else:
                tally["one-line errors"] += 1
            continue
        except Exception as e:  # noqa: BLE001 -- counted and reported
            faults.append(f"{label}: traceback {type(e).__name__}: {e}"[:300])
            tally["tracebacks"] += 1
            continue
        if blamed:
            faults.append(f"{label}: accepted, but {sorted(blamed)} are wrong")
            tally["silent accepts"] += 1
            continue
        expected = reference(_canonical(data))
        for name in ("loss", "test_loss", "layer_grad_norm", "diverged_at"):
            if not np.array_equal(ds[name].values, expected[name].values, equal_nan=True):
                faults.append(f"{label}: accepted but trained other numbers ({name})")
                tally["wrong numbers"] += 1
                break
        else:
            tally["accepted, trained as documented"] += 1
            accepts[label.split(":")[0].split(" ")[0]] += 1
            if np.any(expected.diverged_at.values >= 0):
                tally["of which diverged (valid data, e.g. 1e30 inputs)"] += 1
    with capsys.disabled():
        print(f"\ntrain() fuzz: {dict(tally)}; accepts by field: {dict(accepts)}")
        for fault in faults[:30]:
            print("  ", fault)
    assert tally["tried"] >= 300
    assert not faults, f"{len(faults)} faults; first: {faults[:5]}"
