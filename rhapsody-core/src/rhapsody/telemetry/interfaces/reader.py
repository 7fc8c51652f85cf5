"""Pull: metrics and spans (rhapsody-py's ``TelemetryReader``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..manager import TelemetryManager


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
