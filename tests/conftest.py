"""Shared pytest configuration: markers."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long end-to-end runs (full smoke reproduction); -m 'not slow' skips")
