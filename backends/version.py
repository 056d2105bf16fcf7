"""The installed version, read from package metadata (single source: pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netjail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
