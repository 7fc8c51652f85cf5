"""rhapsody-py's name for :mod:`rhapsody.backends.inference`: the registered inference backends
by class name."""

from __future__ import annotations

from typing import Any

from ..lookup import backend_class, backend_class_names


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return backend_class(name, "inference", __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *backend_class_names("inference")})
