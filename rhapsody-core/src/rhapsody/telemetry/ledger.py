"""What telemetry keeps of a session's tasks, and the records of each batch of their changes.

Per task it keeps a sequence number while the task runs (its span and event ids follow from
it), and, once it ended, the task itself (the spans, metrics and summary are built from the
tasks when read): nothing else per task outlives a batch, because what accumulates is what makes
the collector run.

A batch of changes is taken in one of two ways. With subscribers, a task at a time, into the
per-task records they are made events from (:mod:`.records`). Without (the checkpoint file
alone, or nothing), a kind of change at a time -- the batch's submissions, then its starts, then
its ends (a task's changes keep their order) -- by C-level maps over lists of tasks, into the
checkpoint writers' column records (:mod:`.task_columns`). That costs the session's thread what
the per-task loop does (~1.6 µs a task in-run on the development machine, both ways: a pass over
a batch's tasks per field costs as much as the loop's Python steps), and the writer a third less
(numbers and ids formatted a column at a time), enough for one writer to keep up on 2 cores.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import compress, repeat
from operator import is_
from typing import TYPE_CHECKING, Any

from ..api.states import TaskState
from .line_parts import known_only
from .records import error_type_of, executable_of, extra_attributes, has_usage
from .task_columns import completed_records, started_records, submitted_records

if TYPE_CHECKING:
    from ..api.task import BaseTask

_SUBMITTED, _RUNNING, _DONE, _FAILED = (
    TaskState.SUBMITTED,
    TaskState.RUNNING,
    TaskState.DONE,
    TaskState.FAILED,
)
_VALUE = {state: state.value for state in TaskState}  # Enum.value is a slow descriptor
_ENDS = {state: state is not _SUBMITTED and state is not _RUNNING for state in TaskState}


class TaskLedger:
    """Sequence numbers, running and ended tasks, and counts of one session's telemetry."""

    def __init__(self) -> None:
        self.next_seq = 0
        self.seq: dict[BaseTask, int] = {}  # tasks not ended
        # tasks that ended, their sequence numbers, and whether they were seen running
        self.ended_tasks: list[BaseTask] = []
        self.ended_seqs = array("q")
        self.ended_ran = bytearray()
        # submitted, and by terminal state (the state's value)
        self.counts: dict[str, int] = dict.fromkeys(("submitted", "DONE", "FAILED", "CANCELED"), 0)
        self.running: set[BaseTask] = set()
        # metrics catch up from here
        self.unmetered_submitted: list[BaseTask] = []
        self.unmetered_started: list[BaseTask] = []

    # -- a batch in columns (no subscribers) -----------------------------------------------------

    def in_columns(
        self,
        tasks: Sequence[BaseTask],
        states: Sequence[TaskState],
        outs: list[list[Any]],
        shared: list[Any],
        keep: bool,
    ) -> None:
        """Take a batch a kind of change at a time; if ``keep``, column records into ``outs``
        (submissions, one list per writer) and ``shared`` (starts and ends, for every writer:
        ``outs[0]`` itself where there is one)."""
        if not isinstance(tasks, list) or not isinstance(states, list):  # (the session's are)
            tasks, states = list(tasks), list(states)
        total = len(states)
        submitted, running = states.count(_SUBMITTED), states.count(_RUNNING)
        if submitted:
            self._submitted(_of_state(tasks, states, _SUBMITTED, submitted), outs, keep)
        if running:
            self._started(_of_state(tasks, states, _RUNNING, running), shared, keep)
        if submitted + running < total:
            if submitted + running:
                ending = list(map(_ENDS.__getitem__, states))
                tasks = list(compress(tasks, ending))
                states = list(compress(states, ending))
            self._ended(tasks, states, shared, keep)

    def _submitted(self, tasks: list[BaseTask], outs: list[list[Any]], keep: bool) -> None:
        first = self.next_seq
        self.next_seq = first + len(tasks)
        self.seq.update(zip(tasks, range(first, self.next_seq), strict=True))
        self.unmetered_submitted += tasks
        self.counts["submitted"] += len(tasks)
        if keep:
            submitted_records(outs, first, tasks)

    def _started(self, tasks: list[BaseTask], shared: list[Any], keep: bool) -> None:
        seqs = list(map(self.seq.get, tasks))
        if None in seqs:  # tasks submitted before telemetry started
            seqs, tasks = known_only(seqs, tasks)
        self.running.update(tasks)
        self.unmetered_started += tasks
        if keep and tasks:
            started_records(shared, seqs, tasks)  # type: ignore[arg-type]

    def _ended(
        self,
        tasks: list[BaseTask],
        states: list[TaskState],
        shared: list[Any],
        keep: bool,
    ) -> None:
        found = list(map(self.seq.pop, tasks, repeat(None)))
        if None in found:  # tasks submitted before telemetry started
            found, tasks, states = known_only(found, tasks, states)
            if not tasks:
                return
        seqs: list[int] = found  # type: ignore[assignment]
        running = self.running
        self.ended_ran += bytes(map(running.__contains__, tasks))
        running.difference_update(tasks)
        self.ended_tasks += tasks
        self.ended_seqs.extend(seqs)
        counts = self.counts
        done, failed = states.count(_DONE), states.count(_FAILED)
        counts["DONE"] += done
        counts["FAILED"] += failed
        counts["CANCELED"] += len(states) - done - failed
        if not keep:
            return
        if done == len(states) and not any(map(has_usage, set(map(type, tasks)))):
            completed_records(shared, seqs, tasks)
            return
        for seq, task, state in zip(seqs, tasks, states, strict=True):  # failures, cancels,
            shared += _end_record(seq, task, state)  # tokens: a record per task

    # -- a batch a task at a time (subscribers) ------------------------------------------------

    def one_by_one(
        self, tasks: Sequence[BaseTask], states: Sequence[TaskState], outs: list[list[Any]]
    ) -> None:
        """Take a batch a change at a time; per-task records into ``outs`` (flat, one list per
        writer)."""
        parts = len(outs)
        seqs, running = self.seq, self.running
        submitted, started = self.unmetered_submitted.append, self.unmetered_started.append
        ended_tasks, ended_seqs = self.ended_tasks.append, self.ended_seqs.append
        ended_ran = self.ended_ran.append
        seq = first = self.next_seq
        done = failed = canceled = 0
        for task, state in zip(tasks, states, strict=True):
            if state is _SUBMITTED:
                seqs[task] = seq
                submitted(task)
                outs[seq % parts].extend(
                    (
                        "S",
                        seq,
                        task.uid,
                        task.backend,
                        type(task).__name__,
                        executable_of(task),
                        task.submitted_at,
                    )
                )
                seq += 1
            elif state is _RUNNING:
                mine = seqs.get(task)
                if mine is None:
                    continue
                running.add(task)
                started(task)
                outs[mine % parts].extend(("R", mine, task.started_at, task.host, task.worker))
            else:
                mine = seqs.pop(task, None)
                if mine is None:
                    continue
                try:  # one step where it ran (the usual case), not a look-up and a removal
                    running.remove(task)
                    ran = True
                except KeyError:
                    ran = False
                ended_tasks(task)
                ended_seqs(mine)
                ended_ran(ran)
                if state is _DONE:
                    done += 1
                elif state is _FAILED:
                    failed += 1
                else:
                    canceled += 1
                outs[mine % parts].extend(_end_record(mine, task, state))
        counts = self.counts
        counts["submitted"] += seq - first
        counts["DONE"] += done
        counts["FAILED"] += failed
        counts["CANCELED"] += canceled
        self.next_seq = seq


def _of_state(
    tasks: list[BaseTask], states: list[TaskState], state: TaskState, count: int
) -> list[BaseTask]:
    """The tasks whose change is to ``state`` (``count`` of them)."""
    if count == len(tasks):
        return tasks
    return list(compress(tasks, map(is_, states, repeat(state))))


def _end_record(seq: int, task: BaseTask, state: TaskState) -> tuple[Any, ...]:
    return (
        "E",
        seq,
        _VALUE[state],
        task.ended_at,
        task.started_at,
        task.host,
        task.worker,
        error_type_of(task) if state is _FAILED else None,
        extra_attributes(task),
    )
