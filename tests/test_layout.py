"""The package's structure, measured from its source (ast, every import counted, also the
ones inside functions): the import graph is acyclic, the face is imported by nobody inside
the package, a function-local gradstudy import exists only for matplotlib's sake, each
concept folder is a package with a face, no module is named like a function its package
exports, and tests/ mirrors the folders."""

import ast
import importlib
import inspect
from collections import defaultdict
from pathlib import Path

import gradstudy
from gradstudy import _deprecations

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gradstudy"
FOLDERS = ("nn", "families", "families/mlp", "families/rnn", "families/cnn", "theory",
           "engine", "tools", "data", "studies")
LAZY_ALLOWED = {"gradstudy.plotting"}  # imports matplotlib (and selects a backend)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(modules):
    """module -> [(imported module, is function-local, line)]"""
    out = defaultdict(list)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            found = {_resolve(t, modules) for t in targets if t.split(".")[0] == "gradstudy"}
            for target in sorted(found - {None, name}):
                if isinstance(node, ast.ImportFrom) and target == node.module and len(found) > 1:
                    continue  # `from gradstudy.x import y`: the edge is to y where y is a module
                out[name].append((target, id(node) not in top, node.lineno))
    return out


def test_import_graph_is_acyclic_and_the_face_is_imported_by_nobody():
    modules = _modules()
    imports = _imports(modules)
    assert not [m for m, targets in imports.items() for t, _, _ in targets
                if t == "gradstudy"], "a module imports the face"
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t, _, _ in imports[m]:
            assert state.get(t) != "open", " -> ".join(path + [t])
            if t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in modules:
        if m not in state:
            visit(m, [m])


def test_function_local_imports_only_where_they_avoid_matplotlib():
    modules = _modules()
    for m, targets in _imports(modules).items():
        for target, local, line in targets:
            if local:
                assert target in LAZY_ALLOWED, f"{m}:{line} imports {target} inside a function"
                text = modules[m].read_text(encoding="utf-8").splitlines()[line - 1]
                assert "matplotlib" in text, f"{m}:{line}: say why the import is local"


def test_concept_folders_have_faces_and_private_modules():
    for folder in FOLDERS:
        face = importlib.import_module("gradstudy." + folder.replace("/", "."))
        assert face.__doc__ and len(face.__doc__.split()) > 10, folder
        assert face.__all__, folder
        for path in (PKG / folder).glob("*.py"):
            assert path.name == "__init__.py" or path.name.startswith("_"), path
        for name in face.__all__:
            assert getattr(face, name) is not None, (folder, name)


def test_no_module_is_named_like_a_function_its_package_exports():
    for name in _modules():
        parent, _, leaf = name.rpartition(".")
        if not parent:
            continue
        value = vars(importlib.import_module(parent)).get(leaf)
        assert value is None or inspect.ismodule(value), name


def test_tests_mirror_the_package_folders():
    tests = ROOT / "tests"
    folders = {p.relative_to(tests).as_posix() for p in tests.rglob("test_*.py")}
    for f in folders:
        parent = f.rpartition("/")[0]
        if parent:
            assert (PKG / parent / "__init__.py").is_file(), f"tests/{f} mirrors no folder"
    assert gradstudy.__all__ and "sweep" not in gradstudy.__all__


def test_importing_gradstudy_imports_neither_matplotlib_nor_an_old_path():
    import subprocess
    import sys

    old = ", ".join(repr(f"gradstudy.{m}") for m in _deprecations.MOVED_MODULES)
    code = ("import sys, warnings; warnings.simplefilter('error', DeprecationWarning); "
            "import gradstudy; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "assert 'gradstudy.plotting' not in sys.modules; "
            f"loaded = set(sys.modules) & {{{old}}}; assert not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_importing_plotting_leaves_the_matplotlib_backend_alone():
    """A notebook keeps its backend: only the ``gradstudy`` command selects Agg."""
    import os
    import subprocess
    import sys

    code = ("import matplotlib; import gradstudy.plotting; "
            "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MPLBACKEND": "svg"})
    assert out.returncode == 0, out.stderr[-2000:]
