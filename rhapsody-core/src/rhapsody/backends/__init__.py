"""Every registered backend class by name (``from rhapsody.backends import X``).

Classes are looked up in the plugin registry on first access, so third-party backends appear here
exactly like the built-in ones. :mod:`rhapsody.backends.execution` and
:mod:`rhapsody.backends.inference` expose the backends of one kind. The names rhapsody-py code
imports from here (``BaseBackend``, ``BackendRegistry``, ``TasksMainStates``...) are here too.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend, ExecutionBackend, InferenceBackend
from .lookup import (
    BackendNotFoundError,
    BackendNotInstalledError,
    backend_class,
    backend_class_names,
    is_submodule,
)

# rhapsody-py's names, imported on first use.
_COMPAT = {
    "BaseBackend": "..compat.legacy_backend",
    "BackendRegistry": "..compat.registry",
    "TasksMainStates": "..compat.states",
    "BackendMainStates": "..compat.states",
    "StateMapper": "..compat.states",
    "Session": "..api",
    "discover_backends": "..",
    "get_backend": "..",
}

__all__ = [
    "Backend",
    "BackendNotFoundError",
    "BackendNotInstalledError",
    "ExecutionBackend",
    "InferenceBackend",
]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    module = _COMPAT.get(name)
    if module is not None:
        return getattr(importlib.import_module(module, __name__), name)
    if is_submodule(__name__, name):  # `from rhapsody.backends import where`: not a backend
        raise AttributeError(name)
    return backend_class(name, None, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *_COMPAT, *backend_class_names(None)})
