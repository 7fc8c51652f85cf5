"""Calling a task's function where it runs (a worker thread or a worker process).

One implementation for every backend. An ``async def`` function (or anything returning an
awaitable) runs to completion in an event loop owned by the calling thread (one per thread,
reused), never in the session's loop. A generator, or any other value, is the function's
result as it is: it is not mistaken for a coroutine.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_all_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


class _ThreadLoop(threading.local):
    loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        if self.loop is None or self.loop.is_closed():
            self.loop = asyncio.new_event_loop()
            _all_loops.add(self.loop)
        return self.loop

    def __del__(self) -> None:  # a thread-local ends with its thread: close that thread's loop
        if self.loop is not None and not self.loop.is_closed():
            self.loop.close()


_thread_loop = _ThreadLoop()


@atexit.register
def _close_loops() -> None:
    # Daemon worker threads never run their thread-local destructors: close their loops while
    # the interpreter is still whole, instead of from a half-finalised __del__.
    for loop in list(_all_loops):
        if not loop.is_closed() and not loop.is_running():
            loop.close()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def call_function(
    function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Call ``function``; an awaitable it returns is awaited in this thread's own loop."""
    result = function(*args, **kwargs)
    if inspect.isawaitable(result):
        coro = result if inspect.iscoroutine(result) else _awaited(result)
        result = _thread_loop.get().run_until_complete(coro)
    return result
