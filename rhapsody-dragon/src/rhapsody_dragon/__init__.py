"""RHAPSODY's DragonHPC backend (its names are imported on first use: ``rhapsody_dragon``
alone, as the plugin's discovery imports it, does not import Dragon)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import DragonExecutionBackend, DragonExecutionBackendV3
    from .placement import gpu_policies, gpu_slots

__all__ = ["DragonExecutionBackend", "DragonExecutionBackendV3", "gpu_policies", "gpu_slots"]

_WHERE = {
    "DragonExecutionBackend": ".backend",
    "DragonExecutionBackendV3": ".backend",
    "gpu_policies": ".placement",
    "gpu_slots": ".placement",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rhapsody_dragon' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
