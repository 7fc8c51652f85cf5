"""RHAPSODY's Dask distributed backend (imported on first use: ``rhapsody_dask`` alone, as the
plugin's discovery imports it, does not import Dask)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import DaskExecutionBackend

__all__ = ["DaskExecutionBackend"]


def __getattr__(name: str) -> Any:
    if name == "DaskExecutionBackend":
        from .backend import DaskExecutionBackend

        return DaskExecutionBackend
    raise AttributeError(f"module 'rhapsody_dask' has no attribute {name!r}")
