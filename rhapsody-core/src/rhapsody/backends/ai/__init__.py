"""rhapsody-py's name for :mod:`rhapsody.backends.inference`: the registered inference backends
by class name (the same lookup)."""

from __future__ import annotations

from ..inference import __dir__ as __dir__
from ..inference import __getattr__ as __getattr__

__all__: list[str] = []  # names come from the registry, on first access
