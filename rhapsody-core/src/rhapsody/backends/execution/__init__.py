"""The registered execution backends by class name (looked up in the plugin registry)."""

from __future__ import annotations

from typing import Any

from ..lookup import backend_class, backend_class_names, is_submodule


def __getattr__(name: str) -> Any:
    if name.startswith("__") or is_submodule(__name__, name):
        raise AttributeError(name)
    return backend_class(name, "execution", __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *backend_class_names("execution")})
