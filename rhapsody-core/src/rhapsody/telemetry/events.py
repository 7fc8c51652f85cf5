"""Telemetry events: what happened, to which task, when and where (rhapsody-py 0.6's schema).

Events are frozen dataclasses, so one object can go to every subscriber. A task's events are
``TaskCreated``, ``TaskSubmitted``, ``TaskQueued`` (the session registers, routes and hands a task
to its backend in one step: the three share its ``submitted_at``), ``TaskStarted`` and one of
``TaskCompleted`` / ``TaskFailed`` / ``TaskCanceled``. ``event_time`` is when it happened (from
the task's own timestamps), ``emit_time`` when telemetry passed it on; both are wall-clock seconds.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

# Fields every event has; a custom event may not redefine them.
BASE_FIELDS = (
    "event_id",
    "event_type",
    "event_time",
    "emit_time",
    "session_id",
    "backend",
    "task_id",
    "node_id",
    "attributes",
)


@dataclass(frozen=True)
class BaseEvent:
    """Common fields: ``event_id`` (32 hex digits), ``event_type`` (the class's name),
    ``event_time``/``emit_time`` (wall seconds), ``session_id``, ``backend``, ``task_id`` (None
    for session-level events), ``node_id`` (host or worker, when known) and ``attributes``
    (``executable``, ``task_type``, ``error_type``... as plain values)."""

    event_id: str
    event_type: str
    event_time: float
    emit_time: float
    session_id: str
    backend: str
    task_id: str | None = None
    node_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionStarted(BaseEvent):
    """Telemetry started for a session."""

    event_type: str = field(default="SessionStarted", init=False)


@dataclass(frozen=True)
class SessionEnded(BaseEvent):
    """Telemetry stopped: the session closed. ``duration_seconds`` since it started."""

    duration_seconds: float = 0.0
    event_type: str = field(default="SessionEnded", init=False)


@dataclass(frozen=True)
class TaskCreated(BaseEvent):
    """A task was registered with the session."""

    event_type: str = field(default="TaskCreated", init=False)


@dataclass(frozen=True)
class TaskSubmitted(BaseEvent):
    """A task was routed to its backend (``backend`` is set)."""

    event_type: str = field(default="TaskSubmitted", init=False)


@dataclass(frozen=True)
class TaskQueued(BaseEvent):
    """A task was handed to its backend's queue."""

    event_type: str = field(default="TaskQueued", init=False)


@dataclass(frozen=True)
class TaskStarted(BaseEvent):
    """A task started running (its ``started_at``)."""

    event_type: str = field(default="TaskStarted", init=False)


@dataclass(frozen=True)
class TaskCompleted(BaseEvent):
    """A task ended DONE; ``duration_seconds`` is its run time (``ended_at - started_at``)."""

    duration_seconds: float = 0.0
    event_type: str = field(default="TaskCompleted", init=False)


@dataclass(frozen=True)
class TaskFailed(BaseEvent):
    """A task ended FAILED; ``error_type`` is its exception's class name."""

    duration_seconds: float = 0.0
    error_type: str = "unknown"
    event_type: str = field(default="TaskFailed", init=False)


@dataclass(frozen=True)
class TaskCanceled(BaseEvent):
    """A task ended CANCELED (0.0 s and ``incomplete_lifecycle`` when it never ran)."""

    duration_seconds: float = 0.0
    event_type: str = field(default="TaskCanceled", init=False)


@dataclass(frozen=True)
class ResourceUpdate(BaseEvent):
    """A resource sample of one node (``gpu_id`` None: ``resource_scope="per_node"``) or one
    GPU (``"per_gpu"``). Percentages are point-in-time; disk and network figures are bytes since
    the previous sample. Backend-specific figures (a vLLM replica's queued requests, say) are in
    ``attributes``."""

    cpu_percent: float | None = None
    memory_percent: float | None = None
    gpu_percent: float | None = None
    gpu_id: int | None = None
    disk_read_bytes: float | None = None
    disk_write_bytes: float | None = None
    net_sent_bytes: float | None = None
    net_recv_bytes: float | None = None
    event_type: str = field(default="ResourceUpdate", init=False)
    resource_scope: str = field(default="per_node", init=False)

    def __post_init__(self) -> None:
        if self.gpu_id is not None:
            object.__setattr__(self, "resource_scope", "per_gpu")


TASK_EVENTS: tuple[type[BaseEvent], ...] = (
    TaskCreated,
    TaskSubmitted,
    TaskQueued,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
    TaskCanceled,
)

_PRIMITIVE_DEFAULTS: dict[Any, Any] = {float: 0.0, int: 0, str: "", bool: False}


def define_event(name: str, **fields: Any) -> type[BaseEvent]:
    """A new event class, for events of your own (``make_event`` builds them, ``emit`` sends).

    ``name`` must be namespaced (``"myapp.Checkpointed"``) so that names of different tools do
    not collide; each field is a type (its zero value is the default) or ``(type, default)``.
    """
    if not isinstance(name, str) or "." not in name or name.startswith(".") or name.endswith("."):
        raise ValueError(
            f"define_event: name: expected a namespaced name like 'myapp.{name}', got {name!r}"
        )
    shadowing = sorted(set(fields) & set(BASE_FIELDS))
    if shadowing:
        raise ValueError(
            f"define_event: fields {shadowing} are fields of every event; choose other names"
        )
    specs: list[tuple[str, Any, Any]] = []
    for fname, spec in fields.items():
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise ValueError(
                    f"define_event: field {fname!r}: expected a type or (type, default), "
                    f"got {spec!r}"
                )
            ftype, default = spec
        else:
            ftype, default = spec, _PRIMITIVE_DEFAULTS.get(spec)
        specs.append((fname, ftype, field(default=default)))
    specs.append(("event_type", str, field(default=name, init=False)))
    return dataclasses.make_dataclass(name, specs, bases=(BaseEvent,), frozen=True)


def new_event_id() -> str:
    return os.urandom(16).hex()


def make_event(cls: type[BaseEvent], *, session_id: str, backend: str, **kwargs: Any) -> Any:
    """An event of ``cls`` with a new ``event_id`` and ``emit_time`` now (``event_time`` too,
    unless given)."""
    now = time.time()
    return cls(
        event_id=kwargs.pop("event_id", None) or new_event_id(),
        event_time=kwargs.pop("event_time", now),
        emit_time=kwargs.pop("emit_time", now),
        session_id=session_id,
        backend=backend,
        **kwargs,
    )


def event_to_dict(event: BaseEvent) -> dict[str, Any]:
    """Every field of ``event`` (``event_type`` included), shallow."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
