"""Studies: discovery, parameters by scale, claims, and ``summary.json``.

A study is one file in ``experiments/`` defining ``NAME``, ``DESCRIPTION``, ``SCALES``
(``{"smoke": {...}, "paper": {...}}``: the sweep parameters at each scale) and
``run(ctx, params) -> list[Claim]``; optionally ``LIMITS`` (the allowed values of each
parameter, see :class:`Limit`; generic bounds otherwise) and ``validate(params)`` for
checks across parameters.  It declares its sweep, calls the library and draws;
:func:`run_study` checks the parameters (:func:`study_params`), times the run and writes
``summary.json`` next to its cached data.  A file that fails to import, or declares
malformed ``SCALES``/``LIMITS``, is reported as broken by :func:`discover_all` without
hiding the others.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import re
import time
import traceback
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gradstudy import status
from gradstudy._validate import short_repr
from gradstudy.engine._sweep import run_cached
from gradstudy.engine._training import train
from gradstudy.errors import ConfigError
from gradstudy.results import backend, notice, versions, write_json_atomic
from gradstudy.studies._stats import finite_median  # noqa: F401  (moved to stats; the old name)

SCALES = ("smoke", "paper")


@dataclass(frozen=True)
class Claim:
    """A measured number against an independent expectation.

    ``passed`` is computed, never set: |measured − expected| ≤ tolerance (``kind="abs"``),
    ≤ tolerance·|expected| (``"rel"``), measured < / > expected (``"less"``/``"greater"``),
    or expected ≤ measured ≤ upper (``"range"``); non-finite measured fails.

    ``verdict`` has a third value besides ``"pass"`` and ``"fail"``: ``"not enough seeds"``
    for an ``abs``/``rel`` claim whose value was measured but whose tolerance is NaN — the
    standard error behind it had too few finite seeds (``gradstudy.studies.MIN_SEEDS``).
    Such a claim is not passed (``passed`` is False) and is counted on its own.
    """

    id: str
    statement: str
    measured: float
    expected: float
    tolerance: float
    source: str
    kind: str = "abs"
    upper: float = float("nan")

    @property
    def passed(self) -> bool:
        m, e = float(self.measured), float(self.expected)
        if not math.isfinite(m):
            return False
        if self.kind == "abs":
            return abs(m - e) <= self.tolerance
        if self.kind == "rel":
            return abs(m - e) <= self.tolerance * abs(e)
        if self.kind == "less":
            return m < e
        if self.kind == "greater":
            return m > e
        if self.kind == "range":
            return e <= m <= float(self.upper)
        raise ConfigError(f"kind: unknown value {self.kind!r}; "
                          "allowed: abs, rel, less, greater, range")

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"fail"`` or ``"not enough seeds"`` (see the class docstring)."""
        if self.passed:
            return PASS
        if self.kind in ("abs", "rel") and math.isfinite(float(self.measured)) \
                and math.isnan(float(self.tolerance)):
            return NOT_ENOUGH_SEEDS
        return FAIL

    def as_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "measured": _num(self.measured),
                "expected": _num(self.expected), "tolerance": _num(self.tolerance),
                "comparison": self.kind, "pass": self.passed, "verdict": self.verdict,
                "source": self.source,
                **({"upper": _num(self.upper)} if self.kind == "range" else {})}


PASS, FAIL, NOT_ENOUGH_SEEDS = "pass", "fail", "not enough seeds"
VERDICTS = (PASS, FAIL, NOT_ENOUGH_SEEDS)


def claim_verdict(claim: dict) -> str:
    """The verdict of a claim as stored in ``summary.json`` (:meth:`Claim.verdict`; also
    for summaries written before verdicts were stored, from their numbers)."""
    verdict = claim.get("verdict")
    if verdict in VERDICTS:
        return verdict
    return Claim(str(claim.get("id", "")), "", _float(claim.get("measured")),
                 _float(claim.get("expected")), _float(claim.get("tolerance", 0.0)), "",
                 claim.get("comparison", "abs"), _float(claim.get("upper", "nan"))).verdict


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else str(x)


@dataclass
class Context:
    """What a study's ``run`` gets: where to put things, and a cached sweep runner."""

    name: str
    scale: str
    results_dir: Path
    figures_dir: Path
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def sweep(self, sweep, tag: str = "sweep", keep_backprop: bool = False):
        """Run (or load) ``sweep``; its non-finite values are counted for the summary."""
        ds = run_cached(sweep, self.results_dir, tag, progress=self.progress,
                        keep_backprop=keep_backprop,
                        progress_label=f"{self.name} [{tag}]")
        for var in ds.data_vars:
            if var.endswith("_status"):
                for reason, n in status.counts(ds[var].values).items():
                    key = f"{var[:-7]}: {reason}"
                    self.extra.setdefault("nonfinite", {})
                    self.extra["nonfinite"][key] = self.extra["nonfinite"].get(key, 0) + n
        return ds


    def train(self, training, data, tag: str = "train"):
        """Train (or load) ``training`` on ``data`` (:func:`gradstudy.engine.train`), with a
        checkpoint after every chunk in this study's results folder; diverged runs are
        counted for the summary."""

        ds = train(training, data, cache_dir=self.results_dir, name=tag,
                   progress=self.progress, progress_label=f"{self.name} [{tag}]")
        at = ds.diverged_at
        diverged = int((at.values >= 0).sum())
        if diverged:
            self.extra.setdefault("diverged_runs", {})[tag] = diverged
            # what `gradstudy run` prints: of how many runs, which points, at which steps
            by_point = {}
            if "point" in at.dims:
                for label in at.point.values:
                    n = int((at.sel(point=label).values >= 0).sum())
                    if n:
                        by_point[str(label)] = n
            self.extra.setdefault("divergence", {})[tag] = {
                "runs": int(at.size), "diverged": diverged, "by_point": by_point,
                "steps": sorted(int(v) for v in at.values.ravel() if v >= 0)}
        return ds


def experiments_dir() -> Path:
    """The folder of the studies: ``$GRADSTUDY_EXPERIMENTS``; else the studies inside the
    installed package (``gradstudy/experiments``, where the wheel puts the repository's
    ``experiments/``); else ``experiments/`` beside the package (a checkout or an editable
    install); else ``experiments/`` in the current directory.

    Raises:
        ConfigError: ``$GRADSTUDY_EXPERIMENTS`` names no directory, or there is none.
    """
    env = os.environ.get("GRADSTUDY_EXPERIMENTS")
    if env:
        if not Path(env).is_dir():
            raise ConfigError(f"GRADSTUDY_EXPERIMENTS: {env!r} is not a directory")
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    candidates = (package / "experiments", package.parent / "experiments",
                  Path.cwd() / "experiments")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"experiments: no directory {', '.join(repr(str(c)) for c in candidates)}"
                      "; set GRADSTUDY_EXPERIMENTS to the folder holding the studies")


def discover() -> dict[str, ModuleType]:
    """Every working ``experiments/*.py`` with a ``run`` function, by its ``NAME``."""
    return discover_all()[0]


def discover_all() -> tuple[dict[str, ModuleType], dict[str, str]]:
    """``(studies, broken)``: the working studies by ``NAME``, and a one-line reason by
    file stem for each file that fails to import or declares malformed ``SCALES`` /
    ``LIMITS`` — one broken file never hides the others."""
    studies: dict[str, ModuleType] = {}
    broken: dict[str, str] = {}
    for path in sorted(experiments_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            spec = importlib.util.spec_from_file_location(
                f"gradstudy_experiments.{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # noqa: BLE001 -- any failure marks it broken
            broken[path.stem] = _import_failure(path, e)
            continue
        if not (hasattr(module, "run") and hasattr(module, "SCALES")):
            # a study file that declares neither is reported, not silently left out (helper
            # modules start with "_")
            missing = [a for a in ("NAME", "run", "SCALES") if not hasattr(module, a)]
            broken[path.stem] = (f"not a study: it does not define {', '.join(missing)} "
                                 "(name helper modules _*.py)")
            continue
        name = getattr(module, "NAME", path.stem)
        try:
            _check_declarations(module)
            if not isinstance(name, str) or not name or name in studies or name in broken:
                raise ValueError(f"NAME {name!r} is empty or already used by another file")
        except (ValueError, TypeError, ConfigError) as e:
            broken[path.stem] = " ".join(f"{type(e).__name__}: {e}".split())[:200]
            continue
        studies[name] = module
    return studies, broken


def _import_failure(path: Path, error: BaseException) -> str:
    """``"SyntaxError at line 12: invalid syntax"``: the line in the study's own file."""
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if Path(f.filename) == path]
        line = frames[-1].lineno if frames else None
    message = getattr(error, "msg", None) if isinstance(error, SyntaxError) else str(error)
    where = f" at line {line}" if line else ""
    return " ".join(f"{type(error).__name__}{where}: {message}".split())[:200]


def _check_declarations(module: ModuleType) -> None:
    """SCALES is {scale: {key: default}}, LIMITS names known keys with well-formed limits,
    and every default satisfies its limit (else the study is reported as broken)."""
    scales = module.SCALES
    if not isinstance(scales, dict) or not scales or not all(
            isinstance(s, str) and isinstance(p, dict) for s, p in scales.items()):
        raise ValueError("SCALES must be a non-empty dict {scale: {key: default}}")
    limits = study_limits(module)
    for scale, defaults in scales.items():
        for key, default in defaults.items():
            limits[key].check(f"SCALES[{scale!r}][{key!r}]", default, default)


def require(condition: bool, field: str, message: str) -> None:
    """For a study's ``validate(params)``: raise a one-line ConfigError naming the field."""
    if not condition:
        raise ConfigError(f"{field}: {message}")


# Generic bounds for a study parameter without a LIMITS entry, by the type of its default.
GENERIC_INT_RANGE = (1, 10**6)
GENERIC_MAX_ITEMS = 10_000
GENERIC_MAX_CHARS = 200
_LIMIT_KEYS = {"range", "choices", "len", "distinct", "increasing"}


@dataclass(frozen=True)
class Limit:
    """Allowed values of one study parameter (of each item, for a list parameter).

    A study declares them in a module-level ``LIMITS`` dict, ``key -> spec``, where spec is
    ``(lo, hi)`` (numbers: inclusive bounds), a tuple of strings (the allowed values), or a
    dict with any of ``"range": (lo, hi)``, ``"choices": (...)``, ``"len": (min, max)``
    (list length), ``"distinct": True`` (no two items equal, floats compared to the 6
    significant digits studies label them with) and ``"increasing": True`` (strictly).
    A parameter without an entry gets generic bounds from its default's type: integers in
    ``GENERIC_INT_RANGE``, finite floats, lists of 1 to ``GENERIC_MAX_ITEMS`` items,
    non-empty printable strings of at most ``GENERIC_MAX_CHARS`` characters.
    """

    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    min_len: int = 1
    max_len: int = GENERIC_MAX_ITEMS
    distinct: bool = False
    increasing: bool = False

    @classmethod
    def from_spec(cls, key: str, spec) -> "Limit":
        """Parse one ``LIMITS`` entry; ValueError for a malformed one (a study bug)."""
        if isinstance(spec, Limit):
            return spec
        if isinstance(spec, (tuple, list)):
            spec = ({"choices": tuple(spec)} if spec and all(isinstance(v, str) for v in spec)
                    else {"range": tuple(spec)})
        if not isinstance(spec, dict) or not set(spec) <= _LIMIT_KEYS:
            raise ValueError(f"LIMITS[{key!r}]: expected (lo, hi), a tuple of strings or a "
                             f"dict with keys {sorted(_LIMIT_KEYS)}, got {spec!r}")
        lo = hi = None
        if "range" in spec:
            bounds = tuple(spec["range"])
            if len(bounds) != 2 or not all(_is_number(b) for b in bounds) \
                    or not bounds[0] <= bounds[1]:
                raise ValueError(f"LIMITS[{key!r}]: range must be (lo, hi) with lo <= hi, "
                                 f"got {spec['range']!r}")
            lo, hi = bounds
        min_len, max_len = spec.get("len", (1, GENERIC_MAX_ITEMS))
        if not (isinstance(min_len, int) and isinstance(max_len, int)
                and 0 <= min_len <= max_len):
            raise ValueError(f"LIMITS[{key!r}]: len must be (min, max), got {spec['len']!r}")
        choices = tuple(spec["choices"]) if "choices" in spec else None
        return cls(lo, hi, choices, min_len, max_len, bool(spec.get("distinct", False)),
                   bool(spec.get("increasing", False)))

    def check(self, name: str, value, default):
        """``value`` checked against this limit and typed like ``default``; a one-line
        ConfigError naming ``name`` otherwise."""
        if not isinstance(default, (list, tuple)):
            return self._check_item(name, value, default, "")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: must be a list, got {short_repr(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            raise ConfigError(f"{name}: needs {self._count()} values, got {len(value)}")
        template = default[0] if default else (self.choices or (0.0,))[0]
        items = [self._check_item(name, v, template, "each value ") for v in value]
        if self.distinct:
            seen = [f"{v:.6g}" if isinstance(v, float) else v for v in items]
            if len(set(seen)) != len(seen):
                raise ConfigError(f"{name}: values must be distinct (to 6 significant "
                                  f"digits), got {short_repr(value)}")
        if self.increasing and any(a >= b for a, b in zip(items, items[1:])):
            raise ConfigError(f"{name}: values must be strictly increasing, "
                              f"got {short_repr(value)}")
        return type(default)(items)

    def _check_item(self, name: str, value, template, each: str):
        if isinstance(template, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: {each}must be true or false, got {short_repr(value)}")
            return value
        if isinstance(template, numbers.Integral):
            lo, hi = (GENERIC_INT_RANGE if self.lo is None else (self.lo, self.hi))
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or not lo <= value <= hi:
                raise ConfigError(f"{name}: {each}must be an integer in [{lo:g}, {hi:g}], "
                                  f"got {short_repr(value)}")
            return int(value)
        if isinstance(template, numbers.Real):
            try:
                number = float(value) if _is_number(value) else None
            except OverflowError:
                number = None
            bounded = self.lo is None or (number is not None and self.lo <= number <= self.hi)
            if number is None or not math.isfinite(number) or not bounded:
                where = "" if self.lo is None else f" in [{self.lo:g}, {self.hi:g}]"
                raise ConfigError(f"{name}: {each}must be a finite number{where}, "
                                  f"got {short_repr(value)}")
            return number
        if isinstance(template, str):
            if self.choices is not None:
                if not isinstance(value, str) or value not in self.choices:
                    raise ConfigError(f"{name}: unknown value {short_repr(value)}; allowed: "
                                      f"{', '.join(map(str, self.choices))}")
            elif not (isinstance(value, str) and value.strip() and value.isprintable()
                      and len(value) <= GENERIC_MAX_CHARS):
                raise ConfigError(f"{name}: {each}must be a non-empty printable string of at "
                                  f"most {GENERIC_MAX_CHARS} characters, got {short_repr(value)}")
            return value
        return value  # a parameter type without generic rules (the study's validate decides)

    def _count(self) -> str:
        return (f"{self.min_len}" if self.min_len == self.max_len
                else f"{self.min_len} to {self.max_len}")

    def describe(self, default) -> str:
        """The allowed values in words, for ``gradstudy run NAME --help``."""
        items = isinstance(default, (list, tuple))
        template = (default[0] if default else 0.0) if items else default
        if isinstance(template, bool):
            kind = "true or false"
        elif isinstance(template, numbers.Integral):
            lo, hi = GENERIC_INT_RANGE if self.lo is None else (self.lo, self.hi)
            kind = f"integer{'s' if items else ''} in [{lo:g}, {hi:g}]"
        elif isinstance(template, numbers.Real):
            kind = f"finite number{'s' if items else ''}" + (
                "" if self.lo is None else f" in [{self.lo:g}, {self.hi:g}]")
        elif isinstance(template, str):
            kind = ("one of " + ", ".join(map(str, self.choices)) if self.choices
                    else "a non-empty string")
        else:
            kind = "checked by the study"
        if not items:
            return kind
        order = ", increasing" if self.increasing else ", distinct" if self.distinct else ""
        return f"{self._count()} comma-separated {kind}{order}"


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def study_limits(module_or_limits) -> dict[str, Limit]:
    """A study's ``LIMITS`` (module, or the dict itself) as ``{key: Limit}``; a key without
    an entry maps to the generic limit (a ``defaultdict``)."""
    raw = module_or_limits if isinstance(module_or_limits, dict) or module_or_limits is None \
        else getattr(module_or_limits, "LIMITS", None)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"LIMITS must be a dict, got {type(raw).__name__}")
    limits: dict[str, Limit] = defaultdict(Limit)
    if not isinstance(module_or_limits, (dict, type(None))):
        known = {k for p in module_or_limits.SCALES.values() for k in p}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"LIMITS names keys not in SCALES: {', '.join(unknown)}")
    for key, spec in raw.items():
        limits[key] = Limit.from_spec(key, spec)
    return limits


def parse_overrides(items: list[str], defaults: dict, limits=None) -> dict:
    """``["key=value", ...]`` typed like the defaults and checked against ``limits`` (a
    study's ``LIMITS``; generic bounds where absent).

    Raises:
        ConfigError: one line naming the ``--set`` key: malformed item, unknown key, key
            given twice, value not parseable as the default's type or outside its limit.
    """
    limits = study_limits(limits)
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set: expected key=value, got {short_repr(item)}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in defaults:
            raise ConfigError(f"--set: unknown key {short_repr(key)}; "
                              f"allowed: {', '.join(sorted(defaults))}")
        if key in out:
            raise ConfigError(f"--set {key}: given twice; give each key once")
        out[key] = limits[key].check(f"--set {key}", _parse_like(key, raw, defaults[key]),
                                     defaults[key])
    return out


def _parse_like(key: str, raw: str, default: Any):
    text = raw.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            if not _INT_TEXT.fullmatch(text):  # ASCII digits only: int() takes any script
                raise ValueError
            return int(text)
        if isinstance(default, float):
            if not text.isascii():
                raise ValueError
            return float(text)  # inf/nan parse here and are refused by the limit check
        if isinstance(default, (list, tuple)):
            elem = default[0] if default else raw
            return type(default)(_parse_like(key, r, elem) for r in raw.split(","))
        return text
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"--set {key}: expected {kind} like {short_repr(default)}, "
                          f"got {short_repr(raw)}") from None


_INT_TEXT = re.compile(r"[+-]?[0-9]+(_[0-9]+)*")


def study_params(module: ModuleType, scale: str, overrides: dict | None = None) -> dict:
    """The study's parameters at ``scale`` with ``overrides``, checked against its
    ``LIMITS`` (generic bounds where absent) and then its ``validate(params)``.

    Raises:
        ConfigError: one line naming the parameter (an error ``validate`` raises other
            than ConfigError is reported naming the overridden keys).
    """
    defaults = module.SCALES[scale]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults), key=str)
    if unknown:
        raise ConfigError(f"{short_repr(unknown[0])}: unknown parameter; "
                          f"allowed: {', '.join(sorted(defaults))}")
    limits = study_limits(module)
    params = {key: limits[key].check(key, overrides.get(key, default), default)
              for key, default in defaults.items()}
    validate = getattr(module, "validate", None)
    if validate is not None:
        try:
            validate(params)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 -- a study's check tripping over a value
            keys = ", ".join(overrides) or "parameters"
            raise ConfigError(f"{keys}: rejected by {getattr(module, 'NAME', '?')}.validate "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:120]})"
                              ) from None
    return params


def output_dirs(out: Path, scale: str, name: str, overrides: dict | None = None
                ) -> tuple[Path, Path]:
    """Paper scale writes ``figures/NAME`` and ``results/NAME``; others a ``SCALE/`` level.

    A run with ``--set`` overrides goes to ``custom/SCALE/NAME/<key=value,...>`` instead,
    so it never overwrites the default figures nor enters the claims table.
    """
    out = Path(out)
    if overrides:
        tag = ",".join(f"{k}={_tag(v)}" for k, v in sorted(overrides.items()))
        sub = Path("custom") / scale / name / tag
    else:
        sub = Path(name) if scale == "paper" else Path(scale) / name
    return out / "results" / sub, out / "figures" / sub


def _tag(value) -> str:
    text = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:60]


_NONFINITE_WARNINGS = ("All-NaN slice", "Mean of empty slice", "invalid value encountered",
                       "divide by zero encountered", "overflow encountered",
                       "underflow encountered", "Degrees of freedom <= 0")


def run_study(module: ModuleType, scale: str = "smoke", out: Path = Path("."),
              overrides: dict | None = None, progress: bool = True) -> dict:
    """Run one study at ``scale`` (plus ``overrides``); write and return its summary."""
    if scale not in SCALES:
        raise ConfigError(f"scale: unknown value {scale!r}; allowed: {', '.join(SCALES)}")
    name = getattr(module, "NAME")
    if scale not in module.SCALES:
        raise ConfigError(f"scale: study {name!r} has no {scale!r} scale; "
                          f"allowed: {', '.join(module.SCALES)}")
    params = study_params(module, scale, overrides)
    results_dir, figures_dir = output_dirs(out, scale, name, overrides)
    ctx = Context(name, scale, results_dir, figures_dir, progress)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # NaN/inf data are expected (exploding runs) and reported by reason in the summary
        # (status counts); numpy's warnings about them on stderr would say it again, badly
        for message in _NONFINITE_WARNINGS:
            warnings.filterwarnings("ignore", message, RuntimeWarning)
        claims = module.run(ctx, params)
    summary = {
        "study": name,
        "scale": scale,
        "params": params,
        "claims": [c.as_dict() for c in claims],
        "runtime_s": round(time.perf_counter() - t0, 2),
        "versions": versions(),
        "backend": backend(),
        "figures": sorted(str(p.relative_to(out)) for p in figures_dir.glob("*.png")),
        # values that are not normal numbers, by variable and reason (gradstudy.status)
        "nonfinite": ctx.extra.get("nonfinite", {}),
        # training runs whose loss became non-finite, per training (gradstudy.engine)
        "diverged_runs": ctx.extra.get("diverged_runs", {}),
        # the same in detail, per training with a diverged run: runs in all, diverged runs
        # by point, and the steps of the first non-finite loss (sorted)
        "divergence": ctx.extra.get("divergence", {}),
        # other measured diagnostics a study reports (ctx.extra["measured"])
        "measured": ctx.extra.get("measured", {}),
    }
    write_json_atomic(summary, results_dir / "summary.json")
    return summary


def load_summaries(out: Path, scale: str, names: list[str] | None = None) -> list[dict]:
    """Every study's ``summary.json`` at ``scale`` (of the studies ``names``, if given).

    A file that cannot be read, is not JSON or does not have a summary's shape (another
    tool's file, a half-written copy) is skipped with one line naming it, so that one bad
    file does not stop ``reproduce`` from tabulating the others.
    """

    root = Path(out) / "results" / ("" if scale == "paper" else scale)
    summaries = []
    for path in sorted(root.glob("*/summary.json")):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            notice(f"skipping {path}: unreadable ({type(e).__name__})")
            continue
        problem = _summary_problem(s)
        if problem is not None:
            notice(f"skipping {path}: not a study summary ({problem})")
            continue
        if s["scale"] == scale and (names is None or s["study"] in names):
            summaries.append(s)
    return summaries


def _summary_problem(s: Any) -> str | None:
    """What makes ``s`` unusable as a summary for the claims table, or None."""
    if not isinstance(s, dict):
        return f"a JSON {type(s).__name__}, not an object"
    for key in ("study", "scale"):
        if not isinstance(s.get(key), str):
            return f"{key!r} missing or not a string"
    claims = s.get("claims")
    if not isinstance(claims, list):
        return "'claims' missing or not a list"
    for i, c in enumerate(claims):
        if not isinstance(c, dict):
            return f"claim {i} is not an object"
        needed = ["id", "statement", "measured", "expected", "pass", "source"]
        kind = c.get("comparison", "abs")
        needed += {"range": ["upper"], "less": [], "greater": []}.get(kind, ["tolerance"])
        missing = [k for k in needed if k not in c]
        if missing:
            return f"claim {i} lacks {', '.join(missing)}"
        if not isinstance(c["pass"], bool):
            return f"claim {i}: 'pass' is not true/false"
        for key in ("measured", "expected", "tolerance", "upper"):
            value = c.get(key, 0.0)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) or value in
                                               ("nan", "inf", "-inf")):
                return f"claim {i}: {key!r} is not a number"
        if kind not in ("abs", "rel", "less", "greater", "range"):
            return f"claim {i}: unknown comparison {kind!r}"
        recomputed = Claim(str(c["id"]), "", c["measured"], c["expected"],
                           float(c.get("tolerance", 0.0)), "", kind,
                           float(c.get("upper", "nan"))).passed
        if recomputed != c["pass"]:
            return f"claim {i}: 'pass' does not follow from its numbers"
        if "verdict" in c and c["verdict"] != claim_verdict({**c, "verdict": None}):
            return f"claim {i}: 'verdict' does not follow from its numbers"
    return None
