"""Plain-value views of the tasks telemetry saw: ``task_spans()``, ``summary()``'s run-time
statistics, and what a resource sample becomes (an event and the latest reading)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..api.states import TaskState
from .events import BaseEvent, ResourceUpdate, make_event
from .records import error_type_of, executable_of
from .trace_ids import TraceIds

if TYPE_CHECKING:
    from ..api.task import BaseTask
    from .sampling import ResourceSample

_STATUS = {"DONE": "completed", "FAILED": "failed"}


def ended_run_seconds(tasks: Iterable[BaseTask]) -> float:
    """The run time of ended tasks, summed as the checkpoint writer sums it (a task that never
    ran adds nothing)."""
    total = 0.0
    for task in tasks:
        started, ended = task.started_at, task.ended_at
        if started is not None and ended is not None and ended > started:
            total += ended - started
    return total


def task_span_dicts(ids: TraceIds, ended: Iterable[tuple[int, BaseTask]]) -> list[dict[str, Any]]:
    """One dict per ended ``(seq, task)``, in rhapsody-py's ``task_spans()`` layout."""
    out = []
    trace = hex(ids.trace_id)
    for seq, task in ended:
        submitted, ended_at = task.submitted_at or 0.0, task.ended_at or 0.0
        record: dict[str, Any] = {
            "task_id": task.uid,
            "backend": task.backend,
            "executable": executable_of(task),
            "task_type": type(task).__name__,
            "status": _STATUS.get(task.state.value, "canceled"),
            "duration_seconds": round(max(ended_at - submitted, 0.0), 6),
            "span_id": hex(ids.task_span_id(seq)),
            "trace_id": trace,
        }
        if task.state is TaskState.FAILED:
            record["error_type"] = error_type_of(task)
        if task.started_at is None:
            record["incomplete_lifecycle"] = True
        out.append(record)
    return out


def run_time_stats(tasks: Iterable[BaseTask]) -> dict[str, float]:
    """Total, mean, min and max run time of the tasks that ran (empty if none did)."""
    durations = [
        task.ended_at - task.started_at
        for task in tasks
        if task.started_at is not None and task.ended_at is not None
    ]
    if not durations:
        return {}
    return {
        "total_seconds": round(sum(durations), 6),
        "mean_seconds": round(sum(durations) / len(durations), 6),
        "min_seconds": round(min(durations), 6),
        "max_seconds": round(max(durations), 6),
    }


def resource_event(
    session_id: str, backend: str, sample: ResourceSample
) -> tuple[BaseEvent, dict[str, Any] | None]:
    """The ``ResourceUpdate`` of a sample, and for a node's sample (not a GPU's) its reading as
    ``summary()["resources"]`` shows it."""
    fields = attrs.asdict(sample, recurse=False)  # the event's resource fields, by name
    fields["attributes"] = dict(fields["attributes"])  # the event's own
    event = make_event(ResourceUpdate, session_id=session_id, backend=backend, **fields)
    if sample.gpu_id is not None:
        return event, None
    del fields["gpu_id"]
    attributes = fields.pop("attributes")
    return event, {"backend": backend, **fields, **attributes}
