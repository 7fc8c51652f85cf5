"""The installed rhapsody-core's version (read on first use: importlib.metadata is slow)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

try:
    __version__ = _distribution_version("rhapsody-core")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

version: str = __version__
