"""A thread-safe inbox that delivers (task, event) pairs to the event loop in batches.

Worker threads push; one ``call_soon_threadsafe`` wakes the loop per batch instead of one per
event, which is what lets a backend run faster than ``loop.run_in_executor`` per task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..api.errors import BackendError, task_label
from ..api.states import TaskState

log = logging.getLogger(__name__)

OnError = Callable[[Any, BaseException], Any]


class LoopInbox:
    """Collects items from any thread; ``handler(*item)`` runs for each on the loop thread.

    An item whose handler raises is passed, with the error, to ``on_error(item[0], error)``
    (see :func:`failing_with`), then the next items are handled: one failure must not strand
    the items behind it, whose callers wait for them.
    """

    __slots__ = ("_handler", "_items", "_loop", "_on_error", "_scheduled")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Callable[..., Any],
        on_error: OnError | None = None,
    ) -> None:
        self._loop = loop
        self._handler = handler
        self._on_error = on_error
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
            try:
                handler(*item)
            except Exception as exc:  # noqa: BLE001 - reported, and the next items still handled
                self._failed(item, exc)

    def _failed(self, item: tuple[Any, ...], exc: Exception) -> None:
        log.error("handling %r failed", item[:1], exc_info=exc)
        if self._on_error is not None and item:
            try:
                self._on_error(item[0], exc)
            except Exception:
                log.exception("handling the failure of %r failed too", item[:1])


def failing_with(report: Callable[[Any, TaskState], Any]) -> OnError:
    """An ``on_error`` for inboxes whose items start with a task: a task whose completion
    raised in the backend ends FAILED (through ``report``) instead of never ending."""

    def fail(task: Any, exc: BaseException) -> None:
        if getattr(task, "done", True):
            return
        task.exception = BackendError(
            f"{task_label(task.uid)}: the backend failed while completing it: "
            f"{type(exc).__name__}: {exc}"
        )
        report(task, TaskState.FAILED)

    return fail
