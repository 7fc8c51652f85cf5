"""Subscriber dispatch: events reach every subscriber in order, off the event loop.

Sync subscribers run on one dispatch thread (a slow one delays the others, never the tasks);
async subscribers are scheduled on the session's event loop. A subscriber that raises is
logged and skipped for that event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .events import BaseEvent
from .records import EventBuilder, split_records

log = logging.getLogger(__name__)


def is_async_callable(callback: Any) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


_Callback = tuple[Callable[[BaseEvent], Any], bool]


class SubscriberDispatch:
    def __init__(self, builder: EventBuilder, loop: asyncio.AbstractEventLoop) -> None:
        self.subscribers: list[Callable[[BaseEvent], Any]] = []
        # each subscriber with whether it is async (asked once, not per event)
        self._callbacks: list[_Callback] = []
        self._builder, self._loop = builder, loop
        self._queue: queue.SimpleQueue[
            tuple[list[Any], list[BaseEvent], _Callback | None] | None
        ] = queue.SimpleQueue()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._thread: threading.Thread | None = None

    def add(self, callback: Callable[[BaseEvent], Any], replay: Sequence[BaseEvent] = ()) -> None:
        """A new subscriber; ``replay``: events it gets first (the session's start)."""
        entry = (callback, is_async_callable(callback))
        if replay:
            self._queue.put(([], list(replay), entry))
        self.subscribers.append(callback)
        self._callbacks.append(entry)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="rhapsody-telemetry-subscribers", daemon=True
            )
            self._thread.start()

    def put(self, records: list[Any], events: list[BaseEvent] | None = None) -> None:
        """Records, flat (turned into events on the dispatch thread), then ready events."""
        self._queue.put((records, events or [], None))

    def _run(self) -> None:
        import time

        while True:
            item = self._queue.get()
            if item is None:
                return
            records, ready, only = item
            emit = time.time()
            events: list[BaseEvent] = []
            for record in split_records(records):
                try:
                    events.extend(self._builder.events(record, emit))
                except Exception:  # one odd record must not end the events of the rest
                    log.exception("telemetry could not make events of %r", record[:2])
            events.extend(ready)
            callbacks = [only] if only is not None else list(self._callbacks)
            for event in events:
                for callback, is_async in callbacks:
                    self._deliver(callback, is_async, event)

    def _deliver(
        self, callback: Callable[[BaseEvent], Any], is_async: bool, event: BaseEvent
    ) -> None:
        try:
            if is_async:
                fut = asyncio.run_coroutine_threadsafe(callback(event), self._loop)
                self._pending.add(fut)
                fut.add_done_callback(self._async_done)
            else:
                callback(event)
        except Exception:  # a subscriber's bug must not stop the others
            log.exception("telemetry subscriber %r raised on %s", callback, event.event_type)

    def _async_done(self, fut: concurrent.futures.Future[Any]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("telemetry subscriber raised: %r", fut.exception())

    def close(self, timeout: float) -> bool:
        """Deliver what is queued, then stop (blocking; ``timeout`` seconds at most)."""
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    async def wait_async(self, timeout: float) -> None:
        pending = [asyncio.wrap_future(f) for f in list(self._pending)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
