"""RHAPSODY's DragonHPC backend."""

from .backend import DragonExecutionBackend, DragonExecutionBackendV3
from .placement import gpu_policies, gpu_slots

__all__ = ["DragonExecutionBackend", "DragonExecutionBackendV3", "gpu_policies", "gpu_slots"]
