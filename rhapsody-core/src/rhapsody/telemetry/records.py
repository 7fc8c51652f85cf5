"""What telemetry keeps of a task: compact record tuples, their ids, and events built from them.

The session reports ``(task, state)`` changes; :func:`record_of` turns each into a tuple of
plain values, cheap to build and to pickle (to the checkpoint writer process). Span and event ids
are computed from a task's sequence number, so that the writer, the subscribers and the
OpenTelemetry spans built later agree on them without passing them around.

Records (``seq`` numbers tasks in submission order)::

    ("S", seq, uid, backend, task_type, executable, submitted_at)
    ("R", seq, started_at, host, worker)
    ("E", seq, state, ended_at, started_at, host, worker, error_type, extra_attributes)

and, for the writer, ``("V", event_dict)``, ``("C", time)`` (a metric snapshot), ``("Z", start,
end)`` (the session span), ``("H", session_id, ids)`` (the header) and ``("K", submitted,
started, completed, failed, canceled, ended, run_seconds)`` (the session's totals, for the first
of several writers: see :mod:`.checkpoint_file`). The session's process
sends them flattened into one list per batch (:func:`split_records` undoes it). Task records are
what subscribers get; the checkpoint writers alone get a batch's tasks as column records
instead (:mod:`.task_columns`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ..api.states import TaskState
from .events import (
    BaseEvent,
    TaskCanceled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskSubmitted,
)
from .trace_ids import TraceIds as TraceIds

if TYPE_CHECKING:
    from ..api.task import BaseTask

Record = tuple[Any, ...]
WIDTH = {"S": 7, "R": 5, "E": 9, "V": 2, "C": 2, "Z": 3, "H": 3, "K": 8}


def split_records(flat: list[Any]) -> Iterator[Record]:
    """The records of a flat batch (``["S", 0, ..., "R", 0, ...]``)."""
    i, n = 0, len(flat)
    while i < n:
        width = WIDTH[flat[i]]
        yield tuple(flat[i : i + width])
        i += width


# Per-task event kinds, the low bits of a task event's id.
CREATED, SUBMITTED, QUEUED, STARTED, ENDED = range(5)


def executable_of(task: Any) -> str:
    """What a task runs, in a word: its executable, its function's name, or its model."""
    exe = getattr(task, "executable", None)
    if exe:
        return str(exe)
    fn = getattr(task, "function", None)
    if fn is not None:
        return str(getattr(fn, "__name__", None) or fn)
    return str(getattr(task, "model", None) or "")


def error_type_of(task: BaseTask) -> str:
    exc = task.exception
    return type(exc).__name__ if exc is not None else "unknown"


_USAGE_BY_CLASS: dict[type, bool] = {}
_FAILED = TaskState.FAILED  # an enum member looked up once, not per task


def has_usage(cls: type) -> bool:
    """Whether tasks of ``cls`` carry ``usage`` (an inference request's tokens)."""
    known = _USAGE_BY_CLASS.get(cls)
    if known is None:
        known = _USAGE_BY_CLASS[cls] = hasattr(cls, "usage")
    return known


def extra_attributes(task: Any) -> dict[str, Any] | None:
    """Figures only some tasks have: a failure's message, an inference request's tokens."""
    # whether tasks of this class carry ``usage``, asked once per class: reading a missing
    # attribute raises and catches an AttributeError, the dearest step of a task's end
    usage_known = _USAGE_BY_CLASS.get(task.__class__)
    failed = task.state is _FAILED
    if usage_known is False and not failed:  # the common case: one look-up, one comparison
        return None
    with_usage = has_usage(task.__class__) if usage_known is None else usage_known
    if not failed and not with_usage:
        return None
    extra: dict[str, Any] = {}
    if failed and task.exception is not None:
        text = str(task.exception).strip().splitlines()
        extra["error"] = f"{type(task.exception).__name__}: {text[0][:200] if text else ''}"
    usage = task.usage if with_usage else None
    if usage:
        extra.update({k: usage[k] for k in ("prompt_tokens", "completion_tokens") if k in usage})
    return extra or None


# -- events from records (the subscribers' view; the writer formats the same fields) -------------


@attrs.define(slots=True)
class TaskInfo:
    """What the submission record said of a task, kept until it ends."""

    uid: str
    backend: str
    task_type: str
    executable: str
    submitted_at: float


class EventBuilder:
    """Turns records into the events they stand for (subscribers receive these)."""

    def __init__(self, session_id: str, ids: TraceIds) -> None:
        self.session_id, self.ids = session_id, ids
        self.pending: dict[int, TaskInfo] = {}

    def events(self, record: Record, emit_time: float) -> list[BaseEvent]:
        kind, seq = record[0], record[1]
        ids, sid = self.ids, self.session_id
        if kind == "S":
            _, _, uid, backend, task_type, exe, t = record
            self.pending[seq] = TaskInfo(uid, backend, task_type, exe, t)
            attributes = {"executable": exe, "task_type": task_type}
            return [
                cls(
                    event_id=ids.task_event_id(seq, k),
                    event_time=t,
                    emit_time=emit_time,
                    session_id=sid,
                    backend=backend,
                    task_id=uid,
                    attributes=dict(attributes),
                )
                for cls, k in (
                    (TaskCreated, CREATED),
                    (TaskSubmitted, SUBMITTED),
                    (TaskQueued, QUEUED),
                )
            ]
        info = self.pending.get(seq)
        if info is None:
            return []
        attributes = {"executable": info.executable, "task_type": info.task_type}
        if kind == "R":
            _, _, started, host, worker = record
            if worker is not None:
                attributes["worker"] = worker
            return [
                TaskStarted(
                    event_id=ids.task_event_id(seq, STARTED),
                    event_time=started,
                    emit_time=emit_time,
                    session_id=sid,
                    backend=info.backend,
                    task_id=info.uid,
                    node_id=host,
                    attributes=attributes,
                )
            ]
        _, _, state, ended, started, host, worker, error_type, extra = record
        del self.pending[seq]
        duration, attributes = run_time_and_attributes(attributes, started, ended, worker, extra)
        common = {
            "event_id": ids.task_event_id(seq, ENDED),
            "event_time": ended,
            "emit_time": emit_time,
            "session_id": sid,
            "backend": info.backend,
            "task_id": info.uid,
            "node_id": host,
            "duration_seconds": duration,
        }
        if state == "DONE":
            return [TaskCompleted(attributes=attributes, **common)]
        if state == "FAILED":
            attributes["error_type"] = error_type
            return [TaskFailed(attributes=attributes, error_type=error_type, **common)]
        return [TaskCanceled(attributes=attributes, **common)]


def run_time_and_attributes(
    attributes: dict[str, Any],
    started: float | None,
    ended: float,
    worker: str | None,
    extra: dict[str, Any] | None,
) -> tuple[float, dict[str, Any]]:
    """A terminal event's ``duration_seconds`` and attributes (``incomplete_lifecycle`` when
    the task never ran, as rhapsody-py marks it)."""
    if worker is not None:
        attributes["worker"] = worker
    if extra:
        attributes.update(extra)
    if started is None:
        attributes["incomplete_lifecycle"] = True
        return 0.0, attributes
    return max(ended - started, 0.0), attributes


_STATUS = {"DONE": "completed", "FAILED": "failed", "CANCELED": "canceled"}


def span_status(state: str) -> str:
    return _STATUS[state]


def span_attributes(
    session_id: str,
    info: TaskInfo,
    state: str,
    error_type: str | None,
    host: str | None,
    worker: str | None,
    started: float | None,
    ended: float,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """A task span's attributes (the same in the checkpoint file and in ``read_traces()``)."""
    attributes: dict[str, Any] = {
        "session_id": session_id,
        "backend": info.backend,
        "task_id": info.uid,
        "executable": info.executable,
        "task_type": info.task_type,
        "status": _STATUS[state],
    }
    if state == "FAILED":
        attributes["error_type"] = error_type or "unknown"
    if host is not None:
        attributes["host"] = host
    if worker is not None:
        attributes["worker"] = worker
    if started is None:
        attributes["incomplete_lifecycle"] = True
    else:
        attributes["queue_seconds"] = max(started - info.submitted_at, 0.0)
        attributes["run_seconds"] = max(ended - started, 0.0)
    if extra:
        attributes.update(extra)
    return attributes
