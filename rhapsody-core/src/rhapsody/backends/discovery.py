"""rhapsody-py's ``rhapsody.backends.discovery``: the registry and the factory functions."""

from .. import discover_backends, get_backend
from ..compat.registry import BackendRegistry

__all__ = ["BackendRegistry", "discover_backends", "get_backend"]
