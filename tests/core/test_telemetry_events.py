"""Telemetry events: rhapsody-py 0.6's schema, custom events, and the ids records share."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.telemetry import (
    BaseEvent,
    ResourceUpdate,
    SessionEnded,
    TaskCanceled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskSubmitted,
    define_event,
    make_event,
)
from rhapsody.telemetry.records import TraceIds

BASE = [
    "event_id",
    "event_type",
    "event_time",
    "emit_time",
    "session_id",
    "backend",
    "task_id",
    "node_id",
    "attributes",
]


def test_field_names_and_types_are_rhapsody_pys() -> None:
    assert [f.name for f in dataclasses.fields(BaseEvent)] == BASE
    assert [f.name for f in dataclasses.fields(TaskFailed)] == [
        *BASE,
        "duration_seconds",
        "error_type",
    ]
    assert [f.name for f in dataclasses.fields(SessionEnded)] == [*BASE, "duration_seconds"]
    for cls in (TaskCreated, TaskSubmitted, TaskQueued, TaskStarted, TaskCompleted, TaskCanceled):
        event = make_event(cls, session_id="s", backend="b", task_id="t")
        assert event.event_type == cls.__name__ and len(event.event_id) == 32
        assert event.emit_time == event.event_time
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.backend = "x"  # type: ignore[misc]


def test_resource_update_scope_follows_gpu_id() -> None:
    node = make_event(ResourceUpdate, session_id="s", backend="b", cpu_percent=5.0)
    gpu = make_event(ResourceUpdate, session_id="s", backend="b", gpu_id=1, gpu_percent=50.0)
    assert (node.resource_scope, gpu.resource_scope) == ("per_node", "per_gpu")


def test_define_event_checks_its_arguments() -> None:
    Custom = define_event("app.Custom", score=float, n=int, label=(str, "x"), flag=bool)
    event = make_event(Custom, session_id="s", backend="app", score=1.5, event_time=3.0)
    assert (event.score, event.n, event.label, event.flag) == (1.5, 0, "x", False)
    assert event.event_type == "app.Custom" and event.event_time == 3.0
    with pytest.raises(ValueError, match=r"name: expected a namespaced name like 'myapp.Flat'"):
        define_event("Flat")
    with pytest.raises(ValueError, match=r"fields \['backend', 'task_id'\] are fields of every"):
        define_event("app.Bad", backend=str, task_id=str)
    with pytest.raises(ValueError, match=r"field 'x': expected a type or \(type, default\)"):
        define_event("app.Bad", x=(int, 1, 2))


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=200, unique=True))
def test_ids_are_unique_and_well_formed(seqs: list[int]) -> None:
    ids = TraceIds.new()
    spans = {ids.task_span_id(s) for s in seqs}
    assert len(spans) == len(seqs) and 0 not in spans and ids.session_span_id not in spans
    events = {ids.task_event_id(s, k) for s in seqs for k in range(5)}
    assert len(events) == 5 * len(seqs)
    assert all(len(e) == 32 and int(e, 16) >= 0 for e in events)
    assert ids.other_event_id(0) not in events
