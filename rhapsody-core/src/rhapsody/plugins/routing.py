"""The built-in routing rule: a task without ``backend=`` goes to the first compatible backend.

It is registered as a plugin with ``trylast``, so any routing plugin is asked first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .markers import hookimpl

if TYPE_CHECKING:
    from ..backends.base import Backend


@hookimpl(trylast=True)
def rhapsody_route_task(backends: Sequence[Backend]) -> str | None:
    """First registered backend that accepts the task."""
    return backends[0].name if backends else None
