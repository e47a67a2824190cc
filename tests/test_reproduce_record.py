"""The record of a whole ``gradstudy reproduce`` run (``results/reproduce.json``: wall time,
peak resident memory, cores, cache use) and its numbers in ``figures/numbers.tex``, from
which the paper's reproducibility paragraph quotes them."""

import json
import re
import resource
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gradstudy import cli
from gradstudy.studies import _report as report

# A study that stores one result file the first time (as a cached sweep would) and reuses
# it after: the record counts what a run computed and what it found cached.
CACHING_STUDY = '''
from gradstudy.studies import Claim

NAME = "{name}"
DESCRIPTION = "stores one result file, reuses it after"
SCALES = {{"smoke": {{"x": 1.0}}, "paper": {{"x": 1.0}}}}


def run(ctx, p):
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.results_dir / "sweep-0123456789abcdef.nc"
    if not path.exists():
        path.write_bytes(b"not really netCDF")
    return [Claim("ok", "1 = 1", 1.0, 1.0, 0.0, "arithmetic")]
'''


def _parse(tex: str) -> dict[str, str]:
    return dict(re.findall(r"^\\gsdef\{([^{}]*)\}\{([^{}]*)\}$", tex, re.M))


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024) / 1e6


def _reproduce(args, capsys):
    code = cli.main(["reproduce", "--scale", "smoke", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def two_studies(tmp_path, monkeypatch):
    exp = tmp_path / "experiments"
    exp.mkdir()
    for name in ("first", "second"):
        (exp / f"{name}.py").write_text(textwrap.dedent(CACHING_STUDY.format(name=name)))
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(exp))
    return tmp_path / "o"


def test_a_whole_reproduce_records_its_time_memory_and_cache_use(two_studies, capsys):
    out = two_studies
    record_path = out / "results" / "smoke" / "reproduce.json"
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    _reproduce(["--out", str(out)], capsys)
    elapsed = time.perf_counter() - t0
    record = json.loads(record_path.read_text())
    assert record["scale"] == "smoke" and record["studies"] == 2 and record["claims"] == 2
    assert 0 < record["wall_s"] <= elapsed + 0.01
    # the peak resident memory of this process (getrusage is monotone over its life)
    assert rss_before - 0.1 <= record["peak_rss_mb"] <= _peak_rss_mb() + 0.1
    assert record["peak_rss_children_mb"] >= 0
    assert record["cpu_count"] >= 1
    assert record["result_files_cached"] == 0 and record["result_files_written"] == 2
    assert {"versions", "backend", "source", "finished"} <= set(record)
    values = _parse((out / "figures" / "smoke" / "numbers.tex").read_text())
    assert float(values["reproduce/wall_s"]) == record["wall_s"]
    assert float(values["reproduce/peak_rss_mb"]) == record["peak_rss_mb"]
    assert int(values["reproduce/cpu_count"]) == record["cpu_count"]
    assert int(values["reproduce/studies"]) == 2
    assert not any(k.startswith("reproduce/versions") for k in values), "text is left out"

    # the second whole run finds both results cached and computes none
    _reproduce(["--out", str(out)], capsys)
    record = json.loads(record_path.read_text())
    assert record["result_files_cached"] == 2 and record["result_files_written"] == 0

    # a run of some studies is not the whole run: the record stays, and so do its numbers
    before = record_path.read_text()
    _reproduce(["--out", str(out), "--only", "first"], capsys)
    assert record_path.read_text() == before
    values = _parse((out / "figures" / "smoke" / "numbers.tex").read_text())
    assert float(values["reproduce/wall_s"]) == record["wall_s"]


def test_a_run_with_a_broken_study_skipped_is_not_recorded(two_studies, capsys):
    exp = Path(two_studies).parent / "experiments"
    (exp / "broken.py").write_text("def f(:\n")
    code = cli.main(["reproduce", "--scale", "smoke", "--no-progress", "--out",
                     str(two_studies)])
    capsys.readouterr()
    assert code == 0
    assert not (two_studies / "results" / "smoke" / "reproduce.json").exists()
    assert "reproduce/" not in (two_studies / "figures" / "smoke" / "numbers.tex").read_text()


def test_numbers_of_a_run_record():
    summaries = [{"study": "s", "scale": "paper", "claims": []}]
    record = {"wall_s": 714.2, "peak_rss_mb": 1850.0, "cpu_count": 2, "studies": 16,
              "result_files_cached": 0, "versions": {"jax": "0.4.30"}, "source": "by hand"}
    values = _parse(report.numbers_tex(summaries, record))
    assert values["reproduce/wall_s"] == "714.2" and values["reproduce/cpu_count"] == "2"
    assert values["reproduce/peak_rss_mb"] == "1850.0"
    assert values["reproduce/result_files_cached"] == "0"
    assert not any(k.startswith(("reproduce/versions", "reproduce/source")) for k in values)
    # without a record (the old call) no such key
    assert not any(k.startswith("reproduce/") for k in _parse(report.numbers_tex(summaries)))


def test_write_tables_writes_the_record_it_is_given(tmp_path):
    summaries = [{"study": "s", "scale": "paper", "claims": []}]
    paths = report.write_tables(summaries, tmp_path)  # the call of before still works
    assert "reproduce/" not in paths[2].read_text()
    report.write_run_record({"wall_s": 3.5}, tmp_path / "results")
    record = report.read_run_record(tmp_path / "results")
    assert record == {"wall_s": 3.5}
    paths = report.write_tables(summaries, tmp_path, record)
    assert _parse(paths[2].read_text())["reproduce/wall_s"] == "3.5"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_an_unreadable_record_is_left_out_with_one_line(tmp_path, capsys, text):
    (tmp_path / "reproduce.json").write_text(text)
    assert report.read_run_record(tmp_path) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reproduce.json" in err
    assert report.read_run_record(tmp_path / "missing") is None
