"""The README teaches only the public API: every ``gradstudy`` name its code uses is in
``gradstudy.__all__`` or belongs to a module of ``gradstudy.PUBLIC_MODULES``, and resolves
without a DeprecationWarning (the README names the new paths)."""

import importlib
import re
from pathlib import Path

import pytest

import gradstudy

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CODE = "\n".join(re.findall(r"```python\n(.*?)```", README, flags=re.S))


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_readme_imports_are_public_and_resolve():
    imports = re.findall(r"^\s*from (gradstudy[\w.]*) import ([\w, ]+)", CODE, flags=re.M)
    assert imports, "no gradstudy imports found in the README's code"
    for module_name, names in imports:
        module = importlib.import_module(module_name)
        sub = module_name.removeprefix("gradstudy").lstrip(".")
        for name in (n.strip() for n in names.split(",")):
            if not sub and name in gradstudy.PUBLIC_MODULES:
                importlib.import_module(f"gradstudy.{name}")  # what `from ... import` does
            assert hasattr(module, name), f"{module_name}.{name} does not exist"
            if sub:
                assert sub in gradstudy.PUBLIC_MODULES, f"{module_name} is not public"
            else:
                assert name in gradstudy.__all__ or name in gradstudy.PUBLIC_MODULES, name


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_readme_attribute_uses_resolve():
    for module_name, name in set(re.findall(r"gradstudy\.([\w.]+)\.(\w+)\(", CODE)):
        assert module_name in gradstudy.PUBLIC_MODULES, module_name
        assert hasattr(importlib.import_module(f"gradstudy.{module_name}"), name), name


def test_all_resolves():
    for name in gradstudy.__all__:
        assert getattr(gradstudy, name) is not None
