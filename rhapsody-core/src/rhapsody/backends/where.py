"""Where a task ran, as backends record it on ``task.host`` and ``task.worker``."""

from __future__ import annotations

import os
import socket
import threading

HOST: str = socket.gethostname()


_thread_labels: dict[int, str] = {}


def this_thread() -> str:
    """``"thread rhapsody-concurrent_3"``: the pool thread running the caller (cached per
    thread: it is read once per task)."""
    ident = threading.get_ident()
    label = _thread_labels.get(ident)
    if label is None:
        label = _thread_labels[ident] = f"thread {threading.current_thread().name}"
    return label


def process(pid: int | None = None) -> str:
    """``"pid 4242"``: a process (this one by default)."""
    return f"pid {os.getpid() if pid is None else pid}"
