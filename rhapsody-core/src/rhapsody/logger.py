"""rhapsody-py's ``rhapsody.logger`` module: :func:`enable_logging`."""

from .compat.logging_setup import enable_logging

__all__ = ["enable_logging"]
