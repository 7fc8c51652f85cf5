"""A thread-safe inbox that delivers (task, event) pairs to the event loop in batches.

Worker threads push; one ``call_soon_threadsafe`` wakes the loop per batch instead of one per
event, which is what lets a backend run faster than ``loop.run_in_executor`` per task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any


class LoopInbox:
    """Collects items from any thread; ``handler(*item)`` runs for each on the loop thread."""

    __slots__ = ("_handler", "_items", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[..., Any]) -> None:
        self._loop = loop
        self._handler = handler
        self._items: deque[tuple[Any, ...]] = deque()
        self._scheduled = False

    def push(self, *item: Any) -> None:
        self._items.append(item)
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _drain(self) -> None:
        # Cleared before popping: an item pushed meanwhile schedules (at worst) one extra drain.
        self._scheduled = False
        pop, handler = self._items.popleft, self._handler
        while True:
            try:
                item = pop()
            except IndexError:
                return
            handler(*item)
