"""Every request this process makes to Dragon's global services goes through here, one at a time.

Global-services requests issued from two threads at once can deadlock (seen at shutdown: a
``kill`` blocked in its queue ``put`` while the reaper sat in ``multi_join`` on the same channel,
forever). So the backend's threads (launchers, dispatcher, reaper, reader, shutdown) hold
:data:`GS_LOCK` around each request, and no request waits inside the lock for long: the reaper
polls exits without waiting and sleeps outside it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

GS_LOCK = threading.RLock()


def start_process(process: Any) -> tuple[int, Any]:
    """``process.start()``; its ``(puid, host id)``."""
    with GS_LOCK:
        process.start()
        return process.puid, process._descr.h_uid


def kill_process(puid: int) -> None:
    """SIGKILL Dragon process ``puid`` wherever it runs (gone already: nothing happens)."""
    from dragon.globalservices.process import kill

    with GS_LOCK, contextlib.suppress(Exception):
        kill(puid, sig=signal.SIGKILL, hide_stderr=True)


def exited(puids: list[int]) -> list[tuple[int, int | None]]:
    """Which of ``puids`` exited, with their exit codes; never waits."""
    from dragon.globalservices.process import ProcessError, multi_join, query

    with GS_LOCK:
        try:
            found, _ = multi_join(puids, timeout=0)
            return [(int(p), c) for p, c in found or ()]
        except Exception:  # noqa: BLE001 - one unknown process spoils the list: ask one by one
            gone: list[tuple[int, int | None]] = []
            for puid in puids:
                try:
                    descriptor = query(puid)
                except ProcessError:
                    gone.append((puid, None))
                    continue
                if descriptor.state != descriptor.State.ACTIVE:
                    gone.append((puid, descriptor.ecode))
            return gone


def new_queue(maxsize: int) -> Any:
    from dragon.native.queue import Queue

    with GS_LOCK:
        return Queue(maxsize=maxsize)


def destroy_queue(queue: Any) -> None:
    with GS_LOCK, contextlib.suppress(Exception):
        queue.destroy()
