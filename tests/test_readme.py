"""No example may rot: every ```python block of the README runs (in a temporary folder), every
``gradstudy ...`` command line of the README's and the docs' shell blocks parses (its
subcommand, study and flags exist; nothing is run), every ``make`` target they name exists,
and the docs pages hold no plain ```python fence (their examples are ``{code-cell}`` blocks,
which ``make docs`` executes with errors failing the build)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import matplotlib
import pytest

from gradstudy import cli
from gradstudy.studies import discover

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(path: Path, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(path.read_text()) if kind == lang]


def shell_lines(path: Path) -> list[str]:
    """The commands of a file's ```bash blocks, comments and prompts removed."""
    lines = []
    for body in blocks(path, "bash"):
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.extend(part.strip() for part in line.split("&&"))
    return lines


PYTHON_BLOCKS = blocks(README, "python")
SHELL = [(path.relative_to(ROOT), line) for path in [README, *PAGES]
         for line in shell_lines(path)]


def test_the_readme_has_examples_and_the_test_command():
    assert PYTHON_BLOCKS, "the README shows at least one Python example"
    assert any(line == "make test" for path, line in SHELL if path == Path("README.md")), \
        "the README keeps the literal `make test` (.ci/run calls it)"


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    backend = matplotlib.get_backend()
    namespace = {"__name__": f"readme_block_{index}"}
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), namespace)
    assert matplotlib.get_backend() == backend
    if "plot_diagnosis(ds, \"flow.png\")" in PYTHON_BLOCKS[index]:
        assert (tmp_path / "flow.png").is_file() and (tmp_path / "flow.pdf").is_file()
        assert namespace["fig"].axes, "plot_diagnosis returns its Figure"


def _gradstudy_commands():
    return [(p, line) for p, line in SHELL
            if line.split()[:1] == ["gradstudy"] or ".venv/bin/gradstudy" in line.split()[:1]]


def test_every_doc_names_some_commands():
    assert _gradstudy_commands(), "no gradstudy command lines found"


@pytest.mark.parametrize("where,line", _gradstudy_commands(),
                         ids=[f"{p}:{line}" for p, line in _gradstudy_commands()])
def test_gradstudy_command_line_parses(where, line):
    argv = shlex.split(line)[1:]
    if argv == ["--version"]:
        with pytest.raises(SystemExit) as done:
            cli._parser().parse_args(argv)
        assert done.value.code == 0
        return
    args = cli._parser().parse_args(argv)  # an unknown subcommand or flag exits 2
    studies = discover()
    if args.command == "run":
        assert args.name in studies, f"{where}: no study {args.name!r}"
    if getattr(args, "only", None):
        assert set(args.only) <= set(studies), f"{where}: {args.only}"
    if getattr(args, "scale", None) is not None:
        assert args.scale in ("smoke", "paper")
    if args.command == "run" and args.overrides:  # --set KEY=VALUE ...: the keys exist
        keys = {kv.split("=", 1)[0] for kv in args.overrides}
        limits = studies[args.name].LIMITS
        assert keys <= set(limits), f"{where}: unknown --set keys {keys - set(limits)}"


def _make_targets():
    return [(p, line) for p, line in SHELL if line.split()[:1] == ["make"]]


def test_every_make_target_named_in_the_docs_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    named = {word for _, line in _make_targets() for word in line.split()[1:]
             if "=" not in word}
    assert named, "the docs name make targets"
    assert named <= targets, named - targets
    assert "make docs" in makefile and "docs" in targets


def test_docs_pages_have_no_unexecuted_python():
    """Every Python example of the docs is a code cell (executed by `make docs`)."""
    assert PAGES, "docs/ has pages"
    for page in PAGES:
        assert not blocks(page, "python"), f"{page}: a ```python fence is never executed; " \
                                           "make it a {code-cell}"


def test_readme_links_point_at_docs_pages():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
