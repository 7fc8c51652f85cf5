"""Calling a task's function in a worker thread or a worker process.

``async def`` functions run in an event loop owned by the worker thread (one per thread, reused),
never in the session's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import pickle
import threading
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from .stdio import captured

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


def call(function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call ``function``; a coroutine it returns is run to completion in this thread's loop."""
    result = function(*args, **kwargs)
    if asyncio.iscoroutine(result):
        result = _thread_loop.get().run_until_complete(result)
    return result


def call_captured(
    function: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    capture: tuple[str, str] | None,
) -> Any:
    if capture is None:
        return call(function, args, kwargs)
    with captured(*capture):
        return call(function, args, kwargs)


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def call_pickled(payload: bytes, capture: tuple[str, str] | None) -> tuple[bool, Any, str | None]:
    """Process-pool entry point: ``(True, result, None)`` or ``(False, exception, traceback)``.

    The exception travels back only if it pickles; otherwise a RuntimeError carrying its text.
    """
    function, args, kwargs = cloudpickle.loads(payload)
    try:
        return True, call_captured(function, args, kwargs, capture), None
    except BaseException as exc:  # noqa: BLE001 - every failure is the task's result
        text = format_traceback(exc)
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            exc = RuntimeError(f"{type(exc).__qualname__}: {exc}")
        return False, exc, text
