"""Shared pytest configuration: markers, and gradstudy's default XLA flags.

``import gradstudy`` leaves ``XLA_FLAGS`` alone; the test suite sets the same defaults as
the ``gradstudy`` command (CPU: ``--xla_backend_optimization_level=1``, 2-4x faster
compiles), here, before any test module starts JAX's backend.
"""

from gradstudy._xla import default_xla_flags

default_xla_flags()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long end-to-end runs (full smoke reproduction); -m 'not slow' skips")
