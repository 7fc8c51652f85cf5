"""RHAPSODY: one asyncio Session for executables, Python functions and LLM inference, on any
backend that registers through the ``rhapsody`` entry-point group.

The task API lives in :mod:`rhapsody.api`; its main names (``Session``, ``ComputeTask``,
``AITask``, the errors) are also reachable here, as in rhapsody-py, and imported on first use
so that ``import rhapsody`` stays cheap.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .plugins.lazy_names import lazy_exports

if TYPE_CHECKING:
    from .api import (
        AITask,
        BackendError,
        BaseTask,
        ComputeTask,
        ResourceError,
        RhapsodyError,
        Session,
        SessionError,
        TaskExecutionError,
        TaskValidationError,
    )
    from .compat.logging_setup import enable_logging
    from .compat.registry import BackendRegistry
    from .plugins.registry import BackendInfo

    __version__: str
    version: str  # rhapsody-py code reads rhapsody.version

_LAZY = {
    **dict.fromkeys(
        [
            "AITask",
            "BackendError",
            "BaseTask",
            "ComputeTask",
            "ResourceError",
            "RhapsodyError",
            "Session",
            "SessionError",
            "TaskCanceledError",
            "TaskExecutionError",
            "TaskState",
            "TaskTimeoutError",
            "TaskValidationError",
        ],
        ".api",
    ),
    "enable_logging": ".compat.logging_setup",
    "BackendRegistry": ".compat.registry",
    "BackendInfo": ".plugins.registry",
    "__version__": "._version",
    "version": "._version",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def discover_backends() -> dict[str, BackendInfo]:
    """Every discovered backend by name (``"concurrent"``, ``"dask"``...).

    Plugins that failed to load appear too, under their entry-point name, with
    ``available=False`` and the ``reason``. A :class:`BackendInfo` is truthy when available.
    """
    from .plugins.manager import get_plugin_host

    registry = sys.modules.get(f"{__name__}.compat.registry")  # pending only if imported
    if registry is not None:
        registry.BackendRegistry._resolve_pending()
    return get_plugin_host().backends()


def get_backend(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Construct the backend registered as ``name``; ``await`` the result to initialise it.

    Other arguments go to the backend's constructor (``get_backend("concurrent", name="cpu")``).
    A first-party backend whose distribution is not installed raises an ``ImportError`` that
    says what to install; an unknown name raises ``ValueError``.
    """
    from .backends.lookup import missing_backend_error
    from .compat.registry import BackendRegistry
    from .plugins.manager import get_plugin_host

    BackendRegistry._resolve_pending(name)
    info = get_plugin_host().find(name)
    if info is None or not info.available:
        raise missing_backend_error(name)
    return info.backend_class()(*args, **kwargs)


__all__ = [
    "AITask",
    "BackendError",
    "BackendInfo",
    "BackendRegistry",
    "BaseTask",
    "ComputeTask",
    "ResourceError",
    "RhapsodyError",
    "Session",
    "SessionError",
    "TaskExecutionError",
    "TaskValidationError",
    "__version__",
    "discover_backends",
    "enable_logging",
    "get_backend",
    "version",
]
