"""Fingerprints of the functions a configuration computes with, for results-cache keys.

A cached result may be reused only if the computation is the same.  A name ("softsign")
is not enough: it can be registered again with another function.  Nor is a function's code:
``lambda x, k=k: k * jnp.tanh(x)`` computes different things for k = 1 and k = 5, and so do
two closures of one factory.  :func:`fingerprint` hashes what determines the result:

* Python functions: bytecode (nested code objects recursively), constants, names, default
  and keyword-default values, closure cell contents and the module-level values the code
  refers to;
* ``functools.partial``: the function, positional and keyword arguments;
* ``jax.custom_jvp`` / ``jax.custom_vjp`` / ``jax.jit``-wrapped user functions: the
  functions they are built from;
* instances of frozen dataclasses (a callable with parameters): the methods, properties
  and constants of their classes, and their fields;
* functions and classes of NumPy, SciPy, JAX, Flax, Optax and the standard library (``jnp.tanh``,
  ``jax.nn.relu``, ``np.tanh``, ``abs``): their importable module and qualified name;
* values: numbers, strings, bytes, None, tuples and frozensets of values, NumPy and JAX
  arrays (dtype, shape and bytes).

Where equality of the computation cannot be established -- an arbitrary object or a
mutable container (list, dict, set) in a closure, default or global; a C callable without
an importable name; a module other than a trusted library's -- :func:`fingerprint` returns
None, and the caller must not reuse (or store) cached results.  Fingerprints use no
``id()`` and no addresses, so they are the same in every process for the same code.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import importlib
import sys
import types
from typing import Any

import numpy as np

from gradstudy.nn._activations import get_activation
from gradstudy.nn._initializers import UNIT_SAMPLERS, get_initializer

# Functions, classes and modules of these packages are fingerprinted by their importable
# name: they change only with the package version, not with the user's code.
TRUSTED_PACKAGES = frozenset({
    "jax", "jaxlib", "numpy", "scipy", "flax", "optax", "math", "cmath", "builtins",
    "operator", "functools", "itertools", "numbers", "typing",
})


class NotFingerprintable(Exception):
    """Raised inside the fingerprinter; its message says which object and why."""


def fingerprint(obj: Any) -> str | None:
    """Hex SHA-256 of what ``obj`` computes, or None if that cannot be established."""
    try:
        return _digest(_canon(obj, ()))
    except NotFingerprintable:
        return None


def why_not_fingerprintable(obj: Any) -> str | None:
    """The reason :func:`fingerprint` returns None for ``obj`` (None if it does not)."""
    try:
        _canon(obj, ())
    except NotFingerprintable as e:
        return str(e)
    return None


def activation_fingerprint(activation: Any) -> str | None:
    """Fingerprint of the function a name or callable resolves to *now*."""

    return fingerprint(get_activation(activation))


def initializer_fingerprint(init: Any) -> str | None:
    """Fingerprint of an initializer family: what samples the weights and its variance factor.

    A family of the form "unit distribution × std(fan_in, fan_out)" is sampled as the
    unit sampler times per-layer scales from ``variance_factor`` (see
    ``MLPSpec.static_key``), so those two are what is hashed; any other family contributes
    its sampler and variance factor.
    """
    try:
        return _digest(_initializer_canon(init))
    except NotFingerprintable:
        return None


def why_initializer_not_fingerprintable(init: Any) -> str | None:
    try:
        _initializer_canon(init)
    except NotFingerprintable as e:
        return str(e)
    return None


def spec_fingerprint(spec) -> tuple | None:
    """(activation, init) fingerprints of a spec with ``activation`` and ``init`` fields
    (MLPSpec, CNNSpec): what its compiled programs run; None if either has none."""
    prints = (activation_fingerprint(spec.activation), initializer_fingerprint(spec.init))
    return None if None in prints else prints


def why_spec_unfingerprintable(spec) -> str | None:
    """Why :func:`spec_fingerprint` is None for ``spec`` (None if it is not)."""

    described = spec.describe()
    if described["activation_fingerprint"] is None:
        why = why_not_fingerprintable(get_activation(spec.activation))
        return f"activation {described['activation']} ({why})"
    if described["init_fingerprint"] is None:
        why = why_initializer_not_fingerprintable(spec.init)
        return f"init {described['init']} ({why})"
    return None


def _initializer_canon(init: Any):

    family = get_initializer(init)
    sampler = UNIT_SAMPLERS[family.unit] if family.unit else family.sample
    return ("init-family", family.unit, _canon(sampler, ()),
            _canon(family.variance_factor, ()))


def _digest(canonical) -> str:
    return hashlib.sha256(repr(canonical).encode()).hexdigest()


# ----------------------------------------------------------------------------- canonical form
_JIT_TYPE = None


def _jit_type():
    global _JIT_TYPE
    if _JIT_TYPE is None:
        import jax

        _JIT_TYPE = type(jax.jit(lambda x: x))
    return _JIT_TYPE


def _canon(obj: Any, stack: tuple):
    """A nested tuple of strings and numbers that is equal exactly when the computations
    are (conservatively: different code may still compute the same thing)."""
    if obj is None or obj is Ellipsis:
        return (repr(obj),)
    if isinstance(obj, bool):
        return ("bool", obj)
    if isinstance(obj, int) and type(obj) is int:
        return ("int", repr(obj))
    if isinstance(obj, float) and type(obj) is float:
        return ("float", obj.hex())
    if isinstance(obj, complex) and type(obj) is complex:
        return ("complex", obj.real.hex(), obj.imag.hex())
    if isinstance(obj, str) and type(obj) is str:
        return ("str", obj)
    if isinstance(obj, bytes) and type(obj) is bytes:
        return ("bytes", obj.hex())
    if isinstance(obj, np.generic):
        return ("np-scalar", obj.dtype.str, obj.tobytes().hex())
    if isinstance(obj, np.ndarray):
        return _array_canon("ndarray", obj)
    if type(obj) is tuple:
        return ("tuple",) + tuple(_canon(x, stack) for x in obj)
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):  # a namedtuple record
        return _namedtuple_canon(obj, stack)
    if type(obj) is frozenset:
        return ("frozenset",) + tuple(sorted((_canon(x, stack) for x in obj), key=repr))
    if isinstance(obj, types.CodeType):
        return _code_canon(obj, stack)
    if isinstance(obj, types.ModuleType):
        if _trusted(obj.__name__):
            return ("module", obj.__name__)
        raise NotFingerprintable(f"refers to module {obj.__name__!r}, whose contents are "
                                 "not fingerprinted")
    library_name = _library_name(obj)
    if library_name is not None:
        return ("library", library_name)
    if _is_jax_array(obj):
        try:
            return _array_canon("jax-array", np.asarray(obj))
        except Exception as e:  # a tracer or a deleted buffer has no fixed value
            raise NotFingerprintable(f"holds a JAX value without concrete data "
                                     f"({type(e).__name__})") from None
    if any(obj is s for s in stack):
        return ("recursive", getattr(obj, "__qualname__", type(obj).__name__))
    stack = stack + (obj,)
    if isinstance(obj, types.FunctionType):
        return _function_canon(obj, stack)
    if isinstance(obj, functools.partial):
        return ("partial", _canon(obj.func, stack), _canon(tuple(obj.args), stack),
                _canon_mapping(obj.keywords, stack))
    if isinstance(obj, types.MethodType):
        return ("method", _canon(obj.__func__, stack), _canon(obj.__self__, stack))
    if isinstance(obj, type) and issubclass(obj, BaseException):
        # raising an exception produces no number; its name is enough
        return ("exception-class", _class_key(obj))
    custom = _custom_derivative_canon(obj, stack)
    if custom is not None:
        return custom
    if isinstance(obj, _jit_type()):
        return ("jit", _canon(obj.__wrapped__, stack))
    if _is_frozen_dataclass(obj):
        return _frozen_instance_canon(obj, stack)
    if isinstance(obj, (list, dict, set, bytearray)):
        raise NotFingerprintable(f"refers to a mutable {type(obj).__name__}, which may change "
                                 "after the fingerprint is taken")
    if callable(obj):
        raise NotFingerprintable(f"refers to callable {_describe(obj)} without code or an "
                                 "importable library name")
    raise NotFingerprintable(f"refers to a {_type_name(type(obj))} object, whose effect on "
                             "the computation cannot be compared")


def _array_canon(tag: str, array: np.ndarray):
    if array.dtype.hasobject:
        raise NotFingerprintable("holds an array of Python objects")
    contiguous = np.ascontiguousarray(array)
    return (tag, contiguous.dtype.str, tuple(contiguous.shape),
            hashlib.sha256(contiguous.tobytes()).hexdigest())


def _canon_mapping(mapping, stack: tuple):
    if not mapping:
        return ("mapping",)
    return ("mapping",) + tuple(sorted(((str(k), _canon(v, stack)) for k, v in mapping.items()),
                                       key=repr))


def _code_canon(code: types.CodeType, stack: tuple):
    # Line numbers and the file name are left out: moving a function does not change it.
    return ("code", code.co_code.hex(), code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags, code.co_names, code.co_varnames,
            code.co_freevars, code.co_cellvars,
            tuple(_canon(c, stack) for c in code.co_consts))


def _global_names(code: types.CodeType) -> set[str]:
    """Names the code (and code nested in it) may look up as globals or builtins."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_MISSING = object()


def _function_canon(fn: types.FunctionType, stack: tuple):
    def part(what: str, value):
        try:
            return _canon(value, stack)
        except NotFingerprintable as e:
            raise NotFingerprintable(f"{_describe(fn)}: {what} {e}") from None

    closure = []
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later)
            closure.append(("empty-cell",))
            continue
        closure.append(part(f"closure value {name!r}", contents))
    referenced = []
    for name in sorted(_global_names(fn.__code__)):
        # co_names also holds attribute names (``jnp.tanh`` -> "tanh"); only names that
        # resolve in the function's globals or in builtins are values it can read.  Dunder
        # names (``f.__name__``, a module's ``__spec__``) are metadata, not numbers.
        if name.startswith("__") and name.endswith("__"):
            continue
        value = fn.__globals__.get(name, _MISSING)
        if value is _MISSING:
            value = vars(builtins).get(name, _MISSING)
        if value is not _MISSING:
            referenced.append((name, part(f"global {name!r}", value)))
    return ("function", _code_canon(fn.__code__, stack),
            part("default", fn.__defaults__ or ()),
            ("kwdefaults",) + tuple((k, part(f"default {k!r}", v))
                                    for k, v in sorted((fn.__kwdefaults__ or {}).items())),
            tuple(closure), tuple(referenced))


def _custom_derivative_canon(obj, stack: tuple):
    import jax

    if isinstance(obj, jax.custom_jvp):
        return ("custom_jvp", _canon(obj.fun, stack), _canon(obj.jvp, stack),
                _canon(tuple(obj.nondiff_argnums), stack))
    if isinstance(obj, jax.custom_vjp):
        return ("custom_vjp", _canon(obj.fun, stack), _canon(obj.fwd, stack),
                _canon(obj.bwd, stack), _canon(tuple(obj.nondiff_argnums), stack))
    return None


def _is_frozen_dataclass(obj) -> bool:
    params = getattr(type(obj), "__dataclass_params__", None)
    return not isinstance(obj, type) and bool(getattr(params, "frozen", False))


# Class attributes that hold no computation of the instance's (dataclass machinery, docs).
_CLASS_METADATA = frozenset({
    "__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
    "__le__", "__gt__", "__ge__", "__match_args__", "__dataclass_fields__",
    "__dataclass_params__", "__doc__", "__module__", "__dict__", "__weakref__", "__qualname__",
    "__annotations__", "__getstate__", "__setstate__", "__slots__", "__firstlineno__",
    "__static_attributes__", "__replace__", "__orig_bases__", "__parameters__",
    "__annotate_func__", "__annotations_cache__",
})


def _frozen_instance_canon(obj, stack: tuple):
    """A frozen dataclass instance (e.g. a callable with parameters): its class's methods,
    properties and constants, and the instance's state."""
    cls = type(obj)
    classes = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        name = _library_name(klass)
        if name is not None:
            classes.append(("library", name))
            continue
        members = []
        for attr, value in sorted(vars(klass).items()):
            if attr in _CLASS_METADATA:
                continue
            if isinstance(value, property):
                value = (value.fget, value.fset, value.fdel)
            elif isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            try:
                members.append((attr, _canon(value, stack)))
            except NotFingerprintable as e:
                raise NotFingerprintable(f"{_type_name(klass)}.{attr} {e}") from None
        classes.append((_class_key(klass), tuple(members)))
    state = vars(obj) if hasattr(obj, "__dict__") else {
        f: getattr(obj, f) for f in cls.__dataclass_fields__}
    try:
        state_canon = _canon_mapping(state, stack)
    except NotFingerprintable as e:
        raise NotFingerprintable(f"{_describe(obj)}: field {e}") from None
    return ("frozen-dataclass", tuple(classes), state_canon)


def _namedtuple_canon(obj, stack: tuple):
    """A namedtuple record: its class's name, field names and the methods and properties
    written in its class body (not the ones ``collections.namedtuple`` generates), and its
    values; so two record types that differ in field order or in a method differ here even
    with one name."""
    cls = type(obj)
    members = []
    for attr, value in sorted(vars(cls).items()):
        function = value.fget if isinstance(value, property) else getattr(value, "__func__",
                                                                            value)
        if (isinstance(function, types.FunctionType)
                and function.__module__ == cls.__module__):
            try:
                members.append((attr, _canon(function, stack)))
            except NotFingerprintable as e:
                raise NotFingerprintable(f"{_type_name(cls)}.{attr} {e}") from None
    return (("namedtuple", _class_key(cls), tuple(cls._fields), tuple(members))
            + tuple(_canon(x, stack) for x in obj))


def _is_jax_array(obj) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.Array)


def _trusted(module_name: str) -> bool:
    return module_name.split(".")[0] in TRUSTED_PACKAGES


def _library_name(obj) -> str | None:
    """``module:qualname`` if ``obj`` is importable under that name from a trusted package."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(obj, np.ufunc):
        module_name = module_name or "numpy"
    if not (isinstance(module_name, str) and isinstance(qualname, str)):
        return None
    if not _trusted(module_name) or "<" in qualname:  # "<lambda>", "<locals>"
        return None
    try:
        target = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception:
        return None
    return f"{module_name}:{qualname}" if target is obj else None


def _class_key(cls: type) -> str:
    """A class as it enters a fingerprint: its qualified name, not its module.  What the class
    computes is fingerprinted through its members; the module it lives in is where, not
    what (as file names and line numbers are left out of code), so moving a class, e.g.
    inside gradstudy's private modules, keeps every cache key built on it."""
    return getattr(cls, "__qualname__", cls.__name__)


def _type_name(cls: type) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _describe(obj) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return repr(name) if isinstance(name, str) else f"a {type(obj).__name__}"


def fingerprint_label(value: Any, fingerprint: str | None) -> str:
    """A registered name as is; a callable as ``name#`` and the start of its fingerprint."""
    if isinstance(value, str):
        return value
    name = getattr(value, "__name__", None) or type(value).__name__
    return f"{name}#{fingerprint[:10] if fingerprint else 'unfingerprintable'}"
