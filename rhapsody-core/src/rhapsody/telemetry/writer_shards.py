"""The checkpoint writer spread over several processes, for nodes with cores to spare.

One writer process formats about 55k tasks' lines a second; a session on a many-core node runs
no-op tasks twice as fast. With ``shards`` > 1 the writer process becomes a router and an
appender: it sends each task's records to the formatter process ``seq % shards`` (a task's
records all go to one formatter, which keeps what its later lines need), and writes their text
back in frame order, the formatters' parts of a frame one after the other. Session-wide records
(events, metric snapshots, the session span) are formatted by the appender after the frame's task
lines, with the counters the formatters report.

Frames on every pipe are a 4-byte big-endian length and a pickle: to a formatter
``(emit_time, flat records)`` (the first one ``("H", session_id, ids)``); back from it
``(text, counters)``.
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
_TASK_WIDTH = {"S": 7, "R": 5, "E": 9}
_OTHER_WIDTH = {"V": 2, "C": 2, "Z": 3}
_COUNTS = ("tasks_submitted", "tasks_started", "tasks_completed", "tasks_failed", "tasks_canceled")


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
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rhapsody.telemetry.writer_shards"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=os.environ,
        )
        for _ in range(shards)
    ]
    ins = [p.stdin for p in procs]
    outs = [p.stdout for p in procs]
    assert all(ins) and all(outs)
    handed: queue.SimpleQueue[tuple[float, list[Any]] | None] = queue.SimpleQueue()
    failed: list[BaseException] = []
    lines: CheckpointLines | None = None
    appender: threading.Thread | None = None
    try:
        with open(path, "a", encoding="utf-8", buffering=1 << 20) as out_file:
            for flat in frames:
                if flat and flat[0] == "H":
                    for stream in ins:
                        write_frame(stream, flat[:3])  # type: ignore[arg-type]
                        stream.flush()  # type: ignore[union-attr]
                    lines = CheckpointLines(flat[1], TraceIds(*flat[2]))
                    appender = threading.Thread(
                        target=_append,
                        args=(lines, outs, handed, out_file, failed),
                        name="appender",
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
            for stream in ins:
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]
            handed.put(None)
            if appender is not None:
                appender.join()
            if lines is not None and not failed:
                out_file.write(lines.metric_line(time.time()) + "\n")
    finally:
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


def _append(
    lines: CheckpointLines,
    outs: list[Any],
    handed: queue.SimpleQueue[tuple[float, list[Any]] | None],
    out_file: IO[str],
    failed: list[BaseException],
) -> None:
    """The appender thread: each frame's parts in order, then its session-wide lines."""
    totals: list[tuple[Any, ...]] = [(0, 0, 0, 0, 0, 0, 0.0)] * len(outs)
    counts = lines.counts
    try:
        while True:
            item = handed.get()
            if item is None:
                return
            emit, other = item
            for k, stream in enumerate(outs):
                text, totals[k] = read_frame(stream)
                if text:
                    out_file.write(text)
            for j, name in enumerate(_COUNTS):
                counts[name] = sum(t[j] for t in totals)
            lines.duration_count = sum(t[5] for t in totals)
            lines.duration_sum = sum(t[6] for t in totals)
            if other:
                out: list[str] = []
                lines.add_flat(other, emit, out)
                out.append("")
                out_file.write("\n".join(out))
            out_file.flush()  # a frame at a time: the file can be followed with tail -f
    except BaseException as exc:  # noqa: BLE001 - reported by the router
        failed.append(exc)


def format_frames(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A formatter process: task records in, their lines (and the counters so far) out."""
    lines: CheckpointLines | None = None
    chunk = 512  # as the single writer: a few dozen records' lines joined at a time
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
        texts: list[str] = []
        at, end = 0, len(flat)
        while at < end:
            out: list[str] = []
            at = lines.add_flat(flat, emit, out, at, at + chunk)
            out.append("")
            texts.append("\n".join(out))
        counts = lines.counts
        totals: tuple[Any, ...] = (
            *[counts[name] for name in _COUNTS],
            lines.duration_count,
            lines.duration_sum,
        )
        write_frame(stdout, ("".join(texts), totals))
        stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the router decides when to stop
    format_frames(sys.stdin.buffer, sys.stdout.buffer)
