"""The checkpoint file's JSON lines, formatted from records (rhapsody-py 0.6's JSONL layout).

Each line is a JSON object with ``section``: ``"event"`` (an event's fields, plus ``trace_id``,
``span_id`` and ``name``), ``"metric"`` (a snapshot of the counters) or ``"span"`` (a finished
span). Task lines are most of the file (six per task, ~3 KB), so they are not ``json.dumps`` of
dicts: each kind of task (backend, task type, executable) and each place it ran (host, worker)
has the JSON its tasks share made once, and a record becomes one f-string of those pieces and
its own values -- its three submission lines at once, its end event and span at once (``%``
templates were tried: slower, they scan the whole template per call). Ends that are not the
common case (a failure, a task that never ran, extra attributes, a time that is not a finite
float) take a general path that writes the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _q
from typing import TYPE_CHECKING, Any

from .trace_ids import TraceIds

if TYPE_CHECKING:
    from .records import Record

_dumps = json.JSONEncoder(default=str, ensure_ascii=True).encode
_U64 = (1 << 64) - 1
_U60 = (1 << 60) - 1


def _numbers_by_repr(values: tuple[float | int, ...]) -> list[str]:
    """JSON of finite numbers, as ``json.dumps`` writes them."""
    return list(map(repr, values))


try:  # orjson (the telemetry extra) formats floats ~6x faster than repr: ~5 per task here
    from orjson import dumps as _orjson_dumps

    def _numbers_by_orjson(values: tuple[float | int, ...]) -> list[str]:
        """JSON of finite numbers (ints within 64 bits): the same values ``repr`` gives, in
        orjson's spelling (``0.00005`` for ``5e-05``), in one call."""
        return _orjson_dumps(values).decode()[1:-1].split(",")

    def _number_by_orjson(value: float) -> str:
        return _orjson_dumps(value).decode()

    numbers_text: Callable[[tuple[float | int, ...]], list[str]] = _numbers_by_orjson
    number_text: Callable[[float], str] = _number_by_orjson
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    numbers_text, number_text = _numbers_by_repr, repr


def _num(value: float | None) -> str:
    if value is None:
        return "null"
    if value.__class__ is not float and value.__class__ is not int:
        # a number of another type (a backend's NumPy float: its repr is "np.float64(...)")
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            return "null"
    text = repr(value)
    # nan/inf are not JSON; an int (a test's clock, say) is fine as it is
    return text if text[-1].isdigit() else "null"


def _scaled(value: float, scale: float, spec: str) -> str:
    """``value * scale`` in ``spec`` (``"%d"``, ``"%.3f"``), or null if it is not a number."""
    try:
        scaled = value * scale
        return spec % scaled if scaled - scaled == 0 else "null"
    except (TypeError, ValueError, OverflowError):
        return "null"


# the last hex digit of a task's five event ids: its number's low bit, then the event's kind
_NIBBLES: tuple[tuple[str, ...], ...] = (("0", "1", "2", "3", "4"), ("8", "9", "a", "b", "c"))


class _Kind:
    """JSON one kind of task (backend, task type, executable) repeats in each of its lines."""

    __slots__ = ("backend", "exe", "span_task_id", "task_id")

    def __init__(self, lines: CheckpointLines, backend: str, task_type: str, exe: str) -> None:
        self.backend = _q(backend)
        self.exe = f'"executable": {_q(exe)}, "task_type": {_q(task_type)}'
        # what comes between an event's emit time (or a span's attributes' start) and task id
        self.task_id = f', "session_id": {lines.sid}, "backend": {self.backend}, "task_id": '
        self.span_task_id = "{" + self.task_id[2:]


class _Where:
    """JSON of where a task ran (host, worker): few, and repeated by every task."""

    __slots__ = ("event_worker", "node", "span_where")

    def __init__(self, host: str | None, worker: str | None) -> None:
        self.node = "null" if host is None else _q(host)
        self.event_worker = "" if worker is None else f', "worker": {_q(worker)}'
        self.span_where = ("" if host is None else f', "host": {self.node}') + self.event_worker


class CheckpointLines:
    """Formats records into lines and keeps the counters of the metric snapshots."""

    def __init__(self, session_id: str, ids: TraceIds) -> None:
        self.session_id, self.ids = session_id, ids
        self.sid = _q(session_id)
        self.trace = f'"{hex(ids.trace_id)}"'
        self.parent = f'"{hex(ids.session_span_id)}"'
        self._trace_span = f', "trace_id": {self.trace}, "span_id": "'
        self._span_head = (
            f', "trace_id": {self.trace}, "parent_span_id": {self.parent}, "start_ns": '
        )
        # a task's event ids but their last digit: hex() of the prefix, the task's number and a
        # leading 1 that keeps the prefix's leading zeros (a format spec costs 3x more)
        self._id_base = 1 << 124 | int(ids.event_prefix, 16) << 60
        # seq -> (task id JSON, kind, submitted at, its JSON and nanoseconds, span id, event id
        # but its last digit, the last digits)
        self.pending: dict[int, tuple[str, _Kind, float, str, str, str, str, tuple[str, ...]]] = {}
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
        self._kinds: dict[tuple[str, str, str], _Kind] = {}
        self._wheres: dict[tuple[str | None, str | None], _Where] = {}

    # -- task records -----------------------------------------------------------------------------

    def add_all(self, records: list[Record], emit_time: float, out: list[str]) -> None:
        """Format ``records`` (one batch: they share ``emit_time``) into ``out``, whose entries
        are one or more lines (joined by newlines: a task's three submission events are one)."""
        self.add_flat([value for record in records for value in record], emit_time, out)

    def add_flat(
        self, flat: list[Any], emit_time: float, out: list[str], start: int = 0, stop: int = -1
    ) -> int:
        """Format a flat batch of records (see :mod:`.records`) into ``out``: the records that
        begin in ``flat[start:stop]`` (all that follow ``start`` by default). Returns where the
        next record begins."""
        emit = _num(emit_time)
        append = out.append
        pending, kinds, wheres = self.pending, self._kinds, self._wheres
        trace_span, span_head, id_base = self._trace_span, self._span_head, self._id_base
        number, numbers = number_text, numbers_text
        span_base, session_span = self.ids.span_base, self.ids.session_span_id
        submitted = started = completed = 0
        duration_sum = 0.0
        last_t, t_json, t_ns = None, "null", "null"  # tasks submitted together share their time
        i, n = start, len(flat) if stop < 0 else min(stop, len(flat))
        while i < n:
            kind = flat[i]
            if kind == "S":
                seq, uid, backend, task_type, exe, t = flat[i + 1 : i + 7]
                i += 7
                key = (backend, task_type, exe)
                shape = kinds.get(key)
                if shape is None:
                    if len(kinds) > 10000:  # every task its own executable: stop caching
                        kinds.clear()
                    shape = kinds[key] = _Kind(self, backend, task_type, exe)
                if t != last_t:
                    last_t, t_json, t_ns = t, _num(t), _scaled(t, 1e9, "%d")
                span_id = (span_base + seq + 1) & _U64
                if not span_id or span_id == session_span:
                    span_id = (span_id ^ 0x5A5A) or 1
                span = hex(span_id)
                q_uid = _q(uid)
                # a task's event ids: its number, the event's kind in the low three bits
                base = hex(id_base | ((seq >> 1) & _U60))[3:]
                nib = _NIBBLES[seq & 1]
                pending[seq] = (q_uid, shape, t, t_json, t_ns, span, base, nib)
                rest = (
                    f'{t_json}, "emit_time": {emit}{shape.task_id}{q_uid}, "node_id": null, '
                    f'"attributes": {{{shape.exe}}}{trace_span}{span}", "name": "'
                )
                append(
                    f'{{"event_id": "{base}{nib[0]}", "event_type": "TaskCreated", "event_time": '
                    f'{rest}TaskCreated", "section": "event"}}\n'
                    f'{{"event_id": "{base}{nib[1]}", "event_type": "TaskSubmitted", '
                    f'"event_time": {rest}TaskSubmitted", "section": "event"}}\n'
                    f'{{"event_id": "{base}{nib[2]}", "event_type": "TaskQueued", "event_time": '
                    f'{rest}TaskQueued", "section": "event"}}'
                )
                submitted += 1
            elif kind == "R":
                seq, at, host, worker = flat[i + 1 : i + 5]
                i += 5
                task = pending.get(seq)
                if task is None:
                    continue
                where = wheres.get((host, worker)) or self._where(host, worker)
                q_uid, shape, _, _, _, span, base, nib = task
                # a finite float (the usual case), or not
                at = number(at) if at.__class__ is float and at - at == 0.0 else _num(at)
                append(
                    f'{{"event_id": "{base}{nib[3]}", "event_type": "TaskStarted", '
                    f'"event_time": {at}, "emit_time": {emit}{shape.task_id}{q_uid}, '
                    f'"node_id": {where.node}, "attributes": {{{shape.exe}{where.event_worker}}}'
                    f'{trace_span}{span}", "name": "TaskStarted", "section": "event"}}'
                )
                started += 1
            elif kind == "E":
                seq, state, ended, at = flat[i + 1 : i + 5]
                task = pending.pop(seq, None)
                if task is None:
                    i += 9
                    continue
                # its own names: t, t_json and t_ns hold the batch's last submission time
                q_uid, shape, sub, sub_json, sub_ns, span, base, nib = task
                if (
                    state == "DONE"
                    and flat[i + 8] is None  # no extra attributes
                    and at.__class__ is float
                    and ended.__class__ is float
                    and sub.__class__ is float
                    and (ended + at + sub) - (ended + at + sub) == 0.0  # all finite
                    and -9e9 < ended < 9e9  # its nanoseconds within 64 bits
                ):
                    where = wheres.get((flat[i + 5], flat[i + 6])) or self._where(
                        flat[i + 5], flat[i + 6]
                    )
                    i += 9
                    run = ended - at
                    if run < 0:
                        run = 0.0
                    queued = at - sub
                    if not queued > 0:
                        queued = 0.0
                    duration_sum += run
                    completed += 1
                    # duration_ms to 3 decimals, as rhapsody-py rounds it (round() costs 3x more)
                    ended_s, run_s, queued_s, end_ns, duration_ms = numbers(
                        (
                            ended,
                            run,
                            queued,
                            int(ended * 1e9),
                            ((ended - sub) * 1e6 + 0.5) // 1.0 / 1e3,
                        )
                    )
                    append(
                        f'{{"event_id": "{base}{nib[4]}", "event_type": "TaskCompleted", '
                        f'"event_time": {ended_s}, "emit_time": {emit}{shape.task_id}{q_uid}, '
                        f'"node_id": {where.node}, '
                        f'"attributes": {{{shape.exe}{where.event_worker}}}, '
                        f'"duration_seconds": {run_s}{trace_span}{span}", '
                        '"name": "TaskCompleted", "section": "event"}\n'
                        f'{{"name": "task", "span_id": "{span}"{span_head}{sub_ns}, '
                        f'"end_ns": {end_ns}, "start_time_s": {sub_json}, '
                        f'"end_time_s": {ended_s}, "duration_ms": {duration_ms}, '
                        '"status_code": "OK", "status_description": null, '
                        f'"attributes": {shape.span_task_id}{q_uid}, {shape.exe}, '
                        f'"status": "completed"{where.span_where}, "queue_seconds": {queued_s}, '
                        f'"run_seconds": {run_s}}}, "section": "span"}}'
                    )
                else:
                    self._ended(seq, task, flat[i + 2 : i + 9], emit, out)
                    i += 9
            elif kind == "V":
                self.event_dict(flat[i + 1], out)
                i += 2
            elif kind == "C":
                self._count(submitted, started, completed, duration_sum)
                submitted = started = completed = 0
                duration_sum = 0.0
                append(self.metric_line(flat[i + 1]))
                i += 2
            elif kind == "Z":
                append(self.session_span_line(flat[i + 1], flat[i + 2]))
                i += 3
            elif kind == "K":  # the totals include what this batch counted so far
                submitted = started = completed = 0
                duration_sum = 0.0
                self.set_totals(*flat[i + 1 : i + 8])
                i += 8
            else:
                raise ValueError(f"unknown telemetry record {kind!r}")
        self._count(submitted, started, completed, duration_sum)
        return i

    def _count(self, submitted: int, started: int, completed: int, duration_sum: float) -> None:
        """Add what the common path counted (it counts in local variables: cheaper)."""
        counts = self.counts
        counts["tasks_submitted"] += submitted
        counts["tasks_started"] += started
        counts["tasks_completed"] += completed
        self.duration_count += completed
        self.duration_sum += duration_sum

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

    def _where(self, host: str | None, worker: str | None) -> _Where:
        """A place not in the cache yet: its JSON made and kept."""
        if len(self._wheres) > 10000:
            self._wheres.clear()
        where = self._wheres[(host, worker)] = _Where(host, worker)
        return where

    def _ended(
        self,
        seq: int,
        task: tuple[str, _Kind, float, str, str, str, str, tuple[str, ...]],
        fields: list[Any],
        emit: str,
        out: list[str],
    ) -> None:
        """The end of a task off the common path (see the module's docstring)."""
        state, ended, started, host, worker, error_type, extra = fields
        q_uid, shape, submitted, t_json, t_ns, span_id, base, nib = task
        where = self._wheres.get((host, worker)) or self._where(host, worker)
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
            duration_json = _num(duration)
            queued = started - submitted
            span_times = (
                f', "queue_seconds": {_num(queued if queued > 0 else 0.0)}, '
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
        ended_json = _num(ended)
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
            f'"start_ns": {t_ns}, "end_ns": {_scaled(ended, 1e9, "%d")}, '
            f'"start_time_s": {t_json}, "end_time_s": {ended_json}, '
            f'"duration_ms": {_scaled(ended - submitted, 1e3, "%.3f")}, '
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
