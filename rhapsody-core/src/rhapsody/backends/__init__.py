"""Every registered backend class by name (``from rhapsody.backends import X``).

Classes are looked up in the plugin registry on first access, so third-party backends appear here
exactly like the built-in ones. :mod:`rhapsody.backends.execution` and
:mod:`rhapsody.backends.inference` expose the backends of one kind.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, ExecutionBackend, InferenceBackend
from .lookup import BackendNotInstalledError, backend_class, backend_class_names

__all__ = ["Backend", "BackendNotInstalledError", "ExecutionBackend", "InferenceBackend"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return backend_class(name, None, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *backend_class_names(None)})
