"""One thread that learns when Dragon processes exit, for everything the backend started.

It asks Dragon's global services about all watched processes at once, without waiting
(:func:`~rhapsody_dragon.global_services.exited`, under the one global-services lock), and keeps
the exits for the reader thread, which takes them (:meth:`Reaper.take`) before draining the
result queue: whatever a process put there before it exited is then handled before its exit.
(Only the reader touches the result queue in this process: a Dragon queue used for put and get
by two threads of one process deadlocks.)
"""

from __future__ import annotations

import logging
import threading

from .global_services import exited

log = logging.getLogger(__name__)

_POLL = 0.05  # seconds between two looks at the watched processes


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
        while True:
            with self._cond:
                while not self._watched and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                puids = list(self._watched)
            try:
                found = exited(puids)
            except Exception as exc:  # noqa: BLE001 - keep watching
                log.warning("dragon: could not ask which processes exited: %s", exc)
                found = []
            with self._cond:
                if found:
                    self._watched.difference_update(puid for puid, _ in found)
                    self._exits.extend(found)
                if not self._stopping:
                    self._cond.wait(_POLL)
