"""One thread that learns when Dragon processes exit, for everything the backend started.

It asks Dragon's global services about all watched processes at once (``multi_join``) and keeps
the exits for the reader thread, which takes them (:meth:`Reaper.take`) before draining the
result queue: whatever a process put there before it exited is then handled before its exit.
(Only the reader touches the result queue in this process: a Dragon queue used for put and get
by two threads of one process deadlocks.)
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_POLL = 0.05  # seconds a multi_join waits before newly watched processes are included


class Reaper:
    def __init__(self) -> None:
        self._exits: list[tuple[int, int | None]] = []
        self._watched: set[int] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="rhapsody-dragon-reaper", daemon=True
        )
        self._thread.start()

    def watch(self, puids: list[int]) -> None:
        with self._cond:
            self._watched.update(puids)
            self._cond.notify()

    def take(self) -> list[tuple[int, int | None]]:
        """The exits seen since the last call: ``[(puid, exit code), ...]``."""
        with self._cond:
            exits, self._exits = self._exits, []
        return exits

    def forget(self, puid: int) -> None:
        with self._cond:
            self._watched.discard(puid)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(10)

    def _run(self) -> None:
        from dragon.globalservices.process import multi_join

        while True:
            with self._cond:
                while not self._watched and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                puids = list(self._watched)
            try:
                exited, _ = multi_join(puids, timeout=_POLL)
            except Exception as exc:  # noqa: BLE001 - e.g. a process Dragon no longer knows
                exited = self._unknown(puids, exc)
            if not exited:
                continue
            with self._cond:
                self._watched.difference_update(puid for puid, _ in exited)
                self._exits.extend((int(p), c) for p, c in exited)

    def _unknown(self, puids: list[int], exc: Exception) -> list[tuple[int, int | None]]:
        """multi_join refuses the whole list when one process is unknown: find it alone."""
        from dragon.globalservices.process import ProcessError, query

        gone: list[tuple[int, int | None]] = []
        for puid in puids:
            try:
                descriptor = query(puid)
            except ProcessError:
                gone.append((puid, None))
                continue
            if descriptor.state != descriptor.State.ACTIVE:
                gone.append((puid, descriptor.ecode))
        if not gone:
            log.warning("dragon multi_join failed: %s", exc)
            self._cond.acquire()
            try:
                self._cond.wait(_POLL)
            finally:
                self._cond.release()
        return gone
