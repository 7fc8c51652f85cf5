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
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..api.task_fields import EMPTY_MAPPING

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


# Per result type: whether its values may be awaitable. inspect.isawaitable asks the Awaitable
# ABC (an isinstance through abc, ~1.5 µs) for every plain result; a type is asked once. A
# generator's awaitability is its own (a flag of its code), so generators are asked each time.
_MAY_AWAIT: dict[type, bool] = {types.GeneratorType: True}


def _awaitable(value: Any) -> bool:
    cls = type(value)
    may = _MAY_AWAIT.get(cls)
    if may is None:
        may = inspect.isawaitable(value) or hasattr(cls, "__await__")
        if len(_MAY_AWAIT) < 1000:
            _MAY_AWAIT[cls] = may
    return may and inspect.isawaitable(value)


def call_function(
    function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Call ``function``; an awaitable it returns is awaited in this thread's own loop."""
    # the usual empty kwargs are not unpacked: ``**`` of a mapping that is not a dict calls its
    # keys() in Python (~0.4 µs per task)
    if kwargs is EMPTY_MAPPING or not kwargs:
        result = function(*args)
    else:
        result = function(*args, **kwargs)
    if _awaitable(result):
        coro = result if inspect.iscoroutine(result) else _awaited(result)
        result = _thread_loop.get().run_until_complete(coro)
    return result
