"""rhapsody-py's module path of the Dragon backend (provided by the rhapsody-dragon
distribution: importing this module without it raises an ImportError that says what to install)."""

from ..lookup import backend_class

DragonExecutionBackend = backend_class(
    "DragonExecutionBackend", "execution", __name__, importing=True
)
DragonExecutionBackendV3 = DragonExecutionBackend

__all__ = ["DragonExecutionBackend", "DragonExecutionBackendV3"]
