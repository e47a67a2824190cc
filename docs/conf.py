"""Sphinx configuration of gradstudy's documentation (``make docs``).

Pages are MyST markdown; their ``{code-cell}`` blocks are executed by myst-nb at every build
(``nb_execution_mode = "force"``), and an error in a cell fails the build.  Nothing is
fetched at build time (no intersphinx).  The API reference documents the public face only
(``docs/_ext/public_api.py``).  Everything a build writes (HTML, executed notebooks, the
kernels' working folders and their figures) goes under ``docs/_build``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BUILD = DOCS / "_build"
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

# The kernels inherit this environment.  Their working folders (myst-nb's temporary
# directories) and any tempfile a page makes live under docs/_build, never in the sources.
_TMP = BUILD / "execute_tmp"
_TMP.mkdir(parents=True, exist_ok=True)
os.environ["TMPDIR"] = str(_TMP)
tempfile.tempdir = None  # re-read TMPDIR
# the studies of this checkout (the kernels run in a temporary folder, not at the root)
os.environ.setdefault("GRADSTUDY_EXPERIMENTS", str(ROOT / "experiments"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from gradstudy import __version__  # noqa: E402
from gradstudy._xla import default_xla_flags  # noqa: E402

# the kernels get the gradstudy command's XLA defaults (fast compiles, one CPU device per
# core), as the README tells users to set them in their own scripts
default_xla_flags()

project = "gradstudy"
author = "gradstudy authors"
copyright = "gradstudy authors"
release = __version__
version = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "public_api",
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "_ext"]

# -- MyST and execution ---------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"           # every build runs every page: no example can rot
nb_execution_raise_on_error = True    # an exception in a cell fails the build
nb_execution_timeout = 300            # seconds per cell
nb_execution_in_temp = True           # cwd of each kernel: a folder under docs/_build
nb_execution_cache_path = str(BUILD / ".jupyter_cache")
nb_merge_streams = True
nb_output_stderr = "show"

# -- autodoc ----------------------------------------------------------------------------------
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True              # "Attributes:" as fields: no duplicate descriptions
napoleon_use_rtype = False
add_module_names = False
python_display_short_literal_types = True
# a parameter named like an attribute of two classes (``dtype``) is not an ambiguous link
suppress_warnings = ["ref.python"]

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"gradstudy {release}"
html_theme_options = {
    "repository_url": "",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_static_path: list[str] = []
html_last_updated_fmt = None


# -- docstrings: plain-text notation that reStructuredText would misread --------------------
_LITERAL = re.compile(r"(``.+?``|:math:`[^`]*`)")

def _plain_text(app, what, name, obj, options, lines):
    """Docstrings write |x| for absolute values and norms; reST reads |x| as a substitution.
    Outside literals, '|' is escaped.  ``x``s (a plural after a literal) gets the escaped
    space reST needs."""
    for i, line in enumerate(lines):
        parts = _LITERAL.split(line)
        for k in range(0, len(parts), 2):  # even parts lie outside literals
            parts[k] = parts[k].replace("|", "\\|")
            if k and parts[k][:1].isalnum():
                parts[k] = "\\ " + parts[k]
        lines[i] = "".join(parts)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_text)
