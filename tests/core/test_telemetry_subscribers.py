"""Telemetry's dispatch of events to subscribers, on its own thread."""

from __future__ import annotations

import asyncio
import logging

from rhapsody.telemetry.records import EventBuilder, TraceIds
from rhapsody.telemetry.subscribers import SubscriberDispatch


async def test_a_record_that_makes_no_event_does_not_end_the_events_after_it(caplog) -> None:
    caplog.set_level(logging.ERROR)
    seen: list[tuple[str, str | None]] = []
    dispatch = SubscriberDispatch(EventBuilder("s", TraceIds.new()), asyncio.get_running_loop())
    dispatch.add(lambda event: seen.append((event.event_type, event.task_id)))
    dispatch.put(
        [
            *("S", 0, "t.odd", "concurrent", "ComputeTask", "noop", 1.0),
            # an end with no end time: no event can be made of it
            *("E", 0, "DONE", None, 1.5, "host", "worker", None, None),
            *("S", 1, "t.next", "concurrent", "ComputeTask", "noop", 2.0),
        ]
    )
    assert await asyncio.to_thread(dispatch.close, 10)
    assert ("TaskCreated", "t.next") in seen and ("TaskCompleted", "t.odd") not in seen
    assert "could not make events" in caplog.text
