"""Push: events to a callback (rhapsody-py's ``TelemetrySubscriber``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..events import BaseEvent
    from ..manager import TelemetryManager


class TelemetrySubscriber:
    """``TelemetrySubscriber(manager).subscribe(callback)``: events pushed to ``callback``."""

    def __init__(self, manager: TelemetryManager) -> None:
        self._manager = manager

    def subscribe(self, callback: Callable[[BaseEvent], Any]) -> None:
        self._manager.subscribe(callback)
