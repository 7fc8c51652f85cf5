"""The checkpoint file, written by one writer process or, with cores to spare, by several.

One writer process formats a task's six lines in ~7 µs on the development machine and ~18 µs on
a 16-core node, where a session with telemetry off runs a no-op task every ~8 µs: there the
writer, not the session, set the pace (with the writer replaced by ``cat > /dev/null`` the run
went from 0.49-0.65x to 0.84x of telemetry off). With several writers each takes every N-th task
by its sequence number (so a task's lines stay in order) and appends whole lines to the same
file (``O_APPEND``). The first one also takes everything that is not a task's -- session and
resource events, metric snapshots, which carry the session's totals since it sees only its share
-- and is closed last, after the others finished: the session's end is the file's last lines,
as with one writer.

``RHAPSODY_TELEMETRY_WRITERS`` sets the number; by default one per three cores beyond two, at
most four (one on this 2-core machine, where a second writer would take the session's core).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from collections.abc import Callable, Mapping
from typing import Any

from .writer_pipe import CheckpointWriter

WRITERS_ENV = "RHAPSODY_TELEMETRY_WRITERS"
_MOST = 64  # what the variable may ask for
_MOST_BY_DEFAULT = 4

# submitted, started, completed, failed, canceled, ended, run seconds: a "K" record's fields
Totals = tuple[int, int, int, int, int, int, float]


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def writer_count(environ: Mapping[str, str] = os.environ) -> int:
    """How many writer processes a session's checkpoint file gets."""
    text = environ.get(WRITERS_ENV, "").strip()
    if text:
        try:
            count = int(text)
        except ValueError:
            count = 0
        if not 1 <= count <= _MOST:
            raise ValueError(
                f"start_telemetry: {WRITERS_ENV}: expected a whole number of writer processes "
                f"from 1 to {_MOST}, got {text!r}"
            )
        return count
    return max(1, min(_MOST_BY_DEFAULT, (_usable_cores() - 2) // 3))


class CheckpointFile:
    """The session's side of the file: its writer processes, fed from the event loop."""

    def __init__(
        self,
        path: str,
        session_id: str,
        ids: tuple[int, int, int, str],
        loop: asyncio.AbstractEventLoop,
        writers: int = 1,
    ) -> None:
        self.path = path
        self.writers: list[CheckpointWriter] = []
        try:
            for index in range(writers):
                role = "" if writers == 1 else "--part" if index else "--first"
                self.writers.append(CheckpointWriter(path, session_id, ids, loop, role))
        except BaseException:
            for writer in self.writers:  # none left behind by one that could not start
                writer.kill()
            raise
        self.parts = writers
        self._finishing = False
        self._tasks_finished: bool | None = None

    def send(self, records: list[Any]) -> None:
        """Records that are not a task's (the first writer writes them); from any thread."""
        self.writers[0].send(records)

    def send_tasks(self, parts: list[list[Any]], shared: list[Any] | None = None) -> None:
        """Task records, ``parts[i]`` those of the tasks whose sequence number is ``i`` modulo
        :attr:`parts`; ``shared``, records for every writer (each formats the tasks it was
        given the submission of, and skips the others: splitting a batch's starts and ends by
        writer cost the session's thread more than one pickle sent to each)."""
        if self._finishing:  # the others are closing: the first writer takes what comes late
            self.send([value for records in parts for value in records] + (shared or []))
            return
        for writer, records in zip(self.writers, parts, strict=True):
            if records:
                writer.send(records)
        if shared:
            frame = pickle.dumps(shared, pickle.HIGHEST_PROTOCOL)
            for writer in self.writers:
                writer.send_frame(frame)

    def snapshot(self, now: float, totals: Callable[[], Totals]) -> None:
        """A metric snapshot line (``totals`` asked for only where there are several writers:
        one counts every task itself)."""
        self.send(["C", now] if self.parts == 1 else ["K", *totals(), "C", now])

    async def finish_tasks(self, timeout: float) -> bool:
        """Wait until every task's lines are in the file, before the session's last events are
        sent: the writers but the first finish here. False if one failed or timed out."""
        if self._tasks_finished is None:
            self._finishing = True
            others = self.writers[1:]
            results = await asyncio.gather(*(writer.close(timeout) for writer in others))
            self._tasks_finished = all(results)
        return self._tasks_finished

    async def close(self, timeout: float, totals: Callable[[], Totals]) -> bool:
        """Send the session's totals (several writers) and wait for the file to be complete."""
        finished = await self.finish_tasks(timeout)
        if self.parts > 1:
            self.send(["K", *totals()])  # the first writer's last snapshot: the whole session's
        return await self.writers[0].close(timeout) and finished


def open_checkpoint(
    directory: str, session_id: str, ids: tuple[int, int, int, str], loop: asyncio.AbstractEventLoop
) -> CheckpointFile:
    """Make ``{session_id}.telemetry.jsonl`` in ``directory`` and start its writers (a clear
    error, and no file, where the directory is not writable or the writer count is bad)."""
    writers = writer_count()
    try:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{session_id}.telemetry.jsonl")
        if os.path.exists(path):  # a session uid used again keeps the earlier file
            path = os.path.join(directory, f"{session_id}.{int(time.time())}.telemetry.jsonl")
        with open(path, "x", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ValueError(
            f"start_telemetry: checkpoint_path: expected a writable directory, got "
            f"{directory!r} ({exc.strerror or exc})"
        ) from exc
    try:
        return CheckpointFile(path, session_id, ids, loop, writers)
    except BaseException:
        os.remove(path)  # what could not start leaves no file either
        raise
