"""Studies: discovery, parameters by scale, claims, and ``summary.json``.

A study is one file in ``experiments/`` defining ``NAME``, ``DESCRIPTION``, ``SCALES``
(``{"smoke": {...}, "paper": {...}}``: the sweep parameters at each scale) and
``run(ctx, params) -> list[Claim]``.  It declares its sweep, calls the library and draws;
:func:`run_study` times it and writes ``summary.json`` next to its cached data.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gradstudy.config import ConfigError
from gradstudy.results import backend, run_cached, versions, write_json_atomic

SCALES = ("smoke", "paper")


@dataclass(frozen=True)
class Claim:
    """A measured number against an independent expectation.

    ``passed`` is computed, never set: |measured − expected| ≤ tolerance (``kind="abs"``),
    ≤ tolerance·|expected| (``"rel"``), measured < / > expected (``"less"``/``"greater"``),
    or expected ≤ measured ≤ upper (``"range"``); non-finite measured fails.
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

    def as_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "measured": _num(self.measured),
                "expected": _num(self.expected), "tolerance": _num(self.tolerance),
                "comparison": self.kind, "pass": self.passed, "source": self.source,
                **({"upper": _num(self.upper)} if self.kind == "range" else {})}


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
        return run_cached(sweep, self.results_dir, tag, progress=self.progress,
                          keep_backprop=keep_backprop)


def experiments_dir() -> Path:
    """``$GRADSTUDY_EXPERIMENTS``, else ``experiments/`` beside the package, else in cwd."""
    env = os.environ.get("GRADSTUDY_EXPERIMENTS")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "experiments"
    return beside if beside.is_dir() else Path.cwd() / "experiments"


def discover() -> dict[str, ModuleType]:
    """Every ``experiments/*.py`` with a ``run`` function, by its ``NAME``."""
    studies = {}
    for path in sorted(experiments_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"gradstudy_experiments.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "run") and hasattr(module, "SCALES"):
            studies[getattr(module, "NAME", path.stem)] = module
    return studies


def finite_median(x, axis=None):
    """Median over ``axis`` of the finite entries (NaN where there are none): inf/NaN
    seeds are recorded and plotted, and left out of the statistic."""
    x = np.where(np.isfinite(x), np.asarray(x, float), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        return np.nanmedian(x, axis=axis)


def require(condition: bool, field: str, message: str) -> None:
    """For a study's ``validate(params)``: raise a one-line ConfigError naming the field."""
    if not condition:
        raise ConfigError(f"{field}: {message}")


def parse_overrides(items: list[str], defaults: dict) -> dict:
    """``["key=value", ...]`` typed like the defaults; bad keys/values raise ConfigError."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if key not in defaults:
            raise ConfigError(f"--set: unknown key {key!r}; allowed: {', '.join(sorted(defaults))}")
        out[key] = _parse_like(key, raw, defaults[key])
    return out


def _parse_like(key: str, raw: str, default: Any):
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (list, tuple)):
            elem = default[0] if default else raw
            return type(default)(_parse_like(key, r.strip(), elem) for r in raw.split(","))
        return raw
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"--set {key}: expected {kind} like {default!r}, got {raw!r}") from None


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


def run_study(module: ModuleType, scale: str = "smoke", out: Path = Path("."),
              overrides: dict | None = None, progress: bool = True) -> dict:
    """Run one study at ``scale`` (plus ``overrides``); write and return its summary."""
    if scale not in SCALES:
        raise ConfigError(f"scale: unknown value {scale!r}; allowed: {', '.join(SCALES)}")
    name = getattr(module, "NAME")
    if scale not in module.SCALES:
        raise ConfigError(f"scale: study {name!r} has no {scale!r} scale; "
                          f"allowed: {', '.join(module.SCALES)}")
    params = dict(module.SCALES[scale])
    params.update(overrides or {})
    validate = getattr(module, "validate", None)
    if validate is not None:
        validate(params)
    results_dir, figures_dir = output_dirs(out, scale, name, overrides)
    ctx = Context(name, scale, results_dir, figures_dir, progress)
    t0 = time.perf_counter()
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
    }
    write_json_atomic(summary, results_dir / "summary.json")
    return summary


def load_summaries(out: Path, scale: str, names: list[str] | None = None) -> list[dict]:
    root = Path(out) / "results" / ("" if scale == "paper" else scale)
    summaries = []
    for path in sorted(root.glob("*/summary.json")):
        s = json.loads(path.read_text())
        if s.get("scale") == scale and (names is None or s["study"] in names):
            summaries.append(s)
    return summaries
