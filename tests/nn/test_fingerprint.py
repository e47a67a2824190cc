"""Fingerprints do not depend on where a class lives (a move inside the package keeps the
cache keys), but do depend on what it computes."""

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
