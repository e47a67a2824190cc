"""The ``public-api`` directive: the reference of one public module, from its ``__all__``.

gradstudy defines its objects in private modules (``gradstudy.engine._sweep``) and exports
them from public faces (``gradstudy.engine``).  This directive documents a face's names under
their public path only (never a private module's page): every class and function once, under
the most specific public module that exports it (``MLPSpec`` under
``gradstudy.families.mlp``); a face that re-exports it lists it with a link there.  Constants
get their value; public submodules a link to their page.

Usage in a MyST page::

    ```{public-api} gradstudy.engine
    ```
"""

from __future__ import annotations

import importlib
import inspect
import reprlib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def public_modules() -> list[str]:
    """``gradstudy`` and every module of ``gradstudy.PUBLIC_MODULES``, full names."""
    gradstudy = importlib.import_module("gradstudy")
    return ["gradstudy"] + [f"gradstudy.{m}" for m in gradstudy.PUBLIC_MODULES]


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


def canonical(name: str, obj) -> str:
    """The public module a class or function is documented under: of those exporting it
    under ``name``, the one sharing most of the path of the module that defines it (ties:
    the first of :func:`public_modules`)."""
    defined = getattr(obj, "__module__", None) or ""
    best, score = None, -1
    for mod_name in public_modules():
        mod = importlib.import_module(mod_name)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name, None) is obj:
            s = _common(mod_name, defined)
            if s > score:
                best, score = mod_name, s
    return best


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def _kind(obj) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj) and hasattr(obj, "__name__") and (
            inspect.isroutine(obj) or hasattr(obj, "__wrapped__")):
        return "function"
    return "data"


class PublicAPI(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self):
        mod_name = self.arguments[0]
        mod = importlib.import_module(mod_name)
        names = list(getattr(mod, "__all__", ()))
        if not names:
            raise self.error(f"public-api: {mod_name} has no __all__")
        lines = [f".. automodule:: {mod_name}", "   :no-members:", ""]
        groups = {"module": [], "class": [], "function": [], "data": []}
        for name in sorted(names, key=str.lower):
            groups[_kind(getattr(mod, name))].append(name)

        if groups["module"]:
            lines += [".. rubric:: Submodules", ""]
            for name in groups["module"]:
                sub = getattr(mod, name).__name__
                lines.append(f"* :doc:`{sub} <{sub}>`")
            lines.append("")

        here, elsewhere = [], []
        for name in groups["class"] + groups["function"]:
            obj = getattr(mod, name)
            home = canonical(name, obj)
            (here if home == mod_name else elsewhere).append((name, obj, home))

        if elsewhere:
            lines += [".. rubric:: Re-exported here, documented in their own module", ""]
            for name, obj, home in elsewhere:
                summary = _summary(obj)
                lines.append(f"* :py:obj:`{mod_name}.{name} <{home}.{name}>` — "
                             f"``{home}.{name}``" + (f": {summary}" if summary else ""))
            lines.append("")

        for title, kind in (("Classes", "class"), ("Functions", "function")):
            entries = [(n, o) for n, o, _ in here if _kind(o) == kind]
            if not entries:
                continue
            lines += [f".. rubric:: {title}", ""]
            for name, _ in entries:
                directive = "autoclass" if kind == "class" else "autofunction"
                lines += [f".. {directive}:: {mod_name}.{name}", ""]

        if groups["data"]:
            lines += [".. rubric:: Constants", ""]
            for name in groups["data"]:
                value = _REPR.repr(getattr(mod, name)).replace("\n", " ")
                lines += [f".. py:data:: {mod_name}.{name}", f"   :value: {value}", ""]

        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=mod_name), container)
        return container.children


def setup(app):
    app.add_directive("public-api", PublicAPI)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
