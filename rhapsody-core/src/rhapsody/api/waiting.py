"""How ``Session.wait_tasks`` waits for tasks to end, at a cost close to nothing per task.

A few tasks: a countdown over their futures (one done-callback each). Many: no callback per
task at all -- a callback is a ``call_soon`` and a handle per task, a few percent of a no-op
task's whole cost. The wait walks its tasks in order instead, past those that ended, and is
walked on again once per event-loop step in which any task of the session ended (the session
tells :meth:`TaskWaits.ended` from its state machine, the only place a task's state becomes
terminal). Tasks end roughly in the order they were submitted, so each task is looked at about
once; a straggler is looked at once per step until it ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .states import TERMINAL_STATES

if TYPE_CHECKING:
    from .task import BaseTask

#: From this many tasks on, a wait walks its tasks instead of counting callbacks down.
MANY = 64


class _Walk:
    """One wait over many tasks: how far every task has ended, and the future to resolve."""

    __slots__ = ("done", "next", "tasks")

    def __init__(self, tasks: list[BaseTask], done: asyncio.Future[None]) -> None:
        self.tasks, self.next, self.done = tasks, 0, done

    def advance(self) -> None:
        tasks, i, n = self.tasks, self.next, len(self.tasks)
        while i < n and tasks[i].state in TERMINAL_STATES:
            i += 1
        self.next = i
        if i == n and not self.done.done():
            self.done.set_result(None)


class TaskWaits:
    """The waits of one session that walk their tasks (see the module's doc)."""

    __slots__ = ("_scheduled", "open")

    def __init__(self) -> None:
        self.open: list[_Walk] = []  # the session looks at it on every task's end
        self._scheduled = False

    def ended(self, loop: asyncio.AbstractEventLoop) -> None:
        """A task ended (called by the session's state machine while :attr:`open`)."""
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._advance)

    def _advance(self) -> None:
        self._scheduled = False
        for walk in tuple(self.open):
            walk.advance()

    async def wait(self, tasks: list[BaseTask], timeout: float | None) -> bool:
        """Wait until every one of ``tasks`` ended; False if ``timeout`` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if len(tasks) < MANY:
            futures = [f for t in tasks if (f := t.future) is not None]
            if not await _all_done(futures, timeout):
                return False
            # A future canceled from outside (asyncio.wait_for(task, ...) timing out) is done
            # while its task still runs: those are waited for below.
            tasks = [t for t in tasks if not t.done]
            if not tasks:
                return True
        walk = _Walk(tasks, loop.create_future())
        walk.advance()
        if walk.done.done():
            return True
        self.open.append(walk)
        try:
            async with asyncio.timeout_at(deadline):
                await walk.done
            return True
        except TimeoutError:
            return False
        finally:
            self.open.remove(walk)
            if not walk.done.done():
                walk.done.cancel()


async def _all_done(futures: list[asyncio.Future[Any]], timeout: float | None) -> bool:
    """Wait until every one of ``futures`` is done; False if ``timeout`` seconds pass first.

    One countdown, not ``asyncio.wait``: that checks every future for being a coroutine (an ABC
    isinstance, ~2 µs each) and builds sets, which cost more than the rest of waiting.
    """
    if not futures:
        return True
    loop = asyncio.get_running_loop()
    all_done: asyncio.Future[None] = loop.create_future()
    remaining = len(futures)

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    for future in futures:
        future.add_done_callback(one_done)
    try:
        async with asyncio.timeout(timeout):
            await all_done
        return True
    except TimeoutError:
        return False
    finally:
        if remaining:  # timed out or canceled (which cancels all_done too): no callback left
            all_done.cancel()
            for future in futures:
                future.remove_done_callback(one_done)
