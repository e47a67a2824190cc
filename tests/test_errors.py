"""One import source for ConfigError: every ``import`` of it in the repository's code names
``gradstudy.errors``; ``gradstudy.ConfigError`` (the public name) and ``gradstudy.families.mlp``
re-export the same class."""

import ast
from pathlib import Path

import gradstudy
from gradstudy import errors

ROOT = Path(__file__).resolve().parents[1]
DIRS = ("gradstudy", "experiments", "tests", "benchmarks")
PENDING: set[str] = set()  # files allowed another import source (none)


def _config_error_imports(path: Path):
    """(line, module) of every ``from MODULE import ConfigError`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [(node.lineno, node.module) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and any(alias.name == "ConfigError" for alias in node.names)]


def test_config_error_is_imported_only_from_errors():
    wrong, found = [], 0
    for d in DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, module in _config_error_imports(path):
                found += 1
                if module != "gradstudy.errors" and rel not in PENDING:
                    wrong.append(f"{rel}:{line}: from {module} import ConfigError")
    assert found > 10  # the walk did find the library's and the tests' imports
    assert not wrong, "\n".join(wrong)


def test_public_names_are_the_same_class():
    assert gradstudy.ConfigError is errors.ConfigError
