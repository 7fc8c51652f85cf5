"""RHAPSODY's Dask distributed backend (imported on first use: ``rhapsody_dask`` alone, as the
plugin's discovery imports it, does not import Dask)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rhapsody.plugins.lazy_names import lazy_names

if TYPE_CHECKING:
    from .backend import DaskExecutionBackend

__all__ = ["DaskExecutionBackend"]


__getattr__ = lazy_names(__name__, {"DaskExecutionBackend": ".backend"})
