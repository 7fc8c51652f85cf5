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

    ``width``: how many values every ``push`` gives, where that is fixed (``push(task, state)``:
    2). The values are then queued as they are, not as one tuple per item: thousands of items
    waiting for the loop as tuples outlive young collections, and the cyclic garbage collector
    then walks, promotes and at last fully collects them (measured on 100k no-op functions:
    a quarter of the session's CPU, none left with ``width=2``). Without ``width``, pushes of
    any arity are accepted, each queued as a tuple.
    """

    __slots__ = ("_handler", "_items", "_loop", "_on_error", "_scheduled", "_width")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Callable[..., Any],
        on_error: OnError | None = None,
        *,
        width: int | None = None,
    ) -> None:
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width < 1
        ):
            raise ValueError(f"LoopInbox: width: expected an integer >= 1 or None, got {width!r}")
        self._loop = loop
        self._handler = handler
        self._on_error = on_error
        self._items: deque[Any] = deque()
        self._scheduled = False
        self._width = width

    def push(self, *item: Any) -> None:
        width = self._width
        if width is None:
            self._items.append(item)
        elif len(item) == width:
            # one extend: atomic under the GIL (and under the deque's lock without it), so the
            # values of two threads' items never interleave
            self._items.extend(item)
        else:
            raise TypeError(
                f"LoopInbox.push: expected {width} values (the inbox's width), got {len(item)}"
            )
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _drain(self) -> None:
        # Cleared before popping: an item pushed meanwhile schedules (at worst) one extra drain.
        self._scheduled = False
        pop, handler, width = self._items.popleft, self._handler, self._width
        # Only this thread pops, and pushes add whole items: an item's first value is followed
        # by the rest of it.
        rest = range((width or 1) - 1)
        while True:
            try:
                first = pop()
            except IndexError:
                return
            if width is None:
                item = first
            elif width == 2:
                item = (first, pop())
            else:
                item = (first, *[pop() for _ in rest])
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
