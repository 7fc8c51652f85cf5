"""The checkpoint file's JSON lines, formatted from records (rhapsody-py 0.6's JSONL layout).

Each line is a JSON object with ``section``: ``"event"`` (an event's fields, plus ``trace_id``,
``span_id`` and ``name``), ``"metric"`` (a snapshot of the counters) or ``"span"`` (a finished
span). Task lines are formatted from templates rather than ``json.dumps`` of a dict: they are
most of the file, and this is what lets the writer keep pace with a session doing 80k tasks/s.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _q
from typing import Any

from .records import CREATED, ENDED, QUEUED, STARTED, SUBMITTED, Record, TraceIds

_dumps = json.JSONEncoder(default=str, ensure_ascii=True).encode


def _num(value: float | None) -> str:
    if value is None:
        return "null"
    text = repr(value)
    # nan/inf are not JSON; an int (a test's clock, say) is fine as it is
    return text if text[-1].isdigit() else "null"


def _str(value: str | None) -> str:
    return "null" if value is None else _q(value)


_HEX = "0123456789abcdef"


class _Task:
    """A submitted task's pieces of JSON, made once and reused by each of its lines."""

    __slots__ = ("backend", "exe", "ids", "mid", "span", "submitted", "t_json", "tail", "uid")

    def __init__(
        self, seq: int, uid: str, lines: CheckpointLines, backend: str, exe: str, submitted: float
    ) -> None:
        base = f"{lines.ids.event_prefix}{seq << 3:016x}"
        head, nibble = base[:-1], (seq << 3) & 15
        # the ids of its five events (the kind is in the low three bits)
        self.ids = (
            head + _HEX[nibble],
            head + _HEX[nibble + 1],
            head + _HEX[nibble + 2],
            head + _HEX[nibble + 3],
            head + _HEX[nibble + 4],
        )
        self.backend, self.uid, self.exe = backend, _q(uid), exe
        self.submitted, self.t_json = submitted, "null"
        self.span = hex(lines.ids.task_span_id(seq))
        self.mid = f'"session_id": {lines.sid}, "backend": {backend}, "task_id": {self.uid}, '
        self.tail = f'"trace_id": {lines.trace}, "span_id": "{self.span}", '


class CheckpointLines:
    """Formats records into lines and keeps the counters of the metric snapshots."""

    def __init__(self, session_id: str, ids: TraceIds) -> None:
        self.session_id, self.ids = session_id, ids
        self.sid = self._sid = _q(session_id)
        self.trace = self._trace = f'"{hex(ids.trace_id)}"'
        self._parent = f'"{hex(ids.session_span_id)}"'
        self.pending: dict[int, _Task] = {}
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
        # JSON of values many tasks share: backends, executables and task types
        self._backends: dict[str, str] = {}
        self._exes: dict[tuple[str, str], str] = {}
        self._names: dict[str, str] = {}

    # -- task records -----------------------------------------------------------------------------

    def add_all(self, records: list[Record], emit_time: float, out: list[str]) -> None:
        """Format ``records`` (one batch: they share ``emit_time``) into ``out``."""
        emit = _num(emit_time)
        append = out.append
        pending = self.pending
        last_t, t_json = None, "null"  # tasks submitted together share their time
        for record in records:
            kind = record[0]
            if kind == "S":
                _, seq, uid, backend, task_type, exe, t = record
                q_backend = self._backends.get(backend)
                if q_backend is None:
                    q_backend = self._backends[backend] = _q(backend)
                exe_json = self._exes.get((exe, task_type))
                if exe_json is None:
                    exe_json = self._exes[(exe, task_type)] = (
                        f'"executable": {_q(exe)}, "task_type": {_q(task_type)}'
                    )
                if len(self._exes) > 10000:  # every task its own executable: stop caching
                    self._exes.clear()
                if t != last_t:
                    last_t, t_json = t, _num(t)
                task = pending[seq] = _Task(seq, uid, self, q_backend, exe_json, t)
                task.t_json = t_json
                body = (
                    f'"event_time": {t_json}, "emit_time": {emit}, {task.mid}"node_id": null, '
                    f'"attributes": {{{task.exe}}}, {task.tail}"name": "'
                )
                for digit, etype in (
                    (CREATED, "TaskCreated"),
                    (SUBMITTED, "TaskSubmitted"),
                    (QUEUED, "TaskQueued"),
                ):
                    append(
                        f'{{"event_id": "{task.ids[digit]}", "event_type": "{etype}", '
                        f'{body}{etype}", "section": "event"}}'
                    )
                self.counts["tasks_submitted"] += 1
            elif kind == "R":
                _, seq, started, host, worker = record
                running = pending.get(seq)
                if running is None:
                    continue
                task = running
                more = "" if worker is None else f', "worker": {self._json(worker)}'
                append(
                    f'{{"event_id": "{task.ids[STARTED]}", "event_type": "TaskStarted", '
                    f'"event_time": {_num(started)}, "emit_time": {emit}, {task.mid}'
                    f'"node_id": {self._json(host)}, "attributes": {{{task.exe}{more}}}, '
                    f"{task.tail}"
                    '"name": "TaskStarted", "section": "event"}'
                )
                self.counts["tasks_started"] += 1
            elif kind == "E":
                self._ended(record, emit, out)
            elif kind == "V":
                self.event_dict(record[1], out)
            elif kind == "C":
                append(self.metric_line(record[1]))
            elif kind == "Z":
                append(self.session_span_line(record[1], record[2]))
            else:
                raise ValueError(f"unknown telemetry record {record[:1]!r}")

    def _json(self, text: str | None) -> str:
        """JSON of a host or worker name (few, and repeated by every task: cached)."""
        if text is None:
            return "null"
        known = self._names.get(text)
        if known is None:
            if len(self._names) > 10000:
                self._names.clear()
            known = self._names[text] = _q(text)
        return known

    def _ended(self, record: Record, emit: str, out: list[str]) -> None:
        _, seq, state, ended, started, host, worker, error_type, extra = record
        task = self.pending.pop(seq, None)
        if task is None:
            return
        q_worker = None if worker is None else self._json(worker)
        more = "" if q_worker is None else f', "worker": {q_worker}'
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
            duration_json = _num(duration)
            queued = started - task.submitted
            span_times = (
                f', "queue_seconds": {_num(queued if queued > 0 else 0.0)}, '
                f'"run_seconds": {duration_json}'
            )
        counts = self.counts
        q_error = "null"
        if state == "DONE":
            etype, fields, status = "TaskCompleted", "", "completed"
            counts["tasks_completed"] += 1
        elif state == "FAILED":
            etype, status = "TaskFailed", "failed"
            q_error = _q(error_type or "unknown")
            more += f', "error_type": {q_error}'
            fields = f', "error_type": {q_error}'
            counts["tasks_failed"] += 1
        else:
            etype, fields, status = "TaskCanceled", "", "canceled"
            counts["tasks_canceled"] += 1
        self.duration_count += 1
        self.duration_sum += duration
        q_host = self._json(host)
        ended_json = _num(ended)
        out.append(
            f'{{"event_id": "{task.ids[ENDED]}", "event_type": "{etype}", '
            f'"event_time": {ended_json}, "emit_time": {emit}, {task.mid}'
            f'"node_id": {q_host}, "attributes": {{{task.exe}{more}}}, '
            f'"duration_seconds": {duration_json}{fields}, {task.tail}'
            f'"name": "{etype}", "section": "event"}}'
        )
        span = (
            f'{{"session_id": {self._sid}, "backend": {task.backend}, "task_id": {task.uid}, '
            f'{task.exe}, "status": "{status}"'
        )
        if state == "FAILED":
            span += f', "error_type": {q_error}'
        if host is not None:
            span += f', "host": {q_host}'
        if q_worker is not None:
            span += f', "worker": {q_worker}'
        span += span_times + extra_json
        submitted = task.submitted
        out.append(
            f'{{"name": "task", "span_id": "{task.span}", '
            f'"trace_id": {self._trace}, "parent_span_id": {self._parent}, '
            f'"start_ns": {int(submitted * 1e9)}, "end_ns": {int(ended * 1e9)}, '
            f'"start_time_s": {task.t_json}, "end_time_s": {ended_json}, '
            f'"duration_ms": {(ended - submitted) * 1e3:.3f}, '
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
