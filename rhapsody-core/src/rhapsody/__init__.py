"""RHAPSODY: one asyncio Session for executables, Python functions and LLM inference, on any
backend that registers through the ``rhapsody`` entry-point group."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .plugins.manager import get_plugin_host
from .plugins.registry import BackendInfo

try:
    __version__ = version("rhapsody-core")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"


def discover_backends() -> dict[str, BackendInfo]:
    """Every discovered backend by name (``"concurrent"``, ``"dask"``...).

    Plugins that failed to load appear too, under their entry-point name, with
    ``available=False`` and the ``reason``. A :class:`BackendInfo` is truthy when available.
    """
    return get_plugin_host().backends()


def get_backend(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Construct the backend registered as ``name``; ``await`` the result to initialise it.

    Other arguments go to the backend's constructor (``get_backend("concurrent", name="cpu")``).
    """
    info = discover_backends().get(name)
    if info is None:
        known = sorted(k for k, v in discover_backends().items() if v)
        raise ValueError(f"get_backend: no backend named {name!r}; available: {known}")
    if not info.available or info.cls is None:
        raise ImportError(f"backend {name!r} is unavailable: {info.reason}")
    return info.cls(*args, **kwargs)


__all__ = ["BackendInfo", "__version__", "discover_backends", "get_backend"]
