"""RHAPSODY's Dask distributed backend."""

from .backend import DaskExecutionBackend

__all__ = ["DaskExecutionBackend"]
