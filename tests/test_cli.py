"""Tests of the ``gradstudy`` command line (``python -m gradstudy.cli`` and ``cli.main``).

Bad input must exit 2 with exactly one line on stderr and no traceback; a smoke
reproduction must write its figures, ``summary.json`` (claims with the required keys) and
the claims tables, and the claims it reports are checked against hand-computed values.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gradstudy import cli
from gradstudy.errors import ConfigError
from gradstudy.studies import Claim, discover, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
KNOWN_STUDIES = ("depth_profile", "phase_diagram", "glorot_histograms", "multiplication_chain")
CLAIM_KEYS = {"id", "statement", "measured", "expected", "tolerance", "pass", "source"}
SUMMARY_KEYS = {"study", "scale", "claims", "runtime_s", "versions", "backend"}
BAD_INPUTS = {
    "unknown_study": (["run", "nosuch"], ["nosuch"]),
    "unknown_scale": (["reproduce", "--scale", "huge"], ["huge", "smoke", "paper"]),
    "unknown_key": (["run", "multiplication_chain", "--set", "nosuchkey=1"],
                    ["nosuchkey", "max_depth"]),
    "bad_value": (["run", "multiplication_chain", "--set", "max_depth=abc"],
                  ["max_depth", "abc"]),
    "unknown_only": (["reproduce", "--only", "nosuch"], ["nosuch"]),
}


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _popen(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "gradstudy.cli", *args], cwd=kw.pop("cwd", ROOT),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _main(args, capsys):
    """cli.main in-process: (exit code, stdout, stderr); argparse errors raise SystemExit."""
    try:
        code = cli.main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _present_studies():
    return [n for n in KNOWN_STUDIES if (ROOT / "experiments" / f"{n}.py").exists()]


def _assert_one_line_error(code, err, words):
    assert code == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradstudy: error:")
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def subprocess_runs():
    """``list`` and two bad inputs as real processes, started together (they are slow to
    import, not to run)."""
    cases = {"list": ["list"], "unknown_study": BAD_INPUTS["unknown_study"][0],
             "bad_value": BAD_INPUTS["bad_value"][0]}
    procs = {k: _popen(a) for k, a in cases.items()}
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[k] = (p.returncode, stdout, stderr)
    return out


def test_list_subprocess(subprocess_runs):
    code, out, err = subprocess_runs["list"]
    assert code == 0, err
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert "multiplication_chain" in listed
    for name in _present_studies():
        assert name in listed
    assert listed == list(discover())


def test_list_in_process(capsys, subprocess_runs):
    code, out, err = _main(["list"], capsys)
    assert code == 0 and err == ""
    assert out == subprocess_runs["list"][1]


@pytest.mark.parametrize("case", ["unknown_study", "bad_value"])
def test_bad_input_subprocess(subprocess_runs, case):
    code, out, err = subprocess_runs[case]
    _assert_one_line_error(code, err, BAD_INPUTS[case][1])


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_in_process(capsys, case, tmp_path):
    args, words = BAD_INPUTS[case]
    code, out, err = _main(args + ["--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, words)
    assert not (tmp_path / "results").exists()  # nothing ran


def test_argparse_errors_are_one_line(capsys):
    for args in ([], ["frobnicate"], ["run"], ["reproduce", "--bogus"]):
        code, out, err = _main(args, capsys)
        _assert_one_line_error(code, err, [])


def test_parse_overrides_typed_like_defaults():
    defaults = {"factors": [0.1, 0.5], "max_depth": 200, "dtype": "float64", "flag": False}
    got = parse_overrides(["factors=0.5, 2", "max_depth=7", "dtype=float32", "flag=true"],
                          defaults)
    assert got == {"factors": [0.5, 2.0], "max_depth": 7, "dtype": "float32", "flag": True}
    assert isinstance(got["max_depth"], int) and isinstance(got["factors"][1], float)


@pytest.mark.parametrize("kind,measured,expected,tol,upper,passed", [
    ("abs", 1.05, 1.0, 0.1, None, True), ("abs", 1.2, 1.0, 0.1, None, False),
    ("rel", 105.0, 100.0, 0.05, None, True), ("rel", 106.0, 100.0, 0.05, None, False),
    ("less", 0.9, 1.0, 0.0, None, True), ("less", 1.0, 1.0, 0.0, None, False),
    ("greater", 1.1, 1.0, 0.0, None, True), ("greater", 1.0, 1.0, 0.0, None, False),
    ("range", 130.0, 127.0, 0.0, 151.0, True), ("range", 152.0, 127.0, 0.0, 151.0, False),
    ("range", 900.0, 830.0, 0.0, float("inf"), True),
    ("abs", float("nan"), 1.0, 1e9, None, False), ("abs", float("inf"), 1.0, float("inf"),
                                                  None, False),
])
def test_claim_pass_rule(kind, measured, expected, tol, upper, passed):
    kw = {} if upper is None else {"upper": upper}
    c = Claim("c", "s", measured, expected, tol, "src", kind=kind, **kw)
    assert c.passed is passed
    d = c.as_dict()
    assert CLAIM_KEYS <= set(d) and d["pass"] is passed and d["comparison"] == kind
    assert ("upper" in d) == (kind == "range")
    json.dumps(d, allow_nan=False)  # non-finite numbers are serialised as strings


def test_claim_unknown_kind():
    with pytest.raises(ConfigError, match="^kind: "):
        Claim("c", "s", 1.0, 1.0, 0.0, "src", kind="roughly").passed


# ---------------------------------------------------------------------- reproductions
def _check_summary(summary, name, scale="smoke"):
    assert SUMMARY_KEYS <= set(summary), set(summary)
    assert summary["study"] == name and summary["scale"] == scale
    assert isinstance(summary["runtime_s"], (int, float)) and summary["runtime_s"] >= 0
    assert "jax" in summary["versions"] and summary["backend"]
    assert summary["claims"], name
    for c in summary["claims"]:
        assert CLAIM_KEYS <= set(c), (name, set(c))
        assert isinstance(c["pass"], bool)
    assert len({c["id"] for c in summary["claims"]}) == len(summary["claims"])


@pytest.fixture(scope="module")
def chain_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_chain")
    code = cli.main(["reproduce", "--scale", "smoke", "--only", "multiplication_chain",
                     "--out", str(out), "--no-progress", "--check"])
    return code, out


def test_smoke_multiplication_chain_outputs(chain_smoke):
    code, out = chain_smoke
    assert code == 0  # --check: every claim passes
    fig = out / "figures" / "smoke" / "multiplication_chain"
    for ext in ("png", "pdf"):
        f = fig / f"multiplication_chain.{ext}"
        assert f.is_file() and f.stat().st_size > 1000
    assert (fig / "multiplication_chain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (fig / "multiplication_chain.pdf").read_bytes()[:5] == b"%PDF-"
    summary = json.loads((out / "results" / "smoke" / "multiplication_chain" /
                          "summary.json").read_text())
    _check_summary(summary, "multiplication_chain")
    assert summary["params"]["max_depth"] == 200
    assert all(c["pass"] for c in summary["claims"])
    md = (out / "figures" / "smoke" / "claims.md").read_text()
    tex = (out / "figures" / "smoke" / "claims.tex").read_text()
    for c in summary["claims"]:
        assert c["id"] in md
    n = len(summary["claims"])
    assert f"{n} of {n} claims pass" in md
    assert (r"\begin{tabular}" in tex or r"\begin{longtable}" in tex)
    assert r"multiplication\_chain" in tex
    for c in summary["claims"]:  # one row per claim, id escaped for LaTeX
        assert c["id"].replace("_", r"\_") in tex, c["id"]
    assert not list(out.rglob("*.tmp"))


def test_smoke_multiplication_chain_claims_by_hand(chain_smoke):
    """The reported numbers, against values worked out from IEEE 754 by hand."""
    _, out = chain_smoke
    summary = json.loads((out / "results" / "smoke" / "multiplication_chain" /
                          "summary.json").read_text())
    claims = {c["id"]: c for c in summary["claims"]}
    # smoke factors 0.1 .. 3.0 up to depth 200: float32 breaks down for 0.1, 0.5, 2, 3;
    # float64 (range 1e±308) for none of them before depth 200
    assert set(claims) == {"closed_form_float32", "closed_form_float64",
                           "breakdown_float32_0.1", "breakdown_float32_0.5",
                           "breakdown_float32_2", "breakdown_float32_3"}
    # 2^128 overflows float32 (max ≈ 2^128 - 2^104); 3^81 ≈ 4.4e38 > 3.4e38 > 3^80
    assert claims["breakdown_float32_2"]["measured"] == 128
    assert claims["breakdown_float32_3"]["measured"] == 81
    # 0.5: between 127 (below 2^-126, flush to zero) and 151 (below 2^-150)
    assert 127 <= claims["breakdown_float32_0.5"]["measured"] <= 151
    # 0.1^38 = 1e-38 < 2^-126 ≈ 1.18e-38 < 0.1^37; 0.1^46 < 2^-150 ≈ 7e-46
    assert 38 <= claims["breakdown_float32_0.1"]["measured"] <= 46
    # product of D roundings: relative error ≤ D·u = 200 · 2^-24 (float32), 200 · 2^-53
    assert 0 <= claims["closed_form_float32"]["measured"] <= 200 * 2.0**-24 * 1.0001
    assert 0 <= claims["closed_form_float64"]["measured"] <= 200 * 2.0**-53 * 1.0001


def test_run_with_override(tmp_path, capsys):
    code, out, err = _main(["run", "multiplication_chain", "--set", "max_depth=50",
                            "factors=0.1,2", "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 0, err
    assert "multiplication_chain" in out and "[PASS]" in out and "[FAIL]" not in out
    summary = json.loads((tmp_path / "results" / "custom" / "smoke" / "multiplication_chain" /
                          "factors=0.1-2.0,max_depth=50" / "summary.json").read_text())
    assert summary["params"] == {"factors": [0.1, 2.0], "max_depth": 50}
    # up to depth 50 only 0.1 breaks down in float32 (at 38); 2^50 is finite
    assert sorted(c["id"] for c in summary["claims"]) == [
        "breakdown_float32_0.1", "closed_form_float32", "closed_form_float64"]


FAKE_STUDY = '''
from gradstudy.studies import Claim

NAME = "fake"
DESCRIPTION = "a study with one passing and one {second} claim"
SCALES = {{"smoke": {{"x": 1.0}}, "paper": {{"x": 1.0}}}}


def run(ctx, p):
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    return [Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic"),
            Claim("second", "2 vs x", 2.0, p["x"], {tol}, "arithmetic")]
'''


@pytest.mark.parametrize("passing", [True, False])
def test_check_exit_code(tmp_path, monkeypatch, capsys, passing):
    exp = tmp_path / "experiments"
    exp.mkdir()
    (exp / "fake.py").write_text(textwrap.dedent(FAKE_STUDY).format(
        second="passing" if passing else "failing", tol=1.5 if passing else 0.5))
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(exp))
    args = ["reproduce", "--scale", "smoke", "--out", str(tmp_path / "o"), "--no-progress"]
    code, out, _ = _main(args + ["--check"], capsys)
    assert code == (0 if passing else 1)
    assert (f"{1 + passing}/2 claims pass") in out
    code, _, _ = _main(args, capsys)  # without --check a failing claim is reported, exit 0
    assert code == 0
    summary = json.loads((tmp_path / "o" / "results" / "smoke" / "fake" / "summary.json")
                         .read_text())
    assert [c["pass"] for c in summary["claims"]] == [True, passing]


# Full smoke reproduction of ALL studies (the slowest test here; deselect with -m "not slow").
# Its wall time is printed, not asserted: speed lives in benchmarks, not timed tests.
@pytest.mark.slow
def test_full_smoke_reproduction(tmp_path):
    """Every study at smoke scale with ``--check``: a failing claim fails CI."""
    t0 = time.perf_counter()
    proc = _popen(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--no-progress",
                   "--check"])
    # a hang guard, not a speed assertion: 15 studies at smoke take ≈ 4 min alone and twice
    # that beside a second pytest worker
    stdout, stderr = proc.communicate(timeout=1500)
    wall = time.perf_counter() - t0
    failing_line = [line for line in stdout.splitlines() if line.startswith("failing claims:")]
    assert proc.returncode == 0, (failing_line, stdout[-2000:], stderr[-3000:])
    assert "Traceback" not in stderr
    studies = list(discover())
    assert "multiplication_chain" in studies
    failing = []
    for name in studies:
        summary_path = tmp_path / "results" / "smoke" / name / "summary.json"
        assert summary_path.is_file(), name
        summary = json.loads(summary_path.read_text())
        _check_summary(summary, name)
        failing += [f"{name}/{c['id']}" for c in summary["claims"] if c["pass"] is not True]
        figs = sorted((tmp_path / "figures" / "smoke" / name).glob("*.png"))
        assert figs, name
        assert (tmp_path / "figures" / "smoke" / name / f"{name}.png").is_file()
        for f in summary["figures"]:
            assert (tmp_path / f).is_file(), f
            assert (tmp_path / f).with_suffix(".pdf").is_file(), f
    assert not failing, f"failing claims: {', '.join(failing)}"
    # the power iteration behind the GD claims converged (its residual is in the summary)
    measured = json.loads((tmp_path / "results" / "smoke" / "exploding_and_clipping" /
                           "summary.json").read_text())["measured"]
    assert 0 <= measured["lambda_max_relative_residual"] < 1e-2, measured
    md = (tmp_path / "figures" / "smoke" / "claims.md").read_text()
    assert (tmp_path / "figures" / "smoke" / "claims.tex").is_file()
    for name in studies:
        assert f"| {name} |" in md
    assert "❌" not in md
    tex = (tmp_path / "figures" / "smoke" / "claims.tex").read_text()
    assert tex.count(r"\begin{longtable}") == len(studies)
    # pdflatex with inputenc utf8 stops at an undeclared Unicode character
    assert tex.isascii(), sorted({ch for ch in tex if not ch.isascii()})
    runtimes = {n: json.loads((tmp_path / "results" / "smoke" / n / "summary.json")
                              .read_text())["runtime_s"] for n in studies}
    print(f"full smoke reproduction: {wall:.1f} s wall; per study {runtimes}")


@pytest.mark.parametrize("args", [
    ["run", "phase_diagram", "--set", "sigma_w2=-1"],
    ["run", "phase_diagram", "--set", "depths=8,4"],
    ["run", "depth_profile", "--set", "depth=1"],
    ["run", "depth_profile", "--set", "tanh_sigma_w2=-1"],
    ["run", "multiplication_chain", "--set", "max_depth=0"],
])
def test_semantically_bad_values_one_line_error(args, capsys, tmp_path):
    code, out, err = _main(args + ["--out", str(tmp_path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert args[-1].split("=")[0] in lines[0]  # names the field


def test_set_overrides_write_beside_not_over_defaults(capsys, tmp_path):
    code, out, _ = _main(["run", "multiplication_chain", "--set", "max_depth=50",
                          "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 0
    custom = tmp_path / "figures" / "custom" / "smoke" / "multiplication_chain" / "max_depth=50"
    assert (custom / "multiplication_chain.png").is_file()
    assert not (tmp_path / "figures" / "smoke" / "multiplication_chain").exists()
    summary = json.loads((tmp_path / "results" / "custom" / "smoke" / "multiplication_chain"
                          / "max_depth=50" / "summary.json").read_text())
    assert summary["params"]["max_depth"] == 50


# ----------------------------------------------------------- bad input (issue 5, item 3)
def _write_studies(root: Path, files: dict[str, str]) -> Path:
    exp = root / "experiments"
    exp.mkdir()
    for name, text in files.items():
        (exp / name).write_text(textwrap.dedent(text))
    return exp


RAISING_STUDY = '''
from gradstudy.errors import ConfigError
from gradstudy.studies import Claim

NAME = "fake"
DESCRIPTION = "fails inside run for x > 1, as a study can when a value trips a library check"
SCALES = {"smoke": {"x": 1.0, "n": 3}, "paper": {"x": 1.0, "n": 3}}
LIMITS = {"x": (0.0, 10.0), "n": (1, 5)}
RUNS = []


def run(ctx, p):
    RUNS.append(p)
    print("fake ran")
    if p["x"] > 2:
        raise ValueError("math domain error")
    if p["x"] > 1:
        raise ConfigError("labels: need one distinct label per point")
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    return [Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]
'''


@pytest.mark.parametrize("case", ["dev_null", "regular_file", "under_a_file", "read_only",
                                  "empty", "blank"])
@pytest.mark.parametrize("command", ["run", "reproduce"])
def test_out_must_be_a_writable_directory(case, command, tmp_path, monkeypatch, capsys):
    """--out that is not a writable directory: one line, exit 2, nothing written (today:
    a traceback, and --out '' writes into the current directory)."""
    monkeypatch.chdir(tmp_path)
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    out = {"dev_null": os.devnull, "regular_file": str(regular),
           "under_a_file": str(regular / "sub"), "read_only": "/sys/gradstudy-out",
           "empty": "", "blank": "  "}[case]
    if case == "read_only" and (not Path("/sys").is_dir() or os.access("/sys", os.W_OK)
                                and not Path("/sys/kernel").is_dir()):
        pytest.skip("no read-only /sys here")
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "fake.py": RAISING_STUDY})))
    args = (["run", "fake"] if command == "run" else ["reproduce", "--scale", "smoke"])
    code, stdout, err = _main(args + ["--out", out, "--no-progress"], capsys)
    _assert_one_line_error(code, err, ["--out"])
    assert "fake ran" not in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments", "file.txt"]


@pytest.mark.parametrize("args,words", [
    # 12 GB before dying today
    (["run", "multiplication_chain", "--set", "max_depth=1000000000"],
     ["--set max_depth", "[1, 20000]", "1000000000"]),
    # a 787-line NotImplementedError today
    (["run", "depth_profile", "--set", "width=10000000000"], ["--set width", "[1, 65536]"]),
    # exit 0 with NaN claims today
    (["run", "multiplication_chain", "--set", "factors=inf"], ["--set factors", "finite", "inf"]),
    (["run", "multiplication_chain", "--set", "factors=0.5,nan"], ["--set factors", "nan"]),
    (["run", "multiplication_chain", "--set", "factors=1e400"], ["--set factors", "inf"]),
    # "labels: need one distinct label per point" today
    (["run", "depth_profile", "--set", "tanh_sigma_w2=1,1"], ["--set tanh_sigma_w2", "distinct"]),
    # "sigma_w: ..." today
    (["run", "depth_profile", "--set", "tanh_sigma_w2=inf"], ["--set tanh_sigma_w2", "inf"]),
    (["run", "phase_diagram", "--set", "sigma_b2=0.05,0.05"], ["--set sigma_b2", "distinct"]),
    (["run", "phase_diagram", "--set", "depths=2,5000"], ["--set depths", "5000"]),
    (["run", "multiplication_chain", "--set", "factors=0.5", "--set", "factors=2"],
     ["--set factors", "twice"]),
    (["run", "multiplication_chain", "--set", "max_depth=30", "max_depth=40"],
     ["--set max_depth", "twice"]),
    (["run", "depth_profile", "--set", "dtype=float16"], ["--set dtype", "float32, float64"]),
    (["run", "glorot_histograms", "--set", "seeds=٣"], ["--set seeds", "int"]),  # int() takes it
])
def test_set_values_are_bounded_and_named(args, words, capsys, tmp_path):
    code, out, err = _main(args + ["--out", str(tmp_path), "--no-progress"], capsys)
    _assert_one_line_error(code, err, words)
    assert "labels" not in err and "sigma_w:" not in err  # the --set key, not a library field
    assert not (tmp_path / "results").exists()  # refused before any work


def test_repeated_set_options_merge(capsys, tmp_path):
    """`--set factors=0.5 --set max_depth=30`: both apply (today the first is dropped)."""
    args = cli._parser().parse_args(["run", "multiplication_chain", "--set", "factors=0.5",
                                     "--set", "max_depth=30", "--set", "x=1", "y=2"])
    assert args.overrides == ["factors=0.5", "max_depth=30", "x=1", "y=2"]
    code, out, err = _main(["run", "multiplication_chain", "--set", "factors=0.5",
                            "--set", "max_depth=30", "--out", str(tmp_path), "--no-progress"],
                           capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "results" / "custom" / "smoke" / "multiplication_chain"
                          / "factors=0.5,max_depth=30" / "summary.json").read_text())
    assert summary["params"] == {"factors": [0.5], "max_depth": 30}


@pytest.mark.parametrize("value,words", [("3", ["--set x", "math domain error"]),
                                         ("1.5", ["--set x", "labels"])])
def test_error_inside_a_run_names_the_set_key(value, words, tmp_path, monkeypatch, capsys):
    """A study failing on a --set value reports the --set key (today a ConfigError from the
    library names only its own field, e.g. "labels: ...")."""
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "fake.py": RAISING_STUDY})))
    code, out, err = _main(["run", "fake", "--set", f"x={value}", "--out", str(tmp_path / "o"),
                            "--no-progress"], capsys)
    _assert_one_line_error(code, err, words + [f"x={value}"])


@pytest.mark.parametrize("command", [["reproduce", "--check"], ["list"],
                                     ["run", "multiplication_chain"]])
def test_missing_experiments_dir_is_an_error(command, monkeypatch, capsys, tmp_path):
    """Today `reproduce --check` says "0/0 claims pass" and exits 0."""
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(tmp_path / "nonexistent"))
    extra = [] if command == ["list"] else ["--out", str(tmp_path / "o")]
    code, out, err = _main(command + extra, capsys)
    _assert_one_line_error(code, err, ["GRADSTUDY_EXPERIMENTS", "nonexistent"])


def test_reproduce_without_studies_or_claims_fails_check(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(empty))
    code, out, err = _main(["reproduce", "--check", "--out", str(tmp_path / "o")], capsys)
    _assert_one_line_error(code, err, ["GRADSTUDY_EXPERIMENTS", "no working study"])
    no_claims = RAISING_STUDY.replace('return [Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]',
                                      "return []")
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "fake.py": no_claims})))
    args = ["reproduce", "--scale", "smoke", "--out", str(tmp_path / "o"), "--no-progress"]
    code, out, err = _main(args + ["--check"], capsys)
    assert code == 1 and "0/0 claims pass" in out and "no claims" in out
    assert _main(args, capsys)[0] == 0  # without --check: reported, not an error


def test_only_runs_each_study_once(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "fake.py": RAISING_STUDY})))
    code, out, err = _main(["reproduce", "--scale", "smoke", "--only", "fake", "fake", "fake",
                            "--out", str(tmp_path / "o"), "--no-progress", "--check"], capsys)
    assert code == 0, err
    assert out.count("fake ran") == 1 and "1/1 claims pass" in out


BROKEN_STUDIES = {
    "syntax.py": "x = 1\n\ndef f(:\n    pass\n",
    "missing_import.py": "import math\nimport gradstudy_no_such_module\n",
    "raises.py": "NAME = 'raises'\nSCALES = {}\nraise RuntimeError('at import')\n",
    "bad_limits.py": RAISING_STUDY.replace('NAME = "fake"', 'NAME = "bad_limits"')
                                  .replace('"n": (1, 5)', '"n": (5, 1)'),
    "bad_default.py": RAISING_STUDY.replace('NAME = "fake"', 'NAME = "bad_default"')
                                   .replace('"n": (1, 5)', '"n": (4, 5)'),
    "not_a_study.py": "x = 1\n",  # once left out of `list` without a word
}
BROKEN_REASONS = {"syntax": "SyntaxError at line 3", "missing_import": "ModuleNotFoundError at "
                  "line 2", "raises": "RuntimeError at line 3: at import",
                  "bad_limits": "LIMITS['n']", "bad_default": "SCALES['smoke']['n']",
                  "not_a_study": "not a study: it does not define NAME, run, SCALES"}


def test_a_broken_study_does_not_break_the_others(monkeypatch, capsys, tmp_path):
    """A syntax error in one experiments/ file broke every command, `list` included."""
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "fake.py": RAISING_STUDY, **BROKEN_STUDIES})))
    code, out, err = _main(["list"], capsys)
    assert code == 0 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == {"fake", *BROKEN_REASONS}
    assert "BROKEN" not in lines["fake"]
    for stem, reason in BROKEN_REASONS.items():
        assert "BROKEN: " in lines[stem] and reason in lines[stem], lines[stem]
    o = ["--out", str(tmp_path / "o"), "--no-progress"]
    for stem, reason in BROKEN_REASONS.items():
        code, _, err = _main(["run", stem] + o, capsys)
        _assert_one_line_error(code, err, [stem, "broken", reason])
        code, _, err = _main(["reproduce", "--scale", "smoke", "--only", stem] + o, capsys)
        _assert_one_line_error(code, err, [stem, "broken"])
    code, out, err = _main(["run", "fake"] + o, capsys)
    assert code == 0, err
    code, out, err = _main(["reproduce", "--scale", "smoke", "--only", "fake", "--check"] + o,
                           capsys)
    assert code == 0 and "1/1 claims pass" in out
    # all studies: the working one runs; a broken one is reported and fails --check
    code, out, err = _main(["reproduce", "--scale", "smoke", "--check"] + o, capsys)
    assert code == 1 and "1/1 claims pass" in out
    assert "broken studies (not run): " + ", ".join(sorted(BROKEN_REASONS)) in out
    assert all(f"skipping broken study {s}" in err for s in BROKEN_REASONS)
    assert "Traceback" not in err


# ------------------------------------------------------ what a new user trips over (item 4)
def test_version(capsys):
    from gradstudy import __version__

    code, out, err = _main(["--version"], capsys)
    assert code == 0 and out.strip() == f"gradstudy {__version__}"


@pytest.mark.parametrize("name", _present_studies())
def test_run_name_help_lists_set_keys_defaults_and_limits(name, capsys):
    from gradstudy.studies import study_limits

    module = discover()[name]
    code, out, err = _main(["run", name, "--help"], capsys)
    assert code == 0 and err == ""
    assert "--scale" in out  # the usual options are still there
    limits = study_limits(module)
    for key in {k for p in module.SCALES.values() for k in p}:
        key_lines = [line for line in out.splitlines() if line.split()[:1] == [key]]
        assert len(key_lines) == 1, (key, out)
        template = next(p[key] for p in module.SCALES.values() if key in p)
        assert limits[key].describe(template) in key_lines[0]
        after = out.splitlines()[out.splitlines().index(key_lines[0]) + 1]
        for scale, params in module.SCALES.items():  # defaults at each scale, on the next line
            first = params[key][0] if isinstance(params[key], list) else params[key]
            shown = f"{first:g}" if isinstance(first, float) else str(first)
            assert f"{scale}: {shown}" in after, (key, after)
    if name == "multiplication_chain":
        assert "integer in [1, 20000]" in out and "finite numbers in [0.001, 1000]" in out


def test_run_help_without_name_lists_studies(capsys):
    code, out, err = _main(["run", "--help"], capsys)
    assert code == 0 and "studies: " + ", ".join(discover()) in out


def test_make_paper_without_latexmk_fails_with_install_hint(tmp_path):
    """Today: "skipping", exit 0 (after a full paper-scale run)."""
    import shutil

    make = shutil.which("make")
    if make is None:
        pytest.skip("GNU make not installed")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "gradstudy"  # records whether the (long) figures step started
    fake.write_text(f"#!/bin/sh\ntouch {tmp_path / 'figures-ran'}\n")
    fake.chmod(0o755)
    stamp = tmp_path / ".venv" / ".installed"
    stamp.touch()
    os.utime(stamp, (time.time() + 60, time.time() + 60))  # newer than pyproject.toml
    proc = subprocess.run([make, "-C", str(tmp_path), "paper",
                           "LATEXMK=/nonexistent/latexmk"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "latexmk" in proc.stderr and "install" in proc.stderr, proc.stderr
    assert not (tmp_path / "figures-ran").exists()  # checked before the paper-scale run


@pytest.mark.parametrize("study,sets", [
    ("depth_profile", ["width=20000", "depth=500", "seeds=64"]),  # the example
    ("phase_diagram", ["width=4096", "depths=2,500", "seeds=64"]),
])
def test_sweep_that_cannot_fit_is_refused_with_the_whole_estimate(study, sets, capsys, tmp_path):
    """One line with the estimate and the advice, before anything is compiled: once cut at
    160 characters ("… but the budget is 1.00 G)"), and width=20000 never reached it."""
    t0 = time.perf_counter()
    code, out, err = _main(["run", study, "--set", *sets, "--out", str(tmp_path / "o"),
                            "--no-progress"], capsys)
    assert time.perf_counter() - t0 < 30
    _assert_one_line_error(code, err, ["--set", "memory: this sweep needs ≈", " GB"])
    assert err.rstrip().endswith("or raise GRADSTUDY_MEMORY_GB)"), err
    assert not list((tmp_path / "o").rglob("*.nc"))


def test_nonfinite_data_do_not_spill_numpy_warnings(tmp_path):
    """Overflowing runs are reported by reason (status counts), not by a page of numpy
    RuntimeWarnings on stderr (once: "overflow encountered in power" from the closed form)."""
    proc = _popen(["run", "multiplication_chain", "--set", "max_depth=20000", "--out",
                   str(tmp_path), "--no-progress"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Warning" not in stderr, stderr
    assert "breakdown_float32_3: measured 81" in stdout


# ------------------------------------------------ the CLI tells the truth (issue 16)
SEEDS_STUDY = '''
import numpy as np
from gradstudy.studies import Claim, median_se, tolerance

NAME = "seedy"
DESCRIPTION = "one claim from the median over p['seeds'] draws, its tolerance from their spread"
SCALES = {"smoke": {"seeds": 2}, "paper": {"seeds": 8}}
LIMITS = {"seeds": (1, 64)}


def run(ctx, p):
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(1.0, 0.1, p["seeds"])
    measured, se = median_se(x)
    return [Claim("median_is_one", "median 1", measured, 1.0, tolerance(se), "normal"),
            Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]
'''


@pytest.mark.parametrize("seeds", [1, 2])
def test_too_few_seeds_is_its_own_verdict_printed_counted_and_failing_check(
        seeds, tmp_path, monkeypatch, capsys):
    """`--set seeds=1` gave "[FAIL] measured nan, expected 1 ± nan" for every claim, and 2
    seeds a tolerance from one degree of freedom: now the measured value, "NOT ENOUGH SEEDS"
    (never pass, never fail), a count of it, and --check fails."""
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "seedy.py": SEEDS_STUDY})))
    o = ["--out", str(tmp_path / "o"), "--no-progress"]
    code, out, err = _main(["run", "seedy", "--set", f"seeds={seeds}"] + o, capsys)
    assert code == 0, err
    x = np.random.default_rng(0).normal(1.0, 0.1, seeds)
    assert f"[NOT ENOUGH SEEDS] median_is_one: measured {np.median(x):.6g}, expected 1" in out
    assert "nan" not in out
    assert "seedy: 1/2 claims pass, 0 fail, 1 not enough seeds" in out
    summary = json.loads(next((tmp_path / "o").rglob("summary.json")).read_text())
    assert [c["verdict"] for c in summary["claims"]] == ["not enough seeds", "pass"]
    code, out, err = _main(["reproduce", "--scale", "smoke", "--check"] + o, capsys)  # 2 seeds
    assert code == 1 and "1/2 claims pass, 0 fail, 1 not enough seeds" in out
    assert "not enough seeds, at least 3 needed): seedy/median_is_one" in out
    code, out, err = _main(["run", "seedy", "--set", "seeds=3"] + o, capsys)
    assert code == 0 and "[PASS] median_is_one" in out and "2/2 claims pass" in out


def test_reproduce_only_counts_the_claims_of_this_run(tmp_path, monkeypatch, capsys):
    """`reproduce --only A` printed "32/32 claims pass" counting stale summaries of studies
    it did not run, and --check failed on a study it did not run."""
    good = FAKE_STUDY.format(second="passing", tol=1.5).replace('"fake"', '"good"')
    bad = FAKE_STUDY.format(second="failing", tol=0.5).replace('"fake"', '"bad"')
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "good.py": good, "bad.py": bad})))
    args = ["reproduce", "--scale", "smoke", "--out", str(tmp_path / "o"), "--no-progress",
            "--check"]
    code, out, _ = _main(args, capsys)
    assert code == 1 and "3/4 claims pass, 1 fail in the 2 studies run now" in out
    assert "failing claims: bad/second" in out
    code, out, _ = _main(args + ["--only", "good"], capsys)
    assert code == 0, out
    assert "reproduce (smoke): 2/2 claims pass, 0 fail in the 1 study run now" in out
    assert "failing claims" not in out
    # the tables still gather every summary, and say so
    assert "(4 claims of 2 studies, 3 pass; 1 not run now, from their earlier summaries: " \
           "bad)" in out
    md = (tmp_path / "o" / "figures" / "smoke" / "claims.md").read_text()
    assert "| bad |" in md and "| good |" in md


def _fake_training(diverged_at):
    import xarray as xr

    at = np.asarray(diverged_at, dtype=np.int32)  # (point, learning_rate, seed)
    return xr.Dataset({"diverged_at": (("point", "learning_rate", "seed"), at)},
                      coords={"point": ["Xavier", "He"][:at.shape[0]]})


DIVERGING_STUDY = '''
from gradstudy.studies import Claim

NAME = "diverging"
DESCRIPTION = "two trainings, one with diverged runs; a claim on its loss is NaN"
SCALES = {"smoke": {"x": 1.0}, "paper": {"x": 1.0}}


def run(ctx, p):
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    ctx.train("training-a", None, tag="train-a")
    ctx.train("training-b", None, tag="train-b")
    return [Claim("loss_below", "final loss below 1", float("nan"), 1.0, 0.0, "x",
                  kind="less"),
            Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]
'''


def test_diverged_runs_are_printed_per_training(tmp_path, monkeypatch, capsys):
    """`run he_vs_xavier --set lr=10` printed five "measured nan" claims without a word of
    divergence (the count was only in summary.json)."""
    from gradstudy.studies import _protocol

    trainings = {"training-a": _fake_training([[[3, -1, 7]], [[0, 0, 0]]]),
                 "training-b": _fake_training([[[-1, -1, -1]], [[-1, -1, -1]]])}
    monkeypatch.setattr(_protocol, "train", lambda training, data, **kw: trainings[training])
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(_write_studies(tmp_path, {
        "diverging.py": DIVERGING_STUDY})))
    code, out, err = _main(["run", "diverging", "--out", str(tmp_path / "o"), "--no-progress"],
                           capsys)
    assert code == 0, err
    assert ("  diverged: train-a: 5 of 6 runs (Xavier 2, He 3), at steps 0, 0, 0, 3, 7 "
            "(first non-finite loss)") in out
    assert "train-b" not in out  # nothing diverged there
    assert "[FAIL] loss_below: measured nan, expected < 1  (NaN: runs of this study " \
           "diverged, see above)" in out
    assert "[PASS] ok: measured 1, expected 1 ± 0\n" in out
    summary = json.loads(next((tmp_path / "o").rglob("summary.json")).read_text())
    assert summary["diverged_runs"] == {"train-a": 5}
    assert summary["divergence"] == {"train-a": {"runs": 6, "diverged": 5, "by_point": {
        "Xavier": 2, "He": 3}, "steps": [0, 0, 0, 3, 7]}}


def test_many_diverged_steps_are_summarised():
    assert cli._steps_text([4]) == "at step 4"
    assert cli._steps_text(list(range(20))) == "at steps 0–19 (median 10)"


def test_closed_pipe_exits_quietly_subprocess():
    """`gradstudy list | head -3` ended in a BrokenPipeError traceback: the reader here
    closes the pipe before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "gradstudy.cli", "list"], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == "", err


def test_closed_pipe_exits_quietly_in_process(monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["list"]) == 1
