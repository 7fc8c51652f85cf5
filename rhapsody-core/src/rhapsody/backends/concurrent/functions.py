"""Calling a task's function in a worker thread or a worker process of the concurrent backend.

The call itself (sync or ``async def``) and the exception's trip back from a worker process are
the shared implementations of :mod:`rhapsody.backends.function_calls` and
:mod:`rhapsody.backends.remote_errors`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from ..function_calls import call_function
from ..remote_errors import format_traceback, portable_exception
from .stdio import captured

__all__ = ["call_captured", "call_pickled", "format_traceback"]


def call_captured(
    function: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    capture: tuple[str, str] | None,
) -> Any:
    if capture is None:
        return call_function(function, args, kwargs)
    with captured(*capture):
        return call_function(function, args, kwargs)


# A worker's functions, unpickled once: a function defined in the user's script travels by value
# (cloudpickle), and rebuilding it costs a worker ~10 µs a call. Keyed by the pickle itself, so
# a function pickled again with other globals is another entry; bounded.
_FUNCTIONS: dict[bytes, Callable[..., Any]] = {}
_FUNCTIONS_KEPT = 64


def _function(blob: bytes) -> Callable[..., Any]:
    function = _FUNCTIONS.get(blob)
    if function is None:
        function = cloudpickle.loads(blob)
        if len(_FUNCTIONS) >= _FUNCTIONS_KEPT:
            _FUNCTIONS.clear()
        _FUNCTIONS[blob] = function
    return function


def call_pickled(
    function_blob: bytes, call_blob: bytes, capture: tuple[str, str] | None
) -> tuple[bool, Any, str | None, int]:
    """Process-pool entry point: ``(True, result, None, pid)`` or ``(False, exception,
    traceback, pid)``, ``pid`` being the worker process's.

    ``function_blob`` is the function's pickle (made once per batch of tasks by the parent),
    ``call_blob`` that of ``(args, kwargs)``. The exception travels back with its traceback (or
    as a RemoteTaskError if it does not pickle); a result that does not pickle fails the task
    with the pool's pickling error.
    """
    function = _function(function_blob)
    args, kwargs = cloudpickle.loads(call_blob)
    try:
        return True, call_captured(function, args, kwargs, capture), None, os.getpid()
    except BaseException as exc:  # noqa: BLE001 - every failure is the task's result
        portable, text = portable_exception(exc)
        return False, portable, text, os.getpid()
