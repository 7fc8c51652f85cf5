"""rhapsody-py's two thin wrappers over a :class:`TelemetryManager`: push and pull."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import BaseEvent
    from .manager import TelemetryManager


class TelemetrySubscriber:
    """``TelemetrySubscriber(manager).subscribe(callback)``: events pushed to ``callback``."""

    def __init__(self, manager: TelemetryManager) -> None:
        self._manager = manager

    def subscribe(self, callback: Callable[[BaseEvent], Any]) -> None:
        self._manager.subscribe(callback)


class TelemetryReader:
    """``TelemetryReader(manager)``: metrics and spans pulled, spans filtered by attribute."""

    def __init__(self, manager: TelemetryManager) -> None:
        self._manager = manager

    def read_metrics(self) -> Any:
        return self._manager.read_metrics()

    def read_traces(
        self, session_id: str | None = None, task_id: str | None = None
    ) -> tuple[Any, ...]:
        spans = self._manager.read_traces()
        if session_id is not None:
            spans = tuple(s for s in spans if s.attributes.get("session_id") == session_id)
        if task_id is not None:
            spans = tuple(s for s in spans if s.attributes.get("task_id") == task_id)
        return spans
