"""Modules that are also their main function: ``gradstudy.diagnose(...)`` calls
:func:`gradstudy.diagnose.diagnose`, and ``gradstudy.diagnose.format_table`` stays reachable
(a plain re-export of the function would hide the module's other names)."""

from __future__ import annotations

import sys
import types


def make_module_callable(module_name: str, function_name: str) -> None:
    """Make ``sys.modules[module_name](...)`` call its ``function_name``."""
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    _CallableModule.__call__.__doc__ = getattr(module, function_name).__doc__
    module.__class__ = _CallableModule
