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

_POLL = 0.05  # seconds between two looks while a task's own process is watched
# ... and while only long-lived processes (pool workers) are: each look costs Dragon's global
# services ~7 ms of CPU (measured: polling every 50 ms kept a third of a core busy in an idle
# session), and a worker dying is rare.
_POLL_LONG_LIVED = 1.0


class Reaper:
    def __init__(self) -> None:
        self._exits: list[tuple[int, int | None]] = []
        self._watched: set[int] = set()
        self._long_lived: set[int] = set()  # watched, and expected to run for long
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="rhapsody-dragon-reaper", daemon=True
        )
        self._thread.start()

    def watch(self, puids: list[int], long_lived: bool = False) -> None:
        """Report the exits of ``puids``; ``long_lived`` ones (pool workers) are looked at
        less often when nothing else is watched."""
        with self._cond:
            # Woken only to start polling at the short interval: once it polls there, a look
            # per start would be a global-services round trip per task, each holding the lock
            # the launchers need to start the next process (halving their rate, measured).
            was_short = len(self._watched) > len(self._long_lived)
            self._watched.update(puids)
            if long_lived:
                self._long_lived.update(puids)
            if not was_short:
                self._cond.notify()

    def take(self) -> list[tuple[int, int | None]]:
        """The exits seen since the last call: ``[(puid, exit code), ...]``."""
        with self._cond:
            exits, self._exits = self._exits, []
        return exits

    def forget(self, puid: int) -> None:
        with self._cond:
            self._watched.discard(puid)
            self._long_lived.discard(puid)

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
                    gone = [puid for puid, _ in found]
                    self._watched.difference_update(gone)
                    self._long_lived.difference_update(gone)
                    self._exits.extend(found)
                if not self._stopping:
                    # watch() wakes this wait: a task's process started meanwhile is polled
                    # for at the short interval from then on
                    short = len(self._watched) > len(self._long_lived)
                    self._cond.wait(_POLL if short else _POLL_LONG_LIVED)
