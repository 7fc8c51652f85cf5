"""The checkpoint file's JSON lines, formatted from records (rhapsody-py 0.6's JSONL layout).

Each line is a JSON object with ``section``: ``"event"`` (an event's fields, plus ``trace_id``,
``span_id`` and ``name``), ``"metric"`` (a snapshot of the counters) or ``"span"`` (a finished
span). Task lines are formatted from templates rather than ``json.dumps`` of a dict: they are
most of the file, and this is what lets the writer keep pace with a session doing 80k tasks/s.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii as _q
from typing import Any

from .records import (
    CREATED,
    ENDED,
    QUEUED,
    STARTED,
    SUBMITTED,
    Record,
    TaskInfo,
    TraceIds,
    run_time_and_attributes,
    span_attributes,
)

_dumps = json.JSONEncoder(default=str, ensure_ascii=True).encode


def _num(value: float | None) -> str:
    if value is None:
        return "null"
    if math.isfinite(value):
        return repr(float(value))
    return "null"


def _str(value: str | None) -> str:
    return "null" if value is None else _q(value)


class CheckpointLines:
    """Formats records into lines and keeps the counters of the metric snapshots."""

    def __init__(self, session_id: str, ids: TraceIds) -> None:
        self.session_id, self.ids = session_id, ids
        self._sid = _q(session_id)
        self._trace = f'"{hex(ids.trace_id)}"'
        self._parent = f'"{hex(ids.session_span_id)}"'
        self.pending: dict[int, TaskInfo] = {}
        self.counts = {
            "tasks_submitted": 0,
            "tasks_started": 0,
            "tasks_completed": 0,
            "tasks_failed": 0,
            "tasks_canceled": 0,
        }
        self.duration_count = 0
        self.duration_sum = 0.0
        self.resources: dict[tuple[str, str], dict[str, float]] = {}

    # -- task records -----------------------------------------------------------------------------

    def add(self, record: Record, emit_time: float, out: list[str]) -> None:
        kind = record[0]
        if kind == "S":
            self._submitted(record, emit_time, out)
        elif kind == "R":
            self._started(record, emit_time, out)
        elif kind == "E":
            self._ended(record, emit_time, out)
        elif kind == "V":
            self.event_dict(record[1], out)
        else:
            raise ValueError(f"unknown telemetry record {record[:1]!r}")

    def _head(self, seq: int, kind: int, etype: str, t: float, emit: float, info: TaskInfo) -> str:
        return (
            f'{{"event_id": "{self.ids.task_event_id(seq, kind)}", "event_type": "{etype}", '
            f'"event_time": {_num(t)}, "emit_time": {_num(emit)}, "session_id": {self._sid}, '
            f'"backend": {_q(info.backend)}, "task_id": {_q(info.uid)}, '
        )

    def _tail(self, seq: int, etype: str) -> str:
        return (
            f'"trace_id": {self._trace}, "span_id": "{hex(self.ids.task_span_id(seq))}", '
            f'"name": "{etype}", "section": "event"}}'
        )

    def _submitted(self, record: Record, emit: float, out: list[str]) -> None:
        _, seq, uid, backend, task_type, exe, t = record
        info = self.pending[seq] = TaskInfo(uid, backend, task_type, exe, t)
        attributes = f'"attributes": {{"executable": {_q(exe)}, "task_type": {_q(task_type)}}}, '
        for kind, etype in (
            (CREATED, "TaskCreated"),
            (SUBMITTED, "TaskSubmitted"),
            (QUEUED, "TaskQueued"),
        ):
            out.append(
                self._head(seq, kind, etype, t, emit, info)
                + f'"node_id": null, {attributes}'
                + self._tail(seq, etype)
            )
        self.counts["tasks_submitted"] += 1

    def _started(self, record: Record, emit: float, out: list[str]) -> None:
        _, seq, started, host, worker = record
        info = self.pending.get(seq)
        if info is None:
            return
        attributes = {"executable": info.executable, "task_type": info.task_type}
        if worker is not None:
            attributes["worker"] = worker
        out.append(
            self._head(seq, STARTED, "TaskStarted", started, emit, info)
            + f'"node_id": {_str(host)}, "attributes": {_dumps(attributes)}, '
            + self._tail(seq, "TaskStarted")
        )
        self.counts["tasks_started"] += 1

    def _ended(self, record: Record, emit: float, out: list[str]) -> None:
        _, seq, state, ended, started, host, worker, error_type, extra = record
        info = self.pending.pop(seq, None)
        if info is None:
            return
        duration, attributes = run_time_and_attributes(
            {"executable": info.executable, "task_type": info.task_type},
            started,
            ended,
            worker,
            extra,
        )
        if state == "DONE":
            etype, more = "TaskCompleted", ""
            self.counts["tasks_completed"] += 1
        elif state == "FAILED":
            etype = "TaskFailed"
            attributes["error_type"] = error_type
            more = f', "error_type": {_q(error_type or "unknown")}'
            self.counts["tasks_failed"] += 1
        else:
            etype, more = "TaskCanceled", ""
            self.counts["tasks_canceled"] += 1
        self.duration_count += 1
        self.duration_sum += duration
        out.append(
            self._head(seq, ENDED, etype, ended, emit, info)
            + f'"node_id": {_str(host)}, "attributes": {_dumps(attributes)}, '
            + f'"duration_seconds": {_num(duration)}{more}, '
            + self._tail(seq, etype)
        )
        span = span_attributes(
            self.session_id, info, state, error_type, host, worker, started, ended, extra
        )
        start_ns, end_ns = int(info.submitted_at * 1e9), int(ended * 1e9)
        out.append(
            f'{{"name": "task", "span_id": "{hex(self.ids.task_span_id(seq))}", '
            f'"trace_id": {self._trace}, "parent_span_id": {self._parent}, '
            f'"start_ns": {start_ns}, "end_ns": {end_ns}, '
            f'"start_time_s": {_num(start_ns / 1e9)}, "end_time_s": {_num(end_ns / 1e9)}, '
            f'"duration_ms": {_num(round((end_ns - start_ns) / 1e6, 3))}, '
            f'"status_code": "{"OK" if state == "DONE" else "ERROR"}", '
            f'"status_description": {_str(error_type if state == "FAILED" else None)}, '
            f'"attributes": {_dumps(span)}, "section": "span"}}'
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
