"""Where a task ran, as backends record it on ``task.host`` and ``task.worker``."""

from __future__ import annotations

import os
import socket
import threading

HOST: str = socket.gethostname()


_this_thread = threading.local()  # dies with its thread: a reused thread id gets a new label


def this_thread() -> str:
    """``"thread rhapsody-concurrent_3"``: the pool thread running the caller (kept per thread:
    it is read once per task)."""
    label: str | None = getattr(_this_thread, "label", None)
    if label is None:
        label = _this_thread.label = f"thread {threading.current_thread().name}"
    return label


def process(pid: int | None = None) -> str:
    """``"pid 4242"``: a process (this one by default)."""
    return f"pid {os.getpid() if pid is None else pid}"
