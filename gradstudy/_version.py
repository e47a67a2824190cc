"""The installed version of gradstudy, read from the package metadata (one source of truth:
``pyproject.toml``); importing it imports nothing else of gradstudy."""

from importlib import metadata

try:
    __version__ = metadata.version("gradstudy")
except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0.0.0+unknown"
