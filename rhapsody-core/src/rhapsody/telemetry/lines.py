"""The checkpoint file's JSON lines, formatted from records (rhapsody-py 0.6's JSONL layout).

Each line is a JSON object with ``section``: ``"event"`` (an event's fields, plus ``trace_id``,
``span_id`` and ``name``), ``"metric"`` (a snapshot of the counters) or ``"span"`` (a finished
span). Task lines are most of the file (six per task, ~3 KB), so they are not ``json.dumps`` of
dicts: each kind of task (backend, task type, executable) and each place it ran (host, worker)
has the JSON its tasks share made once (:mod:`.line_parts`), and a task's lines are one f-string
of those pieces and its own values (:mod:`.column_lines`, which formats a column of tasks at a
time; per-task records are gathered into columns here). Ends that are not the common case (a
failure, a task that never ran, extra attributes, a time that is not a finite float) take a
general path, here, that writes the same fields.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _q
from typing import TYPE_CHECKING, Any

from .column_lines import completed_lines, started_lines, submitted_lines
from .line_parts import (  # noqa: F401 - the formatters' home for tests that swap them
    Kind,
    Where,
    _numbers_by_repr,
    num,
    number_text,
    numbers_text,
    place_texts,
    scaled,
)
from .trace_ids import TraceIds

if TYPE_CHECKING:
    from .records import Record

_dumps = json.JSONEncoder(default=str, ensure_ascii=True).encode
# tasks of one column formatted at once, at most: their lines are joined in memory (~3 KB each)
COLUMN_TASKS = 256
_WIDTH = {"S": 7, "R": 5, "E": 9}
_COLUMNS = {"s": 8, "r": 5, "e": 6}  # column records' items, the last a column


def _cut(record: list[Any]) -> list[Any]:
    """A column record of more than COLUMN_TASKS tasks as several (the same items in order)."""
    kind, total = record[0], len(record[-1])
    cut: list[Any] = []
    for at in range(0, total, COLUMN_TASKS):
        if kind == "s":  # first seq, step: this part's first seq
            first, step = record[1], record[2]
            cut += ["s", first + at * step, step]
            columns = record[3:]
        else:
            cut.append(kind)
            columns = record[1:]
        cut += [column[at : at + COLUMN_TASKS] for column in columns]
    return cut


class CheckpointLines:
    """Formats records into lines and keeps the counters of the metric snapshots."""

    def __init__(self, session_id: str, ids: TraceIds) -> None:
        self.session_id, self.ids = session_id, ids
        self.sid = _q(session_id)
        self.trace = f'"{hex(ids.trace_id)}"'
        self.parent = f'"{hex(ids.session_span_id)}"'
        self.trace_span = f', "trace_id": {self.trace}, "span_id": "'
        self.span_head = (
            f', "trace_id": {self.trace}, "parent_span_id": {self.parent}, "start_ns": '
        )
        # a task's event ids but their last digit: hex() of the prefix, the task's number and a
        # leading 1 that keeps the prefix's leading zeros (a format spec costs 3x more)
        self.id_base = 1 << 124 | int(ids.event_prefix, 16) << 60
        # seq -> (task id JSON, kind, submitted at, its JSON and nanoseconds, span id, event id
        # but its last digit, the last digits)
        self.pending: dict[int, tuple[str, Kind, float, str, str, str, str, tuple[str, ...]]] = {}
        self.counts = {
            "tasks_submitted": 0,
            "tasks_started": 0,
            "tasks_completed": 0,
            "tasks_failed": 0,
            "tasks_canceled": 0,
        }
        self.duration_count = 0
        self.duration_sum = 0.0
        self.totals_given = False  # whether the session sent its totals (a "K" record)
        self.resources: dict[tuple[str, str], dict[str, float]] = {}
        self.kinds: dict[tuple[str, str, str], Kind] = {}
        self.wheres: dict[tuple[str | None, str | None], Where] = {}

    # -- task records -----------------------------------------------------------------------------

    def add_all(self, records: list[Record], emit_time: float, out: list[str]) -> None:
        """Format ``records`` (one batch: they share ``emit_time``) into ``out``, whose entries
        are one or more lines (joined by newlines: a task's three submission events are one)."""
        self.add_flat([value for record in records for value in record], emit_time, out)

    def add_flat(
        self,
        flat: list[Any],
        emit_time: float,
        out: list[str],
        start: int = 0,
        stop: int = -1,
        most: int = 0,
    ) -> int:
        """Format a flat batch of records (see :mod:`.records`) into ``out``: the records that
        begin in ``flat[start:stop]`` (all that follow ``start`` by default), or, with ``most``,
        until ``out`` holds that many entries. Returns where the next record begins."""
        emit = num(emit_time)
        numbers = numbers_text
        i, n = start, len(flat) if stop < 0 else min(stop, len(flat))
        while i < n and not 0 < most <= len(out):
            kind = flat[i]
            width = _COLUMNS.get(kind)
            if width is not None and len(flat[i + width - 1]) > COLUMN_TASKS:
                cut = _cut(flat[i : i + width])  # at most COLUMN_TASKS lines' worth at once
                flat[i : i + width] = cut
                n += len(cut) - width
            if kind == "s":  # columns (see .task_columns): first seq, step, then the columns
                first, step, uids, backends, task_types, exes, times = flat[i + 1 : i + 8]
                seqs = range(first, first + step * len(uids), step)
                submitted_lines(self, seqs, uids, backends, task_types, exes, times, emit, out)
                i += 8
            elif kind == "r":
                seqs, times, hosts, workers = flat[i + 1 : i + 5]
                started_lines(self, seqs, times, hosts, workers, emit, out, numbers)
                i += 5
            elif kind == "e":
                seqs, ended, started, hosts, workers = flat[i + 1 : i + 6]
                completed_lines(self, seqs, ended, started, hosts, workers, emit, out, numbers)
                i += 6
            elif kind in _WIDTH:
                i = self._add_records(flat, i, n, emit, out)
            elif kind == "V":
                self.event_dict(flat[i + 1], out)
                i += 2
            elif kind == "C":
                out.append(self.metric_line(flat[i + 1]))
                i += 2
            elif kind == "Z":
                out.append(self.session_span_line(flat[i + 1], flat[i + 2]))
                i += 3
            elif kind == "K":  # the session's totals
                self.set_totals(*flat[i + 1 : i + 8])
                i += 8
            else:
                raise ValueError(f"unknown telemetry record {kind!r}")
        return i

    def _add_records(self, flat: list[Any], i: int, n: int, emit: str, out: list[str]) -> int:
        """Per-task records in a row (from ``flat[i]``), as columns: the submissions first, then
        the starts, then the ends (a task's records keep their order); an end that is not a
        plain completion is written by the general path. Returns where the next record begins."""
        rows: dict[str, list[list[Any]]] = {"S": [], "R": [], "E": []}
        others = []
        count = 0
        while i < n and count < COLUMN_TASKS:
            kind = flat[i]
            width = _WIDTH.get(kind)
            if width is None:
                break
            if kind == "E" and (flat[i + 2] != "DONE" or flat[i + 8] is not None):
                others.append(flat[i + 1 : i + 9])
            else:
                rows[kind].append(flat[i + 1 : i + width])
            i += width
            count += 1
        if rows["S"]:
            seqs, uids, backends, task_types, exes, times = zip(*rows["S"], strict=True)
            submitted_lines(self, seqs, uids, backends, task_types, exes, times, emit, out)
        if rows["R"]:
            seqs, times, hosts, workers = zip(*rows["R"], strict=True)
            started_lines(self, seqs, times, hosts, workers, emit, out, numbers_text)
        if rows["E"]:
            seqs, _, ended, started, hosts, workers, _, _ = zip(*rows["E"], strict=True)
            completed_lines(self, seqs, ended, started, hosts, workers, emit, out, numbers_text)
        for seq, *fields in others:
            task = self.pending.pop(seq, None)
            if task is not None:
                self.ended_generally(seq, task, fields, emit, out)
        return i

    def set_totals(
        self,
        submitted: int,
        started: int,
        completed: int,
        failed: int,
        canceled: int,
        ended: int,
        run_seconds: float,
    ) -> None:
        """The session's own totals (a ``K`` record): the first of several writers sees only
        its share of the tasks, and its snapshots are of the whole session."""
        self.counts.update(
            tasks_submitted=submitted,
            tasks_started=started,
            tasks_completed=completed,
            tasks_failed=failed,
            tasks_canceled=canceled,
        )
        self.duration_count, self.duration_sum = ended, run_seconds
        self.totals_given = True

    def where(self, host: str | None, worker: str | None) -> Where:
        """A place not in the cache yet: its JSON made and kept."""
        if len(self.wheres) > 10000:
            self.wheres.clear()
        where = self.wheres[(host, worker)] = Where(host, worker)
        return where

    def ended_generally(
        self,
        seq: int,
        task: tuple[str, Kind, float, str, str, str, str, tuple[str, ...]],
        fields: list[Any],
        emit: str,
        out: list[str],
    ) -> None:
        """The end of a task off the common path (see the module's docstring)."""
        state, ended, started, host, worker, error_type, extra = fields
        host, worker = place_texts((host, worker))
        q_uid, shape, submitted, t_json, t_ns, span_id, base, nib = task
        where = self.wheres.get((host, worker)) or self.where(host, worker)
        more = where.event_worker
        extra_json = ""
        if extra:
            extra_json = "".join(f", {_q(str(k))}: {_dumps(v)}" for k, v in extra.items())
            more += extra_json
        if started is None:
            duration, duration_json = 0.0, "0.0"
            more += ', "incomplete_lifecycle": true'
            span_times = ', "incomplete_lifecycle": true'
        else:
            duration = ended - started
            if duration < 0:
                duration = 0.0
            duration_json = num(duration)
            queued = started - submitted
            span_times = (
                f', "queue_seconds": {num(queued if queued > 0 else 0.0)}, '
                f'"run_seconds": {duration_json}'
            )
        counts = self.counts
        q_error = "null"
        if state == "DONE":
            etype, fields_json, status = "TaskCompleted", "", "completed"
            counts["tasks_completed"] += 1
        elif state == "FAILED":
            etype, status = "TaskFailed", "failed"
            q_error = _q(error_type or "unknown")
            more += f', "error_type": {q_error}'
            fields_json = f', "error_type": {q_error}'
            counts["tasks_failed"] += 1
        else:
            etype, fields_json, status = "TaskCanceled", "", "canceled"
            counts["tasks_canceled"] += 1
        self.duration_count += 1
        self.duration_sum += duration
        ended_json = num(ended)
        common = f'"session_id": {self.sid}, "backend": {shape.backend}, "task_id": {q_uid}'
        out.append(
            f'{{"event_id": "{base}{nib[4]}", '
            f'"event_type": "{etype}", "event_time": {ended_json}, "emit_time": {emit}, '
            f'{common}, "node_id": {where.node}, "attributes": {{{shape.exe}{more}}}, '
            f'"duration_seconds": {duration_json}{fields_json}, "trace_id": {self.trace}, '
            f'"span_id": "{span_id}", "name": "{etype}", "section": "event"}}'
        )
        span = f'{{{common}, {shape.exe}, "status": "{status}"'
        if state == "FAILED":
            span += f', "error_type": {q_error}'
        span += where.span_where + span_times + extra_json
        out.append(
            f'{{"name": "task", "span_id": "{span_id}", '
            f'"trace_id": {self.trace}, "parent_span_id": {self.parent}, '
            f'"start_ns": {t_ns}, "end_ns": {scaled(ended, 1e9, "%d")}, '
            f'"start_time_s": {t_json}, "end_time_s": {ended_json}, '
            f'"duration_ms": {scaled(ended - submitted, 1e3, "%.3f")}, '
            f'"status_code": "{"OK" if state == "DONE" else "ERROR"}", '
            f'"status_description": {q_error}, '
            f'"attributes": {span}}}, "section": "span"}}'
        )

    # -- other lines ------------------------------------------------------------------------------

    def event_dict(self, data: dict[str, Any], out: list[str]) -> None:
        """A ready event (session, resource or custom), as :func:`event_line_fields` made it."""
        if data.get("event_type") == "ResourceUpdate" and data.get("gpu_id") is None:
            self.resources[(str(data.get("backend")), str(data.get("node_id")))] = {
                "cpu": data.get("cpu_percent") or 0.0,
                "mem": data.get("memory_percent") or 0.0,
                "gpu": data.get("gpu_percent") or 0.0,
            }
        out.append(_dumps({**data, "section": "event"}))

    def metric_line(self, now: float) -> str:
        counts = self.counts
        running = counts["tasks_started"] - sum(
            counts[k] for k in ("tasks_completed", "tasks_failed", "tasks_canceled")
        )
        snapshot: dict[str, Any] = {"checkpoint_time": now, **counts}
        snapshot["tasks_running"] = max(running, 0)
        snapshot["task_duration_seconds_count"] = self.duration_count
        snapshot["task_duration_seconds_sum"] = self.duration_sum
        if self.resources:
            for key, name in (
                ("cpu", "node_cpu_utilization"),
                ("mem", "node_memory_utilization"),
                ("gpu", "node_gpu_utilization"),
            ):
                snapshot[name] = sum(r[key] for r in self.resources.values())
        snapshot["section"] = "metric"
        return _dumps(snapshot)

    def session_span_line(self, start: float, end: float, status: str = "OK") -> str:
        start_ns, end_ns = int(start * 1e9), int(end * 1e9)
        return _dumps(
            {
                "name": "session",
                "span_id": hex(self.ids.session_span_id),
                "trace_id": hex(self.ids.trace_id),
                "parent_span_id": None,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "start_time_s": start_ns / 1e9,
                "end_time_s": end_ns / 1e9,
                "duration_ms": round((end_ns - start_ns) / 1e6, 3),
                "status_code": status,
                "status_description": None,
                "attributes": {"session_id": self.session_id, "backend": "rhapsody"},
                "section": "span",
            }
        )
