"""`pip install gradstudy` is the whole tool: what the wheel and sdist are made of, checked
without building them (``.ci/wheel_check.sh`` builds, installs and runs them in CI).

The studies (``experiments/``) and example models (``examples/``) stay at the top of the
repository and are mapped into the package (``gradstudy.experiments``,
``gradstudy.examples``); the studies are found there by ``experiments_dir`` and
``examples.X`` factories fall back to them when the user has no ``examples`` package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import gradstudy
from gradstudy.errors import ConfigError
from gradstudy.studies import _protocol
from gradstudy.tools import _factory, call_factory, load_factory

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
MAPPED = {"gradstudy.experiments": "experiments", "gradstudy.examples": "examples"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)[0])


# ------------------------------------------------------------------ what the wheel holds


def test_package_list_names_every_package_folder_and_the_mapped_folders():
    """``packages`` is an explicit list (packages.find cannot add mapped folders): a new
    folder of gradstudy/ missing from it would be missing from the wheel."""
    folders = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "gradstudy").rglob("__init__.py")}
    assert set(SETUPTOOLS["packages"]) == folders | set(MAPPED)
    assert len(SETUPTOOLS["packages"]) == len(set(SETUPTOOLS["packages"]))
    assert SETUPTOOLS["package-dir"] == MAPPED
    assert "packages" not in SETUPTOOLS or "find" not in SETUPTOOLS["packages"]


@pytest.mark.parametrize("folder", sorted(MAPPED.values()))
def test_mapped_folders_hold_only_modules_the_wheel_carries(folder):
    """setuptools carries the ``*.py`` files of a mapped package folder and nothing else
    (no sub-folders, no data files unless in package-data): every file a study or example
    needs must be such a module, and every study file's name a module name."""
    files = [p for p in (ROOT / folder).rglob("*")
             if "__pycache__" not in p.parts and p.is_file() and p.suffix != ".pyc"]
    modules = sorted(p.name for p in (ROOT / folder).glob("*.py"))
    assert modules, folder
    dropped = [p.relative_to(ROOT).as_posix() for p in files
               if p.parent != ROOT / folder or p.suffix != ".py"]
    assert not dropped, f"not carried by the wheel: {dropped}"
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.py", m) for m in modules), modules
    assert not PYPROJECT["tool"]["setuptools"].get("exclude-package-data")


def test_every_study_and_example_is_in_the_mapped_package(monkeypatch):
    """The names the tool uses resolve inside the mapped packages: all studies that
    ``gradstudy list`` shows, and the examples module of ``gradstudy diagnose``."""
    monkeypatch.delenv("GRADSTUDY_EXPERIMENTS", raising=False)
    studies, broken = _protocol.discover_all()
    assert not broken
    files = {p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_")}
    assert {Path(m.__file__).stem for m in studies.values()} == files
    assert all(Path(m.__file__).parent == ROOT / MAPPED["gradstudy.experiments"]
               for m in studies.values())
    assert (ROOT / MAPPED["gradstudy.examples"] / "models.py").is_file()


def test_sdist_keeps_what_builds_the_wheel():
    manifest = (ROOT / "MANIFEST.in").read_text()
    rules = [line.split() for line in manifest.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    for rule in rules:
        if rule[0] in ("prune", "exclude", "recursive-exclude", "graft"):
            assert not set(rule[1:]) & {"experiments", "examples", "gradstudy", "LICENSE",
                                        "README.md", "pyproject.toml"}, rule
    assert "constraints.txt" in manifest


def test_build_outputs_are_ignored_by_git():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"build/", "dist/", "*.whl"} <= set(ignored)


# ------------------------------------------------------------- license and metadata


def test_license_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    for section in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                    "9. Accepting Warranty or Additional Liability.",
                    "END OF TERMS AND CONDITIONS",
                    "http://www.apache.org/licenses/LICENSE-2.0"):
        assert section in text, section
    assert "Copyright 2026 The gradstudy authors" in text
    assert "[yyyy]" not in text and "[name of copyright owner]" not in text
    assert len(text.split()) > 1500  # the full text, not a notice
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]


def test_project_metadata():
    assert PROJECT["readme"] == {"file": "README.md", "content-type": "text/markdown"}
    assert PROJECT["authors"] == [{"name": "The gradstudy authors"}]
    assert PROJECT["requires-python"] == ">=3.10"
    urls = PROJECT["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert urls["Documentation"] == "https://gradstudy.readthedocs.io"
    assert all(u.startswith("https://github.com/gradstudy/gradstudy")
               for k, u in urls.items() if k != "Documentation")
    assert len(PROJECT["keywords"]) >= 3
    classifiers = PROJECT["classifiers"]
    for needed in ("Intended Audience :: Science/Research",
                   "Topic :: Scientific/Engineering :: Artificial Intelligence",
                   "Programming Language :: Python :: 3.10",
                   "Programming Language :: Python :: 3.11",
                   "Programming Language :: Python :: 3.12"):
        assert needed in classifiers, needed
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    # setuptools >= 77 refuses License classifiers beside an SPDX license expression
    assert not any(c.startswith("License ::") for c in classifiers)
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\..*)?", r)
               for r in PYPROJECT["build-system"]["requires"])


def test_version_has_one_place():
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    assert "version" not in PROJECT.get("dynamic", [])
    assert gradstudy.__version__ == metadata.version("gradstudy") == PROJECT["version"]
    assert PROJECT["version"] not in (ROOT / "gradstudy" / "_version.py").read_text()
    assert PROJECT["scripts"]["gradstudy"] == "gradstudy.cli:main"


def test_extras_and_constraints():
    extras = {k: {_requirement_name(r) for r in v}
              for k, v in PROJECT["optional-dependencies"].items()}
    assert {"build", "twine", "pytest", "pytest-xdist"} <= extras["test"]
    assert {"sphinx", "myst-nb", "sphinx-book-theme"} <= extras["docs"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[_canonical(name)] = version
    assert "gradstudy" not in pins
    wanted = ({_requirement_name(r) for r in PROJECT["dependencies"]}
              | extras["test"] | extras["docs"])
    assert not wanted - set(pins), f"not pinned in constraints.txt: {wanted - set(pins)}"


def test_ci_runs_the_wheel_check_after_the_tests():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("make test") < run.index(".ci/wheel_check.sh")
    script = (ROOT / ".ci" / "wheel_check.sh").read_text()
    assert "set -euo pipefail" in script
    for command in ("twine check --strict", " list", " run ", " reproduce --scale smoke",
                    " diagnose examples.models:cnn1d", "constraints.txt"):
        assert command in script, command


# ------------------------------------------------------- the studies found where installed


def _installed_layout(root: Path, monkeypatch) -> Path:
    """A fake install: ``root/site/gradstudy/studies/_protocol.py`` as the module's file."""
    package = root / "site" / "gradstudy"
    (package / "studies").mkdir(parents=True)
    monkeypatch.setattr(_protocol, "__file__", str(package / "studies" / "_protocol.py"))
    monkeypatch.delenv("GRADSTUDY_EXPERIMENTS", raising=False)
    return package


def test_experiments_dir_prefers_the_packaged_studies(tmp_path, monkeypatch):
    package = _installed_layout(tmp_path, monkeypatch)
    cwd = tmp_path / "cwd"
    (cwd / "experiments").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    assert _protocol.experiments_dir() == cwd / "experiments"  # the last resort
    (package.parent / "experiments").mkdir()
    assert _protocol.experiments_dir() == package.parent / "experiments"  # a checkout
    (package / "experiments").mkdir()
    assert _protocol.experiments_dir() == package / "experiments"  # the wheel's
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv("GRADSTUDY_EXPERIMENTS", str(mine))
    assert _protocol.experiments_dir() == mine  # the environment wins


def test_experiments_dir_none_is_one_error(tmp_path, monkeypatch):
    package = _installed_layout(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="GRADSTUDY_EXPERIMENTS") as e:
        _protocol.experiments_dir()
    assert str(package / "experiments") in str(e.value)


def test_packaged_studies_are_discovered(tmp_path, monkeypatch):
    package = _installed_layout(tmp_path, monkeypatch)
    (package / "experiments").mkdir()
    study = ROOT / "experiments" / "multiplication_chain.py"
    (package / "experiments" / study.name).write_text(study.read_text())
    monkeypatch.chdir(tmp_path)
    studies, broken = _protocol.discover_all()
    assert list(studies) == ["multiplication_chain"] and not broken
    assert Path(studies["multiplication_chain"].__file__).parent == package / "experiments"


def test_experiments_dir_in_the_repository_is_its_experiments_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("GRADSTUDY_EXPERIMENTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert _protocol.experiments_dir() == ROOT / "experiments"


# ----------------------------------------------------- examples.X: the user's, else packaged


@pytest.fixture
def away_from_the_repository(tmp_path, monkeypatch):
    """The current directory is ``tmp_path`` and the repository is not on ``sys.path``
    (as after ``pip install gradstudy``); no ``examples`` module is cached."""
    monkeypatch.chdir(tmp_path)
    here = {"", ".", str(ROOT)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in here])
    def examples_modules():
        return [n for n in sys.modules if n == "examples" or n.startswith("examples.")]

    for name in examples_modules():
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path
    # a test's own `examples` package must not stay cached for later tests in this process
    # (monkeypatch then restores the repository's examples modules removed above)
    for name in examples_modules():
        del sys.modules[name]


def test_examples_fall_back_to_the_packaged_models(away_from_the_repository):
    fn = load_factory("examples.models:cnn1d")
    assert fn.__module__ == "gradstudy.examples.models"
    assert Path(sys.modules[fn.__module__].__file__).resolve() == ROOT / "examples" / "models.py"
    module, batch, loss_fn, options = call_factory(fn)
    assert type(module).__name__ == "CNN1D" and callable(loss_fn) and "call_args" in options
    assert "examples" not in sys.modules  # the user's namespace is left alone


def test_a_users_examples_package_wins(away_from_the_repository):
    mine = away_from_the_repository / "examples"
    mine.mkdir()
    (mine / "__init__.py").write_text("")
    (mine / "models.py").write_text("def cnn1d():\n    return 'mine'\n")
    fn = load_factory("examples.models:cnn1d")
    assert fn.__module__ == "examples.models" and fn() == "mine"


def test_a_users_examples_package_without_the_module_is_not_replaced(away_from_the_repository):
    mine = away_from_the_repository / "examples"
    mine.mkdir()
    (mine / "__init__.py").write_text("")
    with pytest.raises(ConfigError, match=r"cannot import 'examples\.models'"):
        load_factory("examples.models:cnn1d")


def test_unknown_packaged_example_is_one_line(away_from_the_repository):
    with pytest.raises(ConfigError, match=r"cannot import 'examples\.nope'.*"
                                          r"gradstudy\.examples\.nope"):
        load_factory("examples.nope:cnn1d")


def test_other_packages_do_not_fall_back(away_from_the_repository):
    with pytest.raises(ConfigError, match=r"cannot import 'models'"):
        load_factory("models:cnn1d")


def test_diagnose_command_from_an_empty_directory_finds_the_packaged_examples(tmp_path):
    """The CLI as a user runs it (no repository on the path), up to the factory's check;
    ``--seeds 0`` stops it there with one line, before any measurement."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from gradstudy.cli import main; "
         "sys.exit(main(['diagnose', 'examples.models:cnn1d', '--seeds', '0', "
         "'--out', 'out']))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "seeds" in proc.stderr and "cannot import" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------- call_factory's models


def test_call_factory_accepts_linen_nnx_and_callables():
    import flax.linen as nn
    from flax import nnx

    def loss(out, batch):
        return out.sum()

    linear = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    for model in (nn.Dense(2), linear, lambda rngs: nnx.Linear(2, 2, rngs=rngs)):
        assert call_factory(lambda m=model: (m, {}, loss))[0] is model
    with pytest.raises(ConfigError, match="flax.linen.Module, a flax.nnx.Module or a callable"):
        call_factory(lambda: (3, {}, loss))
    assert _factory.PACKAGED_EXAMPLES == "gradstudy.examples"
