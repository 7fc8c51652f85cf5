"""RHAPSODY's DragonHPC backend (its names are imported on first use: ``rhapsody_dragon``
alone, as the plugin's discovery imports it, does not import Dragon)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rhapsody.plugins.lazy_names import lazy_names

if TYPE_CHECKING:
    from .backend import DragonExecutionBackend, DragonExecutionBackendV3
    from .placement import gpu_policies, gpu_slots

__all__ = ["DragonExecutionBackend", "DragonExecutionBackendV3", "gpu_policies", "gpu_slots"]

__getattr__ = lazy_names(
    __name__,
    {
        "DragonExecutionBackend": ".backend",
        "DragonExecutionBackendV3": ".backend",
        "gpu_policies": ".placement",
        "gpu_slots": ".placement",
    },
)
