"""A batch of task changes taken in columns (no subscribers) keeps what taking it a change at a
time keeps, and gives the checkpoint file the same lines, whatever the tasks and the batches."""

from __future__ import annotations

import functools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.api import AITask, ComputeTask
from rhapsody.api.states import TaskState
from rhapsody.telemetry.ledger import TaskLedger
from rhapsody.telemetry.lines import COLUMN_TASKS, CheckpointLines
from rhapsody.telemetry.records import executable_of
from rhapsody.telemetry.task_columns import executables
from rhapsody.telemetry.trace_ids import TraceIds

T0 = 1_700_000_000.0


def work() -> None:
    return None


class Callable:
    """A callable without a ``__name__``."""

    def __call__(self) -> None:
        return None


MAKERS = [
    lambda: ComputeTask(function=work),
    lambda: ComputeTask(function=lambda: None),
    lambda: ComputeTask(function=functools.partial(work)),
    lambda: ComputeTask(function=Callable()),
    lambda: ComputeTask(executable="/bin/true"),
    lambda: AITask(prompt="hi"),  # carries usage: its ends are a record each
]
ENDS = [TaskState.DONE, TaskState.DONE, TaskState.FAILED, TaskState.CANCELED]


def _set(task: Any, **fields: Any) -> None:
    for name, value in fields.items():
        object.__setattr__(task, name, value)


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[Any], list[list[tuple[Any, TaskState]]]]:
    """Tasks, and their changes cut into batches: submitted (most), maybe started, maybe
    ended; tasks of a batch interleaved."""
    tasks, queues = [], []
    for _ in range(draw(st.integers(1, 40))):
        task = draw(st.sampled_from(MAKERS))()
        at = T0 + draw(st.integers(0, 50)) / 4  # tasks submitted together share a time
        end = draw(st.sampled_from(ENDS))
        _set(
            task,
            backend=draw(st.sampled_from(["concurrent", "dask"])),
            submitted_at=at,
            started_at=at + 0.5,
            ended_at=at + draw(st.floats(0.5, 9.0)),
            host=draw(st.sampled_from([None, "node-1"])),
            worker=draw(st.sampled_from([None, "thread-1", "thread-2"])),
            state=end,
            exception=RuntimeError("boom") if end is TaskState.FAILED else None,
        )
        changes = [TaskState.SUBMITTED] if draw(st.integers(0, 9)) else []  # or before telemetry
        if draw(st.booleans()) or draw(st.booleans()):
            changes.append(TaskState.RUNNING)
        if draw(st.booleans()) or draw(st.booleans()):
            changes.append(end)
        tasks.append(task)
        queues.append([(task, state) for state in changes])
    flat: list[tuple[Any, TaskState]] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        flat.append(queue.pop(0))
    cuts = sorted(draw(st.lists(st.integers(0, len(flat)), max_size=4)))
    return tasks, [flat[a:b] for a, b in zip([0, *cuts], [*cuts, len(flat)], strict=True)]


def _file_lines(ids: TraceIds, streams: list[list[Any]]) -> list[dict[str, Any]]:
    """What writers (one per stream of (batch number, records)) write, parsed, in a stable
    order."""
    parsed = []
    for stream in streams:
        lines, text = CheckpointLines("session", ids), []
        for emit, flat in stream:
            lines.add_flat(flat, T0 + emit, text)
        parsed += [json.loads(line) for entry in text for line in entry.split("\n")]
    return sorted(parsed, key=lambda line: json.dumps(line, sort_keys=True))


def _state(ledger: TaskLedger) -> tuple[Any, ...]:
    return (
        ledger.next_seq,
        ledger.seq,
        ledger.ended_tasks,
        list(ledger.ended_seqs),
        bytes(ledger.ended_ran),
        ledger.counts,
        ledger.running,
        ledger.unmetered_submitted,
        ledger.unmetered_started,
    )


@settings(max_examples=150, deadline=None)
@given(run=runs(), parts=st.integers(1, 3))
def test_columns_keep_and_write_what_one_change_at_a_time_does(run: Any, parts: int) -> None:
    _, batches = run
    ids = TraceIds.new()
    by_task, by_column = TaskLedger(), TaskLedger()
    streams_by_task: list[list[Any]] = [[] for _ in range(parts)]
    streams_by_column: list[list[Any]] = [[] for _ in range(parts)]
    for number, batch in enumerate(batches):
        tasks = [task for task, _ in batch]
        states = [state for _, state in batch]
        outs: list[list[Any]] = [[] for _ in range(parts)]
        by_task.one_by_one(tasks, states, outs)
        for stream, out in zip(streams_by_task, outs, strict=True):
            stream.append((number, out))
        outs = [[] for _ in range(parts)]
        shared = outs[0] if parts == 1 else []  # as the manager does
        by_column.in_columns(tasks, states, outs, shared, keep=True)
        for stream, out in zip(streams_by_column, outs, strict=True):
            stream.append((number, out))
            if shared is not outs[0]:
                stream.append((number, shared))  # to every writer, after its own records
        assert _state(by_column) == _state(by_task)
    written = _file_lines(ids, streams_by_column)
    assert written == _file_lines(ids, streams_by_task)
    assert len(written) >= 3 * by_task.counts["submitted"]  # three lines per submission


def test_without_the_file_the_columns_keep_the_same_and_make_no_records() -> None:
    tasks = [MAKERS[0]() for _ in range(3)]
    for task in tasks:
        _set(task, submitted_at=T0, started_at=T0, ended_at=T0 + 1, state=TaskState.DONE)
    states = [TaskState.SUBMITTED] * 3 + [TaskState.RUNNING] * 3 + [TaskState.DONE] * 3
    ledger, outs = TaskLedger(), [[]]
    ledger.in_columns(tasks * 3, states, outs, outs[0], keep=False)
    assert outs == [[]]
    assert ledger.counts == {"submitted": 3, "DONE": 3, "FAILED": 0, "CANCELED": 0}
    assert ledger.ended_tasks == tasks and bytes(ledger.ended_ran) == b"\x01\x01\x01"
    assert not ledger.seq and not ledger.running


def test_a_large_batch_is_one_record_per_writer_and_the_writer_formats_it_in_parts() -> None:
    tasks = [MAKERS[0]() for _ in range(2 * COLUMN_TASKS + 5)]
    for task in tasks:
        _set(task, submitted_at=T0)
    outs: list[list[Any]] = [[], []]
    shared: list[Any] = []
    TaskLedger().in_columns(tasks, [TaskState.SUBMITTED] * len(tasks), outs, shared, keep=True)
    assert not shared  # submissions go to their own writer
    for part, out in enumerate(outs):
        kind, first, step, uids = out[:4]
        assert (kind, first, step, len(out)) == ("s", part, 2, 8)
        assert uids == [task.uid for task in tasks[part::2]]
        lines, at, steps, text = CheckpointLines("session", TraceIds.new()), 0, 0, []
        while at < len(out):  # as the writer does: a few hundred entries at a time
            entries: list[str] = []
            at = lines.add_flat(out, T0, entries, at, most=COLUMN_TASKS)
            assert len(entries) <= COLUMN_TASKS
            text += entries
            steps += 1
        assert steps == 2 and lines.counts["tasks_submitted"] == len(uids)
        ids = [json.loads(entry.split("\n")[0])["task_id"] for entry in text]
        assert ids == uids


@given(makers=st.lists(st.sampled_from(MAKERS), min_size=1, max_size=6))
def test_executables_of_a_column_are_each_tasks_own(makers: list[Any]) -> None:
    tasks = [make() for make in makers]
    assert executables(tasks) == [executable_of(task) for task in tasks]
