"""rhapsody-py's module path of the Dask backend (provided by the rhapsody-dask distribution:
importing this module without it raises an ImportError that says what to install)."""

from ..lookup import backend_class

DaskExecutionBackend = backend_class("DaskExecutionBackend", "execution", __name__, importing=True)

__all__ = ["DaskExecutionBackend"]
