"""Every registered backend class by name (``from rhapsody.backends import X``).

Classes are looked up in the plugin registry on first access, so third-party backends appear here
exactly like the built-in ones. :mod:`rhapsody.backends.execution` and
:mod:`rhapsody.backends.inference` expose the backends of one kind. The names rhapsody-py code
imports from here (``BaseBackend``, ``BackendRegistry``, ``TasksMainStates``...) are here too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Backend, ExecutionBackend, InferenceBackend
    from .lookup import BackendNotFoundError, BackendNotInstalledError

# Imported on first use: discovery imports this package (the concurrent plugin lives in it) and
# must not import the task API; then rhapsody-py's names.
_LAZY = {
    "Backend": ".base",
    "ExecutionBackend": ".base",
    "InferenceBackend": ".base",
    "BackendNotFoundError": ".lookup",
    "BackendNotInstalledError": ".lookup",
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
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        if module.startswith(".") and not module.startswith(".."):
            globals()[name] = value  # our own names: looked up once
        return value
    from .lookup import backend_class, is_submodule

    if is_submodule(__name__, name):  # `from rhapsody.backends import where`: not a backend
        raise AttributeError(name)
    return backend_class(name, None, __name__)


def __dir__() -> list[str]:
    from .lookup import backend_class_names

    return sorted({*globals(), *_LAZY, *backend_class_names(None)})
