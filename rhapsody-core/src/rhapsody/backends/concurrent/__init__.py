"""The embedded default backend: thread/process pools and subprocesses, nothing else to install."""

from typing import TYPE_CHECKING

from ...plugins.lazy_names import lazy_names

if TYPE_CHECKING:
    from .backend import ConcurrentExecutionBackend

# Imported on first use: discovery imports this package's plugin module.
__getattr__ = lazy_names(__name__, {"ConcurrentExecutionBackend": ".backend"})

__all__ = ["ConcurrentExecutionBackend"]
