"""Property-based fuzzing of every input check: ``MLPSpec``, ``Sweep`` and the CLI's ``--set``.

Each property draws inputs that mix valid values with junk (None, bools, huge and negative
integers, inf/NaN, unicode text, lists, dicts, NumPy arrays and scalars, fractions,
decimals, complex numbers, arbitrary objects).  An *oracle written here*, from the
documented rules and independently of the library's checks, says which fields are invalid:

* invalid input must raise a one-line :class:`ConfigError` whose leading field (the text
  before the first ``:``) is one of the invalid fields (for ``--set``: ``--set KEY``);
* valid input must be accepted (and, for ``--set``, parse to the value that was written).

Anything else is counted — tracebacks (an exception other than ConfigError), silent
accepts (invalid input accepted), false rejects and wrong field names — and the counts are
printed at the end of the module (``pytest tests/test_fuzz.py -s``); the module fails
unless they are all 0.  No JAX program is compiled: only constructors and parsers run.
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers
import os
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from gradstudy import MLPSpec, Sweep
from gradstudy.errors import ConfigError
from gradstudy.nn import activation_names, initializer_names
from gradstudy.studies import discover, parse_overrides, study_params

# The documented bounds (gradstudy.families.mlp / gradstudy.engine docstrings and README).
MAX_UNITS = 10**6
MAX_GAIN = 1e6
MAX_SEEDS = 10**5
MAX_BATCH = 10**6
MAX_POINTS = 10**5
MAX_BASE_SEED = 2**32 - 1
NORMS = ("none", "layernorm", "batchnorm")
DTYPES = ("float32", "float64")

TALLY: Counter = Counter()
BY_TEST: dict[str, Counter] = {}
INVALID = object()  # an oracle's "no valid value"; also judge's "counted, no result"
# GRADSTUDY_FUZZ_COUNT_ONLY=1: tally every outcome without failing (to measure another
# version of the library, e.g. before a fix); the counts are printed at the end.
COUNT_ONLY = os.environ.get("GRADSTUDY_FUZZ_COUNT_ONLY") == "1"
# examples per property: 16 properties, ~3,000 examples, ~20 s on one core
FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FUZZ_STUDY = settings(FUZZ, max_examples=150)  # x 4 studies
STUDIES = discover()


@pytest.fixture(scope="module", autouse=True)
def fuzz_report():
    yield
    counts = {k: TALLY[k] for k in ("examples", "rejected", "accepted", "tracebacks",
                                    "silent accepts", "false rejects", "wrong field")}
    print(f"\nfuzz counts: {counts}")
    for test in sorted(BY_TEST):
        print(f"  {test}: {dict(BY_TEST[test])}")
    if COUNT_ONLY:
        return
    assert counts["tracebacks"] == counts["silent accepts"] == 0, counts
    assert counts["false rejects"] == counts["wrong field"] == 0, counts


def judge(call, invalid: set[str], field_of=lambda msg: msg.split(":", 1)[0].strip()):
    """Run ``call`` and hold it to the oracle's ``invalid`` fields; tally the outcome."""
    _count("examples")
    try:
        result = call()
    except ConfigError as e:
        message = str(e)
        if not invalid:
            return _fault("false rejects", f"valid input rejected: {message}")
        if "\n" in message or field_of(message) not in invalid:
            return _fault("wrong field", f"expected a one-line error naming one of "
                                         f"{sorted(invalid)}, got {message!r}")
        _count("rejected")
        return None
    except Exception as e:
        if COUNT_ONLY:
            return _fault("tracebacks", repr(e))
        _count("tracebacks")
        raise
    if invalid:
        return _fault("silent accepts", f"invalid {sorted(invalid)} accepted")
    _count("accepted")
    return result


def _count(kind: str) -> None:
    TALLY[kind] += 1
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    BY_TEST.setdefault(test, Counter())[kind] += 1


def _fault(kind: str, message: str):
    _count(kind)
    if COUNT_ONLY:
        return INVALID
    raise AssertionError(message)


# ----------------------------------------------------------------------------- junk values
JUNK = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(10**30), 10**30), st.integers(10**300, 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), -0.0, 1e-320, 1e308]),
    st.text(max_size=8), st.binary(max_size=4), st.characters().map(str),
    st.lists(st.integers(-3, 3), max_size=3), st.tuples(st.integers(), st.text(max_size=2)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.just({}),
    st.sets(st.integers(1, 4), max_size=3), st.frozensets(st.integers(1, 4), max_size=2),
    st.just(np.array(["none", "x"])), st.just(np.array([1.0, 2.0])),
    st.just(np.zeros((2, 2))), st.just(np.array(3)),
    st.sampled_from([np.int64(5), np.int32(-1), np.float32(2.5), np.float64("nan"),
                     np.bool_(True), np.str_("tanh"), np.uint8(7)]),
    st.fractions(), st.decimals(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=False, max_magnitude=10), st.just(object()),
    st.just(range(3)),
    st.sampled_from(["tanh", "relu", "gaussian", "he_normal", "none", "layernorm",
                     "float32", "float64", "", " ", "Tanh", "float16"]),
)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _int_in(v, lo, hi) -> bool:
    return _is_int(v) and lo <= v <= hi


def _real_in(v, lo, hi) -> bool:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        return False
    try:
        x = float(v)
    except OverflowError:
        return False
    return math.isfinite(x) and lo <= x <= hi


# --------------------------------------------------------------------------------- MLPSpec
MLP_VALID = {
    "width": st.one_of(st.integers(1, 4096), st.just(MAX_UNITS), st.just(np.int64(8))),
    "depth": st.integers(1, MAX_UNITS),
    "in_dim": st.one_of(st.none(), st.integers(1, MAX_UNITS)),
    "out_dim": st.integers(1, 100),
    "activation": st.one_of(st.sampled_from(activation_names()), st.just(lambda x: 2 * x)),
    "init": st.sampled_from(initializer_names()),
    "sigma_w": st.one_of(st.floats(0, MAX_GAIN), st.integers(0, 10**6),
                         st.just(np.float32(1.5)), st.just(fractions.Fraction(3, 2))),
    "sigma_b": st.floats(0, MAX_GAIN),
    "norm": st.sampled_from(NORMS),
    "residual_alpha": st.one_of(st.none(), st.floats(0, MAX_GAIN)),
    "dtype": st.sampled_from(DTYPES + (np.float32, np.float64, np.dtype("float64"))),
}


def mlp_field_valid(name: str, v) -> bool:
    if name in ("width", "depth", "out_dim"):
        return _int_in(v, 1, MAX_UNITS)
    if name == "in_dim":
        return v is None or _int_in(v, 1, MAX_UNITS)
    if name == "activation":
        return callable(v) or (isinstance(v, str) and v in activation_names())
    if name == "init":
        return callable(v) or (isinstance(v, str) and v in initializer_names())
    if name in ("sigma_w", "sigma_b"):
        return _real_in(v, 0, MAX_GAIN)
    if name == "residual_alpha":
        return v is None or _real_in(v, 0, MAX_GAIN)
    if name == "norm":
        return isinstance(v, str) and v in NORMS
    if name == "dtype":  # a name, or a NumPy/JAX dtype or scalar type of that name
        if isinstance(v, (type, np.dtype)):
            try:
                return np.dtype(v).name in DTYPES
            except TypeError:
                return False
        return isinstance(v, str) and v in DTYPES
    raise KeyError(name)


MLP_KWARGS = st.fixed_dictionaries(
    {}, optional={k: st.one_of(valid, JUNK) for k, valid in MLP_VALID.items()})


@FUZZ
@given(MLP_KWARGS)
def test_fuzz_mlpspec(kwargs):
    invalid = {k for k, v in kwargs.items() if not mlp_field_valid(k, v)}
    spec = judge(lambda: MLPSpec(**kwargs), invalid)
    if isinstance(spec, MLPSpec):  # stored as plain Python numbers: hashable, JSON-able
        hash(spec)
        assert type(spec.width) is int and type(spec.sigma_w) is float


@FUZZ
@given(st.fixed_dictionaries(MLP_VALID))
def test_fuzz_mlpspec_every_valid_spec_is_accepted(kwargs):
    judge(lambda: MLPSpec(**kwargs), set())


# ----------------------------------------------------------------------------------- Sweep
SPECS = st.lists(st.builds(MLPSpec, width=st.integers(1, 8), sigma_w=st.floats(0, 3)),
                 min_size=1, max_size=4)


@st.composite
def sweep_kwargs(draw, junk: bool):
    def pick(valid):
        return draw(st.one_of(valid, JUNK) if junk else valid)

    points = pick(SPECS.flatmap(lambda p: st.sampled_from([p, tuple(p)])))
    n = len(points) if isinstance(points, (list, tuple)) else 2
    labels = pick(st.one_of(st.none(), st.lists(
        st.text(min_size=1, max_size=6).filter(str.strip), min_size=n, max_size=n,
        unique=True)))
    if junk:  # junk that looks nearly right: wrong length, repeats, non-strings, a string
        labels = draw(st.sampled_from([labels, ["a"] * n, [1, None][:n] or [1], "ab",
                                       [f"p{i}" for i in range(n + 1)], [" "] * n]))
        points = draw(st.sampled_from([points, [1, 2], [points[0] if isinstance(
            points, list) and points else 1, "x"], []]))
    kwargs = {"points": points, "labels": labels,
              "depths": pick(st.lists(st.integers(1, 64), min_size=1, max_size=4)),
              "seeds": pick(st.integers(1, MAX_SEEDS)),
              "batch": pick(st.integers(1, MAX_BATCH)),
              "input_std": pick(st.floats(0, MAX_GAIN)),
              "base_seed": pick(st.integers(0, MAX_BASE_SEED)),
              "gain_chunk": pick(st.integers(1, 64))}
    drop = draw(st.sets(st.sampled_from(["labels", "seeds", "batch", "input_std",
                                         "base_seed", "gain_chunk"])))
    return {k: v for k, v in kwargs.items() if k not in drop}


def _int_as_float(v):
    """An int as the float the API stores for a float parameter (if it has one)."""
    try:
        return float(v) if _is_int(v) else v
    except OverflowError:
        return v


def _sequence(v) -> bool:
    return isinstance(v, (list, tuple, range)) or (isinstance(v, np.ndarray) and v.ndim == 1)


def sweep_invalid(kw) -> set[str]:
    bad = set()
    points = kw["points"]
    points_ok = (_sequence(points) and 1 <= len(points) <= MAX_POINTS
                 and all(isinstance(p, MLPSpec) for p in points))
    if not points_ok:
        bad.add("points")
    depths = kw["depths"]
    if not (_sequence(depths) and len(depths) >= 1
            and all(_int_in(d, 1, MAX_UNITS) for d in depths)):
        bad.add("depths")
    for name, lo, hi in [("seeds", 1, MAX_SEEDS), ("batch", 1, MAX_BATCH),
                         ("gain_chunk", 1, MAX_POINTS), ("base_seed", 0, MAX_BASE_SEED)]:
        if name in kw and not _int_in(kw[name], lo, hi):
            bad.add(name)
    if "input_std" in kw and not _real_in(kw["input_std"], 0, MAX_GAIN):
        bad.add("input_std")
    labels = kw.get("labels")
    if labels is not None:
        ok = (_sequence(labels) and all(isinstance(s, str) and s.strip() for s in labels)
              and len(set(labels)) == len(labels))
        if not ok or (points_ok and len(labels) != len(points)):
            bad.add("labels")
    return bad


@FUZZ
@given(sweep_kwargs(junk=True))
def test_fuzz_sweep(kwargs):
    invalid = sweep_invalid(kwargs)
    sweep = judge(lambda: Sweep(**kwargs), invalid)
    if isinstance(sweep, Sweep):
        assert isinstance(sweep.points, tuple) and len(sweep.labels) == len(sweep.points)
        assert list(sweep.depths) == sorted(set(int(d) for d in kwargs["depths"]))


@FUZZ
@given(sweep_kwargs(junk=False))
def test_fuzz_sweep_every_valid_sweep_is_accepted(kwargs):
    judge(lambda: Sweep(**kwargs), set())


# ---------------------------------------------------------------------------- --set (CLI)
def oracle_limit(module, key):
    """The study's declared LIMITS entry for ``key`` in one normal form (independently of
    gradstudy.studies.Limit): lo, hi, choices, min_len, max_len, distinct, increasing."""
    spec = getattr(module, "LIMITS", {}).get(key)
    out = {"lo": None, "hi": None, "choices": None, "len": (1, 10_000), "distinct": False,
           "increasing": False}
    if isinstance(spec, tuple) and all(isinstance(v, str) for v in spec):
        out["choices"] = spec
    elif isinstance(spec, tuple):
        out["lo"], out["hi"] = spec
    elif isinstance(spec, dict):
        out.update({k: v for k, v in spec.items() if k in ("choices", "len", "distinct",
                                                          "increasing")})
        if "range" in spec:
            out["lo"], out["hi"] = spec["range"]
    return out


INT_TEXT = re.compile(r"[+-]?[0-9]+(_[0-9]+)*")


def oracle_parse(raw: str, template):
    """The documented ``--set`` grammar: ASCII integers / floats, true/false/1/0,
    comma-separated lists, strings stripped."""
    text = raw.strip()
    if isinstance(template, list):
        items = [oracle_parse(r, template[0]) for r in raw.split(",")]
        return INVALID if any(i is INVALID for i in items) else items
    if isinstance(template, bool):
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), INVALID)
    if isinstance(template, int):
        if not INT_TEXT.fullmatch(text) or len(text) > 4000:  # far beyond every bound
            return INVALID
        return int(text)
    if isinstance(template, float):
        if not text.isascii():
            return INVALID
        try:
            return float(text)
        except ValueError:
            return INVALID
    return text


def oracle_valid(value, template, lim) -> bool:
    if isinstance(template, list):
        lo_len, hi_len = lim["len"]
        if not (isinstance(value, list) and lo_len <= len(value) <= hi_len):
            return False
        if not all(oracle_valid(v, template[0], {**lim, "len": (1, 1)}) for v in value):
            return False
        sig = [f"{v:.6g}" if isinstance(v, float) else v for v in value]
        if lim["distinct"] and len(set(sig)) != len(sig):
            return False
        return not (lim["increasing"] and any(a >= b for a, b in zip(value, value[1:])))
    if isinstance(template, bool):
        return isinstance(value, bool)
    if isinstance(template, int):
        lo, hi = (1, 10**6) if lim["lo"] is None else (lim["lo"], lim["hi"])
        return _int_in(value, lo, hi)
    if isinstance(template, float):
        if lim["lo"] is None:
            return _real_in(value, -math.inf, math.inf)
        return _real_in(value, lim["lo"], lim["hi"])
    if not isinstance(value, str):
        return False
    if lim["choices"] is not None:
        return value in lim["choices"]
    return bool(value.strip()) and value.isprintable() and len(value) <= 200


def _float_values(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def valid_value(draw, template, lim):
    """A value inside the declared limits, drawn independently of gradstudy.studies."""
    if isinstance(template, list):
        lo_len, hi_len = lim["len"]
        hi_len = min(hi_len, lo_len + 12)
        elem = valid_value(template[0], {**lim, "len": (1, 1), "distinct": False,
                                         "increasing": False})
        values = draw(st.lists(elem, min_size=lo_len, max_size=hi_len))
        if lim["distinct"] or lim["increasing"]:
            by_sig = {f"{v:.6g}" if isinstance(v, float) else v: v for v in values}
            values = list(by_sig.values())
            assume(len(values) >= lo_len)
        if lim["increasing"]:
            values.sort()
        return values
    if isinstance(template, bool):
        return draw(st.booleans())
    if isinstance(template, int):
        lo, hi = (1, 10**6) if lim["lo"] is None else (lim["lo"], lim["hi"])
        return draw(st.integers(lo, hi))
    if isinstance(template, float):
        lo, hi = (-1e12, 1e12) if lim["lo"] is None else (lim["lo"], lim["hi"])
        return draw(_float_values(lo, hi))
    if lim["choices"] is not None:
        return draw(st.sampled_from(lim["choices"]))
    return draw(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1,
                        max_size=8))


def render(value) -> str:
    if isinstance(value, list):
        return ",".join(render(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


RAW_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "-1e400", "1e-400", "", " ", ",",
                     "1,,2", "0", "-1", "1.5", "2", "1e3", "1_000", "0x10", "٣", "１２",
                     "true", "false", "9" * 30, "9" * 4400, "float32", "float64", "float16",
                     "1,1", "2,1", "0.5,2", "1,2,3", "\x00", "1\n2", "0.8,1,1.5,2"]),
    st.lists(st.one_of(st.integers(-10, 10**7).map(str), st.floats().map(repr)),
             min_size=1, max_size=6).map(",".join),
)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_fuzz_set_random_strings(name):
    module = STUDIES[name]

    @FUZZ_STUDY
    @given(scale=st.sampled_from(sorted(module.SCALES)), data=st.data())
    def check(scale, data):
        defaults = module.SCALES[scale]
        keys = data.draw(st.lists(st.one_of(st.sampled_from(sorted(defaults)),
                                            st.text(max_size=6)), min_size=1, max_size=3))
        raws = [data.draw(RAW_TEXT) for _ in keys]
        items = [f"{k}={r}" for k, r in zip(keys, raws)]
        if data.draw(st.booleans()):
            items.append(data.draw(st.text(max_size=6)))  # maybe without '='
        invalid, expected = set(), {}
        for item in items:
            if "=" not in item:
                invalid.add("--set")
                break
            key, raw = item.split("=", 1)
            key = key.strip()
            if key not in defaults:
                invalid.add("--set")
                break
            if key in expected:
                invalid.add(f"--set {key}")
                break
            value = oracle_parse(raw, defaults[key])
            if value is INVALID or not oracle_valid(value, defaults[key],
                                                     oracle_limit(module, key)):
                invalid.add(f"--set {key}")
                break
            expected[key] = value

        def run():
            overrides = parse_overrides(items, defaults, getattr(module, "LIMITS", None))
            study_params(module, scale, overrides)
            return overrides

        got = judge(run, invalid)
        if isinstance(got, dict):
            assert got == expected

    check()


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_fuzz_set_every_valid_value_is_accepted(name):
    module = STUDIES[name]

    @FUZZ_STUDY
    @given(scale=st.sampled_from(sorted(module.SCALES)), data=st.data())
    def check(scale, data):
        defaults = module.SCALES[scale]
        keys = data.draw(st.lists(st.sampled_from(sorted(defaults)), min_size=1,
                                  max_size=len(defaults), unique=True))
        values = {k: data.draw(valid_value(defaults[k], oracle_limit(module, k))) for k in keys}
        items = [f"{k}={render(v)}" for k, v in values.items()]

        def run():
            overrides = parse_overrides(items, defaults, getattr(module, "LIMITS", None))
            return overrides, study_params(module, scale, overrides)

        result = judge(run, set())
        if result is INVALID:  # counted (COUNT_ONLY)
            return
        overrides, params = result
        assert overrides == values
        assert params == {**defaults, **values}

    check()


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_fuzz_study_params_python_values(name):
    """The API path (run_study(..., overrides={key: value})): any Python object."""
    module = STUDIES[name]

    @FUZZ_STUDY
    @given(scale=st.sampled_from(sorted(module.SCALES)), data=st.data())
    def check(scale, data):
        defaults = module.SCALES[scale]
        key = data.draw(st.sampled_from(sorted(defaults)))
        lim = oracle_limit(module, key)
        value = data.draw(st.one_of(JUNK, valid_value(defaults[key], lim),
                                    st.lists(JUNK, max_size=3)))
        template = defaults[key]
        if isinstance(template, list) and isinstance(value, tuple):
            value = list(value)
        # the API accepts an int where the default is a float (same number)
        ok = oracle_valid([_int_as_float(v) for v in value]
                          if isinstance(template, list) and isinstance(value, list)
                          and isinstance(template[0], float) else value, template, lim)
        judge(lambda: study_params(module, scale, {key: value}), set() if ok else {key})

    check()


# ------------------------------------------------------------- the cases issue 5 reported
@pytest.mark.parametrize("kwargs,field", [
    ({"sigma_w": 10**400}, "sigma_w"),
    ({"norm": np.array(["none", "x"])}, "norm"),
    ({"init": {}}, "init"),
    ({"activation": {}}, "activation"),
    ({"dtype": np.array(["float32"])}, "dtype"),
    ({"width": 10**10}, "width"),
    ({"sigma_b": decimal.Decimal("0.5")}, "sigma_b"),
])
def test_mlpspec_reported_cases(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        MLPSpec(**kwargs)


@pytest.mark.parametrize("kwargs,field", [
    ({"points": 1}, "points"),
    ({"points": [1, 2]}, "points"),
    ({"base_seed": 2**70}, "base_seed"),
    ({"base_seed": 2**32}, "base_seed"),  # PRNGKey(2**32) is PRNGKey(0)
    ({"input_std": float("inf")}, "input_std"),
    ({"input_std": True}, "input_std"),
    ({"labels": "ab"}, "labels"),
    ({"labels": [1, None]}, "labels"),
    ({"depths": 5}, "depths"),
    ({"seeds": 10**6}, "seeds"),
])
def test_sweep_reported_cases(kwargs, field):
    base = {"points": [MLPSpec(width=4), MLPSpec(width=4, sigma_w=2.0)], "depths": [2]}
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Sweep(**{**base, **kwargs})


class _Unprintable:
    def __repr__(self):
        raise RuntimeError("repr fails")


def test_error_message_survives_a_failing_repr():
    with pytest.raises(ConfigError, match="^activation: .*_Unprintable"):
        MLPSpec(activation=_Unprintable())
