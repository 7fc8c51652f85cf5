"""The ids of one session's trace, computed from task sequence numbers.

Span and event ids follow from a task's sequence number, so that the checkpoint writer process,
the subscribers and the OpenTelemetry spans built later agree on them without passing them
around. A module of its own: the writer process imports it and little else.
"""

from __future__ import annotations

import os

import attrs

_U64 = (1 << 64) - 1


@attrs.frozen
class TraceIds:
    """The ids of one session's trace: its trace id, the session span, task spans and events."""

    trace_id: int
    session_span_id: int
    span_base: int
    event_prefix: str  # 16 hex digits

    @classmethod
    def new(cls) -> TraceIds:
        raw = int.from_bytes(os.urandom(32), "big")
        return cls(
            trace_id=(raw >> 128) or 1,
            session_span_id=((raw >> 64) & _U64) or 1,
            span_base=raw & _U64,
            event_prefix=os.urandom(8).hex(),
        )

    def task_span_id(self, seq: int) -> int:
        span = (self.span_base + seq + 1) & _U64
        return span if span and span != self.session_span_id else (span ^ 0x5A5A) or 1

    def task_event_id(self, seq: int, kind: int) -> str:
        return f"{self.event_prefix}{(seq << 3 | kind) & _U64:016x}"

    def other_event_id(self, n: int) -> str:
        return f"{self.event_prefix}{(1 << 63 | n) & _U64:016x}"

    def as_tuple(self) -> tuple[int, int, int, str]:
        return (self.trace_id, self.session_span_id, self.span_base, self.event_prefix)
