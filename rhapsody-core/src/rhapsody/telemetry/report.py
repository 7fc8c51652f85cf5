"""``rhapsody report RUN.telemetry.jsonl``: what a checkpoint file says, summarised.

A task's numbers come from its span line (one per ended task), found and read field by field
at C speed; the five event lines per task are only counted, never parsed; a large file is read
in parts by several processes. That is what keeps a 1M-task file (3 GB) under half a minute.
A truncated last line (a run that crashed) is reported and the rest summarised; a file that is
not a telemetry checkpoint is refused with the reason.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import attrs


class ReportError(ValueError):
    """The file cannot be summarised (missing, empty, not a telemetry checkpoint)."""


class TaskRow(NamedTuple):
    backend: str
    task_type: str
    status: str
    lane: str
    submitted: float
    started: float | None
    ended: float
    error: str | None
    task_id: str | None = None  # kept only where the span is parsed whole (other writers)


@attrs.define
class Checkpoint:
    """What a checkpoint file holds, as plain data (the report and the plot use it)."""

    path: str
    session_id: str | None = None
    tasks: list[TaskRow] = attrs.field(factory=list)
    submitted_events: int = 0
    started_events: int = 0
    resources: list[dict[str, Any]] = attrs.field(factory=list)
    metrics: dict[str, Any] = attrs.field(factory=dict)
    session_start: float | None = None
    session_end: float | None = None
    truncated: str | None = None
    bad_lines: int = 0

    @property
    def unfinished(self) -> int:
        return max(self.submitted_events - len(self.tasks), 0)


# Our span lines, matched a block at a time by one regular expression (its literal start lets
# the scan skip the event lines at C speed); other writers' layouts fall back to json.loads.
# JSON strings without an escaped quote (one with makes the line fail to match: then its block
# is read the slow, exact way)
_Q = rb'"([^"]*)"'
_S = rb'"[^"]*"'
_N = rb"([-0-9.e+]+)"
_ATTRIBUTES = re.compile(
    rb'"session_id": '
    + _S
    + rb', "backend": '
    + _Q
    + rb', "task_id": '
    + _S
    + rb', "executable": '
    + _S
    + rb', "task_type": '
    + _Q
    + rb', "status": "(\w+)"'
    + rb'(?:, "error_type": '
    + _Q
    + rb')?(?:, "host": '
    + _Q
    + rb')?(?:, "worker": '
    + _Q
    + rb')?(?:, "queue_seconds": [-0-9.e+]+, "run_seconds": '
    + _N
    + rb'|, "incomplete_lifecycle": true)?(?:, "error": '
    + _Q
    + rb")?"
)
_SPAN_START = b'{"name": "task", "span_id": "'
_CHUNK = 1 << 24


def _text(raw: bytes) -> str:
    return str(json.loads(b'"' + raw + b'"')) if b"\\" in raw else raw.decode()


def _lane_of(host: str | None, worker: str | None, backend: str) -> str:
    if host and worker:
        return f"{host} / {worker}"
    return worker or host or backend or "?"


def _row_from_item(item: dict[str, Any]) -> TaskRow | None:
    attributes = item.get("attributes") or {}
    start, end = item.get("start_time_s"), item.get("end_time_s")
    if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
        return None
    run = attributes.get("run_seconds")
    status = str(attributes.get("status", "?"))
    error = None
    if status == "failed":
        error = str(attributes.get("error") or attributes.get("error_type") or "?")
    backend = str(attributes.get("backend", "?"))
    return TaskRow(
        backend=backend,
        task_type=str(attributes.get("task_type", "?")),
        status=status,
        lane=_lane_of(attributes.get("host"), attributes.get("worker"), backend),
        submitted=float(start),
        started=end - run if isinstance(run, (int, float)) else None,
        ended=float(end),
        error=error,
        task_id=attributes.get("task_id"),
    )


def _fill_from_events(data: Checkpoint) -> None:
    """Spans of another writer (rhapsody-py's) carry neither the run time nor, often, the
    backend: take them from the tasks' terminal events, one more pass over the file."""
    wanted = {row.task_id for row in data.tasks if row.task_id is not None}
    if not wanted:
        return
    found: dict[str, tuple[str, float | None]] = {}
    for block, _ in _blocks(data.path):
        at = block.find(b'"duration_seconds": ')
        while at >= 0:
            head = block.rfind(b"\n", 0, at) + 1
            tail = block.find(b"\n", at)
            try:
                item = json.loads(block[head:tail])
            except ValueError:
                item = {}
            uid = item.get("task_id") if isinstance(item, dict) else None
            if uid in wanted and str(item.get("event_type", "")).startswith("Task"):
                complete = not (item.get("attributes") or {}).get("incomplete_lifecycle")
                run = item.get("duration_seconds")
                found[uid] = (
                    str(item.get("backend") or ""),
                    float(run) if complete and isinstance(run, (int, float)) else None,
                )
            at = block.find(b'"duration_seconds": ', tail)
    rows = []
    for row in data.tasks:
        backend, run = found.get(row.task_id or "", ("", None))
        if row.started is None and run is not None:
            row = row._replace(started=row.ended - run)
        if backend and row.backend in ("", "?"):
            row = row._replace(backend=backend)
        rows.append(row)
    data.tasks = rows


def _blocks(
    path: str, start: int = 0, stop: int | None = None
) -> Iterator[tuple[bytes, bytes | None]]:
    """Bytes ``start:stop`` of the file (whole lines) in large blocks; with the last, the line
    after the last newline (a line cut short by a crash), if any."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = None if stop is None else stop - start
        rest = b""
        while True:
            size = _CHUNK if left is None else min(_CHUNK, left)
            block = fh.read(size) if size else b""
            if left is not None:
                left -= len(block)
            if not block:
                yield b"", rest or None
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            yield block[: cut + 1], None


def _line_starts(path: str, parts: int) -> list[int]:
    """``parts + 1`` offsets that cut the file into about equal runs of whole lines."""
    size = os.path.getsize(path)
    offsets = [0]
    with open(path, "rb") as fh:
        for k in range(1, parts):
            fh.seek(max(size * k // parts - 1, 0))
            fh.readline()  # to the start of the next line
            offsets.append(max(fh.tell(), offsets[-1]))
    offsets.append(size)
    return offsets


class _Reader:
    def __init__(self, data: Checkpoint) -> None:
        self.data = data
        self.names: dict[tuple[bytes, ...], tuple[str, str, str, str]] = {}
        self.lines = 0
        self.recognised = 0

    def block(self, block: bytes) -> None:
        data = self.data
        lines = block.count(b"\n")
        self.lines += lines
        known = block.count(b'"section": "')
        self.recognised += known
        data.bad_lines += lines - known
        data.submitted_events += block.count(b'"event_type": "TaskSubmitted"')
        data.started_events += block.count(b'"event_type": "TaskStarted"')
        spans = block.count(b'"section": "span"}')
        before = len(data.tasks)
        self._spans(block)
        found = len(data.tasks) - before
        sessions = block.count(b'{"name": "session", ')
        if found + sessions != spans:  # a layout of another writer: line by line, fully parsed
            del data.tasks[before:]
            for line in block.split(b"\n"):
                if line.startswith(b'{"name": "task"'):
                    self.parsed(line)
        for marker in (
            b'"event_type": "ResourceUpdate"',
            b'"event_type": "SessionStarted"',
            b'"event_type": "SessionEnded"',
            b'"section": "metric"',
            b'{"name": "session", ',
        ):
            start = block.find(marker)
            while start >= 0:
                head = block.rfind(b"\n", 0, start) + 1
                tail = block.find(b"\n", start)
                self.parsed(block[head:tail])
                start = block.find(marker, tail)

    def _spans(self, block: bytes) -> None:
        rows, names = self.data.tasks, self.names
        append, match_at, find = rows.append, _ATTRIBUTES.match, block.find
        # bytes.find goes from span line to span line, and to the fields in each, at C speed
        at = find(_SPAN_START)
        while at >= 0:
            nxt = find(_SPAN_START, at + 1)
            a = find(b'"start_time_s": ', at)
            b = find(b", ", a)
            c = find(b'"end_time_s": ', b)
            d = find(b", ", c)
            e = find(b'"attributes": {', d)
            match = match_at(block, e + 15) if 0 <= a < e and (nxt < 0 or e < nxt) else None
            at = nxt
            if match is None:
                continue
            backend, kind, status, error_type, host, worker, run, error = match.groups()
            start, end = block[a + 16 : b], block[c + 14 : d]
            key = (backend, kind, status, host, worker)
            known = names.get(key)
            if known is None:
                name = _text(backend)
                known = names[key] = (
                    name,
                    _text(kind),
                    status.decode(),
                    _lane_of(
                        None if host is None else _text(host),
                        None if worker is None else _text(worker),
                        name,
                    ),
                )
            ended = float(end)
            append(
                TaskRow(
                    known[0],
                    known[1],
                    known[2],
                    known[3],
                    float(start),
                    ended - float(run) if run else None,
                    ended,
                    (_text(error or error_type or b"?") if known[2] == "failed" else None),
                )
            )

    def parsed(self, line: bytes) -> bool:
        try:
            item = json.loads(line)
        except ValueError:
            return False
        if isinstance(item, dict) and "section" in item:
            _take(self.data, item)
            return True
        return False


PARALLEL_FROM = 128 << 20  # bytes: larger files are read by several processes


def load(path: str, workers: int | None = None) -> Checkpoint:
    """Read a checkpoint file (see the module's docstring for what is refused); a large one is
    read by ``workers`` processes (default: one per core, at most 8), each a part of it."""
    if not os.path.exists(path):
        raise ReportError(f"rhapsody report: {path}: no such file")
    if os.path.isdir(path):
        raise ReportError(
            f"rhapsody report: {path}: expected a .telemetry.jsonl file, got a directory"
        )
    size = os.path.getsize(path)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if size >= PARALLEL_FROM else 1
    offsets = _line_starts(path, max(workers, 1))
    ranges = list(itertools.pairwise(offsets))
    if len(ranges) == 1:
        parts = [_read_range(path, *ranges[0])]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: load() may be called from a program with threads (a session's)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
            parts = list(pool.map(_read_range, [path] * len(ranges), *zip(*ranges, strict=True)))
    data = Checkpoint(path=path)
    lines = recognised = 0
    for part, part_lines, part_recognised, cut in parts:
        lines += part_lines
        recognised += part_recognised
        data.tasks.extend(map(TaskRow._make, part.tasks))
        data.submitted_events += part.submitted_events
        data.started_events += part.started_events
        data.resources.extend(part.resources)
        data.metrics = part.metrics or data.metrics
        data.session_id = data.session_id or part.session_id
        data.session_start = data.session_start or part.session_start
        data.session_end = part.session_end or data.session_end
        data.bad_lines += part.bad_lines
        if cut:
            data.truncated = f"line {lines} is cut short (the run did not finish?)"
    if lines == 0:
        raise ReportError(f"rhapsody report: {path}: the file is empty")
    if not recognised:
        raise ReportError(
            f"rhapsody report: {path}: not a RHAPSODY telemetry checkpoint (no line has a "
            "'section' of event, metric or span)"
        )
    if data.tasks and all(row.started is None for row in data.tasks):
        _fill_from_events(data)
    return data


def _read_range(path: str, start: int, stop: int) -> tuple[Checkpoint, int, int, bool]:
    """One part of the file: what it holds (task rows as plain tuples, cheap to send back),
    its line count, the lines recognised, and whether its last line was cut short."""
    data = Checkpoint(path=path)
    reader = _Reader(data)
    cut_short = False
    for block, cut in _blocks(path, start, stop):
        if block:
            reader.block(block)
        if cut is not None and cut.strip():
            reader.lines += 1
            if reader.parsed(cut):  # complete, only its newline missing
                reader.recognised += 1
            else:
                cut_short = True
    data.tasks = [tuple(row) for row in data.tasks]  # type: ignore[misc]
    return data, reader.lines, reader.recognised, cut_short


def _take(data: Checkpoint, item: dict[str, Any]) -> None:
    """One parsed line: a span, an event or a metric snapshot."""
    section = item["section"]
    if section == "span":
        if item.get("name") == "task":
            row = _row_from_item(item)
            if row is not None:
                data.tasks.append(row)
        elif item.get("name") == "session":  # the start as first seen, the end as last seen
            data.session_start = data.session_start or item.get("start_time_s")
            data.session_end = item.get("end_time_s") or data.session_end
    elif section == "event":
        etype = item.get("event_type")
        data.session_id = data.session_id or item.get("session_id")
        if etype == "ResourceUpdate":
            data.resources.append(item)
        elif etype == "SessionStarted" and data.session_start is None:
            data.session_start = item.get("event_time")
        elif etype == "SessionEnded":
            data.session_end = item.get("event_time")
    elif section == "metric":
        data.metrics = item
