"""The checkpoint writer spread over several processes, for nodes with cores to spare.

One writer process formats about 55k tasks' lines a second; a session on a many-core node runs
no-op tasks twice as fast. With ``shards`` > 1 the writer process becomes a router: it sends each
task's records to the formatter process ``seq % shards`` (a task's records all go to one
formatter, which keeps what its later lines need). The formatters append their text to the file
themselves -- the text (~2.5 KB a task) never crosses a pipe -- in turn, passed round a ring of
pipes one byte per frame: router, formatter 0, 1, ..., router. The router's turn writes the
frame's session-wide lines (events, metric snapshots with the counters the formatters report,
the session span), then lets formatter 0 write the next frame. So the file holds the frames in
order, each frame's task lines by formatter, then its other lines.

Frames on the formatters' stdin are a 4-byte big-endian length and a pickle of ``(emit_time,
flat records)`` (the first one ``("H", session_id, ids)``); on their stdout, a pickle of their
counters after each frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

from .lines import CheckpointLines
from .trace_ids import TraceIds

log = logging.getLogger(__name__)

_HEADER = 4
_CHUNK = 512  # flat items formatted at once (~64 records, as the single writer)
_TASK_WIDTH = {"S": 7, "R": 5, "E": 9}
_OTHER_WIDTH = {"V": 2, "C": 2, "Z": 3}
_COUNTS = ("tasks_submitted", "tasks_started", "tasks_completed", "tasks_failed", "tasks_canceled")
_TURN = b"."
ENV = "RHAPSODY_TELEMETRY_FORMATTERS"


def shards_for(cores: int | None = None) -> int:
    """Formatter processes for a node of ``cores`` (default: the cores this process may use):
    none on a small machine (the writer formats alone, beside the session), then one per 4
    cores, at most 4. ``RHAPSODY_TELEMETRY_FORMATTERS`` (an integer >= 1) overrides it."""
    if cores is None:
        given = os.environ.get(ENV)
        if given is not None:
            if not given.strip().isdigit() or int(given) < 1:
                raise ValueError(f"{ENV}: expected an integer >= 1, got {given!r}")
            return int(given)
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return 1 if cores < 8 else min(4, cores // 4)


def write_frame(stream: IO[bytes], obj: Any) -> None:
    payload = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    stream.write(len(payload).to_bytes(_HEADER, "big"))
    stream.write(payload)


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's object; raises EOFError at the end of the stream (or a cut frame)."""
    head = stream.read(_HEADER)
    if len(head) < _HEADER:
        raise EOFError
    size = int.from_bytes(head, "big")
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return pickle.loads(payload)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def wait_turn(fd: int) -> None:
    if os.read(fd, 1) != _TURN:
        raise EOFError("the telemetry writer's ring of turns broke (a process ended)")


def split(flat: list[Any], shards: int) -> tuple[list[list[Any]], list[Any]]:
    """A flat batch's task records, one list per shard (by task seq), and the other records."""
    parts: list[list[Any]] = [[] for _ in range(shards)]
    other: list[Any] = []
    i, n = 0, len(flat)
    while i < n:
        kind = flat[i]
        width = _TASK_WIDTH.get(kind)
        if width is not None:
            parts[flat[i + 1] % shards].extend(flat[i : i + width])
        else:
            width = _OTHER_WIDTH[kind]
            other.extend(flat[i : i + width])
        i += width
    return parts, other


def run_sharded(path: str, shards: int, frames: Any) -> int:
    """Write the checkpoint file from ``frames`` (an iterator of flat batches) with ``shards``
    formatter processes."""
    ring = [os.pipe() for _ in range(shards + 1)]  # ring[k]: the turn to formatter k (or back)
    procs = []
    for k in range(shards):
        turn_in, turn_out = ring[k][0], ring[k + 1][1]
        command = [sys.executable, "-m", "rhapsody.telemetry.writer_shards", path]
        procs.append(
            subprocess.Popen(
                [*command, str(turn_in), str(turn_out)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(turn_in, turn_out),
            )
        )
    my_turn, first_turn = ring[shards][0], ring[0][1]
    for k in range(shards):  # the formatters' ends: EOF reaches whoever waits if one dies
        os.close(ring[k][0])
        os.close(ring[k + 1][1])
    ins = [p.stdin for p in procs]
    outs = [p.stdout for p in procs]
    handed: queue.SimpleQueue[tuple[float, list[Any]] | None] = queue.SimpleQueue()
    failed: list[BaseException] = []
    lines: CheckpointLines | None = None
    appender: threading.Thread | None = None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        for flat in frames:
            if flat and flat[0] == "H":
                for stream in ins:
                    write_frame(stream, flat[:3])  # type: ignore[arg-type]
                    stream.flush()  # type: ignore[union-attr]
                lines = CheckpointLines(flat[1], TraceIds(*flat[2]))
                appender = threading.Thread(
                    target=_take_turns,
                    args=(lines, outs, handed, fd, my_turn, first_turn, failed),
                    name="turns",
                    daemon=True,
                )
                appender.start()
                del flat[:3]
            if lines is None or not flat:
                continue
            if failed:
                break
            emit = time.time()
            parts, other = split(flat, shards)
            for stream, part in zip(ins, parts, strict=True):
                write_frame(stream, (emit, part))  # type: ignore[arg-type]
                stream.flush()  # type: ignore[union-attr]
            handed.put((emit, other))
    except OSError as exc:  # a formatter died: its stdin is a broken pipe
        failed.append(exc)
    finally:
        for stream in ins:
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        handed.put(None)
        if appender is not None:
            appender.join()
        if lines is not None and not failed:
            write_all(fd, (lines.metric_line(time.time()) + "\n").encode())
        os.close(fd)
        for end in (my_turn, first_turn):
            with contextlib.suppress(OSError):
                os.close(end)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if failed:
        log.error("the telemetry formatter processes stopped: %s", failed[0])
        return 1
    return 0


def _take_turns(
    lines: CheckpointLines,
    outs: list[Any],
    handed: queue.SimpleQueue[tuple[float, list[Any]] | None],
    fd: int,
    my_turn: int,
    first_turn: int,
    failed: list[BaseException],
) -> None:
    """The router's turns (a thread): after the formatters wrote a frame's task lines, its
    session-wide lines; then the next frame's turn to formatter 0."""
    totals: list[tuple[Any, ...]] = [(0, 0, 0, 0, 0, 0, 0.0)] * len(outs)
    counts = lines.counts
    try:
        os.write(first_turn, _TURN)
        while True:
            item = handed.get()
            if item is None:
                return
            emit, other = item
            wait_turn(my_turn)  # every formatter wrote its part of this frame
            for k, stream in enumerate(outs):
                totals[k] = read_frame(stream)
            for j, name in enumerate(_COUNTS):
                counts[name] = sum(t[j] for t in totals)
            lines.duration_count = sum(t[5] for t in totals)
            lines.duration_sum = sum(t[6] for t in totals)
            if other:
                out: list[str] = []
                lines.add_flat(other, emit, out)
                out.append("")
                write_all(fd, "\n".join(out).encode())
            os.write(first_turn, _TURN)
    except BaseException as exc:  # noqa: BLE001 - reported by the router
        failed.append(exc)


def format_frames(path: str, turn_in: int, turn_out: int) -> None:
    """A formatter process: task records in; their lines appended to ``path`` in its turn, its
    counters out."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    lines: CheckpointLines | None = None
    while True:
        try:
            frame = read_frame(stdin)
        except EOFError:
            return
        if isinstance(frame, list):  # the header
            lines = CheckpointLines(frame[1], TraceIds(*frame[2]))
            continue
        assert lines is not None
        emit, flat = frame
        # formatted before the turn comes (the other formatters format meanwhile), kept as
        # chunks of a few dozen records: one string of a whole part would be fresh pages
        chunks: list[bytes] = []
        at, end = 0, len(flat)
        while at < end:
            out: list[str] = []
            at = lines.add_flat(flat, emit, out, at, at + _CHUNK)
            out.append("")
            chunks.append("\n".join(out).encode())
        wait_turn(turn_in)
        for chunk in chunks:
            write_all(fd, chunk)
        counts = lines.counts
        totals: tuple[Any, ...] = (
            *[counts[name] for name in _COUNTS],
            lines.duration_count,
            lines.duration_sum,
        )
        write_frame(stdout, totals)
        stdout.flush()
        os.write(turn_out, _TURN)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the router decides when to stop
    format_frames(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
