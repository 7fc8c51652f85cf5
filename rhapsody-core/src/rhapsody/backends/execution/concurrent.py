"""rhapsody-py's module path of the concurrent backend."""

from ..concurrent.backend import ConcurrentExecutionBackend

__all__ = ["ConcurrentExecutionBackend"]
