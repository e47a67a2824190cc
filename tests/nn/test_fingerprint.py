"""Fingerprints do not depend on where a class lives (a move inside the package keeps the
cache keys), but do depend on what it computes."""

import collections
import dataclasses

import jax.numpy as jnp

from gradstudy.nn import LeakyReLU, fingerprint


def _scaled_tanh_class(module: str, factor: float):
    @dataclasses.dataclass(frozen=True)
    class ScaledTanh:
        scale: float = 1.0

        def __call__(self, x):
            return self.scale * jnp.tanh(factor * x)

    ScaledTanh.__module__ = module
    return ScaledTanh


def test_a_class_moved_to_another_module_keeps_its_fingerprint():
    here = _scaled_tanh_class("gradstudy.activations", 2.0)(scale=1.5)
    moved = _scaled_tanh_class("gradstudy.nn._activations", 2.0)(scale=1.5)
    assert fingerprint(here) is not None
    assert fingerprint(here) == fingerprint(moved)


def test_what_the_class_computes_changes_its_fingerprint():
    base = fingerprint(_scaled_tanh_class("m", 2.0)(scale=1.5))
    assert fingerprint(_scaled_tanh_class("m", 3.0)(scale=1.5)) != base  # closure value
    assert fingerprint(_scaled_tanh_class("m", 2.0)(scale=1.0)) != base  # field
    assert fingerprint(LeakyReLU(0.01)) != fingerprint(LeakyReLU(0.2))


def _record_type(module: str, fields: str, method_scale: float = 1.0):
    base = collections.namedtuple("P", fields)

    class P(base):
        __slots__ = ()

        def scaled(self, x):
            return method_scale * self[0] * x

    P.__module__ = module
    P.scaled.__module__ = module
    return P


def test_namedtuple_records_differ_in_field_order_and_methods_not_in_module():
    def closure(p):
        return lambda x: p.slope * jnp.tanh(x) + p.offset

    a = _record_type("user.a", "slope offset")(1.0, 2.0)
    b = _record_type("user.b", "offset slope")(1.0, 2.0)  # same values, fields swapped
    assert float(closure(a)(0.5)) != float(closure(b)(0.5))
    assert fingerprint(closure(a)) != fingerprint(closure(b))
    moved = _record_type("user.elsewhere", "slope offset")(1.0, 2.0)
    assert fingerprint(closure(moved)) == fingerprint(closure(a))
    other_method = _record_type("user.a", "slope offset", method_scale=3.0)(1.0, 2.0)
    assert fingerprint(other_method) != fingerprint(a)
