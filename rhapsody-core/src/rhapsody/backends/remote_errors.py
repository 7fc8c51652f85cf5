"""Shipping a task's exception, with its traceback, from a worker back to the session.

One implementation for every backend that runs functions elsewhere (process pools, Dask, Dragon):
the exception is pickled with its traceback (tblib), so ``raise task.exception`` shows where it
happened in the worker. An exception that cannot be pickled arrives as a
:class:`RemoteTaskError` carrying its type name, message and traceback text.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
from tblib import pickling_support  # type: ignore[import-untyped]

from ..api.errors import RemoteTaskError

__all__ = [
    "RemoteTaskError",
    "dump_exception",
    "format_traceback",
    "load_exception",
    "portable_exception",
]


def format_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc``, as Python prints it."""
    return "".join(traceback.format_exception(exc))


def portable_exception(
    exc: BaseException, dumps: Callable[[Any], bytes] = pickle.dumps
) -> tuple[BaseException, str]:
    """``(exception that pickles, traceback text)``: ``exc`` itself with its traceback made
    picklable (checked with ``dumps``, the transport's pickler), or a :class:`RemoteTaskError`
    standing in for it."""
    text = format_traceback(exc)
    try:
        pickling_support.install(exc)
        dumps(exc)
    except Exception:  # noqa: BLE001 - it does not pickle: send its text instead
        return RemoteTaskError(type(exc).__qualname__, str(exc), text), text
    return exc, text


def dump_exception(exc: BaseException) -> bytes:
    """``exc`` (see :func:`portable_exception`) as bytes for :func:`load_exception`."""
    portable, text = portable_exception(exc, cloudpickle.dumps)
    try:
        return bytes(cloudpickle.dumps(portable))
    except Exception:  # noqa: BLE001 - pickled once already; a second failure is a stand-in
        stand_in = RemoteTaskError(type(exc).__qualname__, str(exc), text)
        return bytes(cloudpickle.dumps(stand_in))


def load_exception(blob: bytes) -> BaseException:
    """The exception :func:`dump_exception` packed; a RemoteTaskError if it cannot be rebuilt."""
    try:
        exc = cloudpickle.loads(blob)
    except Exception as err:  # noqa: BLE001 - e.g. a class that cannot be imported here
        return RemoteTaskError("unknown", f"the task's exception could not be unpickled: {err}")
    if not isinstance(exc, BaseException):
        return RemoteTaskError(type(exc).__qualname__, repr(exc))
    return exc
