"""A last line of defence at interpreter exit: backends stop the processes they still own.

A workflow interrupted before its session closed (Ctrl-C outside ``async with``, an exception
that skipped ``close()``) would otherwise leave executables and pool workers running, and
``concurrent.futures`` would keep the interpreter waiting for them. Hooks registered here run
when the interpreter starts shutting down, before ``concurrent.futures`` joins its workers.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

_hooks: list[weakref.WeakMethod[Callable[[], None]]] = []
_lock = threading.Lock()
_installed = False


def stop_at_exit(method: Callable[[], None]) -> None:
    """Call bound method ``method`` at interpreter exit, unless its object is gone by then."""
    global _installed
    with _lock:
        _hooks[:] = [h for h in _hooks if h() is not None]
        _hooks.append(weakref.WeakMethod(method))
        if _installed:
            return
        _installed = True
    try:
        # Runs before the atexit handlers and in reverse order of registration: before
        # concurrent.futures' own hook (registered when it was imported) joins its workers.
        threading._register_atexit(_run_hooks)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        atexit.register(_run_hooks)


def _run_hooks() -> None:
    with _lock:
        hooks = list(_hooks)
        _hooks.clear()
    for ref in hooks:
        method = ref()
        if method is None:
            continue
        try:
            method()
        except Exception:
            log.exception("a rhapsody exit hook failed")
