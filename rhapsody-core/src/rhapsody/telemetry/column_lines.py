"""Task lines made a column at a time: the submissions, starts or completions of many tasks.

The session's process sends a batch's tasks of one kind of change as one record of lists (see
:mod:`.task_columns`): reading a field of a whole list of tasks is one C-level ``map`` there,
and here the numbers of a whole column are one orjson call, the ids one ``map`` -- the per-task
work left is the f-string of its lines. Per-task records (:mod:`.records`) are gathered into the
same columns by :meth:`.lines.CheckpointLines.add_flat`: one formatting for both.

A completion whose numbers are not finite floats (or not within 64-bit nanoseconds) takes the
general path of :mod:`.lines`, which writes the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from json.encoder import encode_basestring_ascii as _q
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .line_parts import NIBBLES, U60, Kind, known_only, num, place_texts, scaled

if TYPE_CHECKING:
    from .lines import CheckpointLines

_SUBMITTED_AT = itemgetter(2)  # of a pending task's tuple (see CheckpointLines.pending)
_FLOAT = {float}


def _plain_times(values: Sequence[Any], bound: float = 1e300) -> bool:
    """Whether every value is a float (not a subclass), finite and within ``-bound..bound``."""
    if not values or set(map(type, values)) != _FLOAT:
        return False
    total = sum(values)
    return bool(total - total == 0.0 and -bound < min(values) and max(values) < bound)


def submitted_lines(
    lines: CheckpointLines,
    seqs: Sequence[int],
    uids: Sequence[str],
    backends: Sequence[str],
    task_types: Sequence[str],
    exes: Sequence[str],
    times: Sequence[float],
    emit: str,
    out: list[str],
) -> None:
    """Each task's three submission events (one entry of ``out``); it becomes pending."""
    kinds, pending, sid = lines.kinds, lines.pending, lines.sid
    shapes = list(map(kinds.get, zip(backends, task_types, exes, strict=True)))
    if None in shapes:  # a kind not seen yet
        for index, shape in enumerate(shapes):
            if shape is None:
                key = (backends[index], task_types[index], exes[index])
                shape = kinds.get(key)
                if shape is None:
                    if len(kinds) > 10000:  # every task its own executable: stop caching
                        kinds.clear()
                    shape = kinds[key] = Kind(sid, *key)
                shapes[index] = shape
    id_base = lines.id_base
    # a task's event ids: its number, the event's kind in the low three bits
    bases = [hex(id_base | ((seq >> 1) & U60))[3:] for seq in seqs]
    trace_span = lines.trace_span
    append = out.append
    last_t: Any = None
    t_json = t_ns = "null"  # tasks submitted together share their time
    for seq, q_uid, shape, t, span, base in zip(
        seqs,
        map(_q, uids),
        shapes,
        times,
        map(hex, map(lines.ids.task_span_id, seqs)),
        bases,
        strict=True,
    ):
        if t != last_t or t.__class__ is not last_t.__class__:
            last_t, t_json, t_ns = t, num(t), scaled(t, 1e9, "%d")
        nib = NIBBLES[seq & 1]
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
    lines.counts["tasks_submitted"] += len(shapes)


def started_lines(
    lines: CheckpointLines,
    seqs: Sequence[int],
    times: Sequence[Any],
    hosts: Sequence[str | None],
    workers: Sequence[str | None],
    emit: str,
    out: list[str],
    numbers: Callable[[Any], list[str]],
) -> None:
    """Each pending task's start event (tasks not pending are skipped)."""
    tasks: list[Any] = list(map(lines.pending.get, seqs))
    if None in tasks:
        tasks, times, hosts, workers = known_only(tasks, times, hosts, workers)
        if not tasks:
            return
    # finite floats (the usual case) in one call; anything else as the general path writes it
    texts = numbers(times) if _plain_times(times) else list(map(num, times))
    hosts, workers = place_texts(hosts), place_texts(workers)
    wheres, where_of = lines.wheres, lines.where
    trace_span = lines.trace_span
    append = out.append
    for task, at, host, worker in zip(tasks, texts, hosts, workers, strict=True):
        where = wheres.get((host, worker)) or where_of(host, worker)
        q_uid, shape, _, _, _, span, base, nib = task
        append(
            f'{{"event_id": "{base}{nib[3]}", "event_type": "TaskStarted", '
            f'"event_time": {at}, "emit_time": {emit}{shape.task_id}{q_uid}, '
            f'"node_id": {where.node}, "attributes": {{{shape.exe}{where.event_worker}}}'
            f'{trace_span}{span}", "name": "TaskStarted", "section": "event"}}'
        )
    lines.counts["tasks_started"] += len(tasks)


def completed_lines(
    lines: CheckpointLines,
    seqs: Sequence[int],
    ended: Sequence[Any],
    started: Sequence[Any],
    hosts: Sequence[str | None],
    workers: Sequence[str | None],
    emit: str,
    out: list[str],
    numbers: Callable[[Any], list[str]],
) -> None:
    """Each pending task's completion (DONE, no extra attributes): its end event and span."""
    tasks: list[Any] = list(map(lines.pending.pop, seqs, repeat(None)))
    if None in tasks:
        tasks, seqs, ended, started, hosts, workers = known_only(
            tasks, seqs, ended, started, hosts, workers
        )
        if not tasks:
            return
    submitted = list(map(_SUBMITTED_AT, tasks))
    hosts, workers = place_texts(hosts), place_texts(workers)
    # floats, finite, the sum of three too, the end's nanoseconds within 64 bits
    if not (_plain_times(ended, 9e9) and _plain_times(started) and _plain_times(submitted)):
        pending = lines.pending
        for seq, task, end, at, host, worker in zip(
            seqs, tasks, ended, started, hosts, workers, strict=True
        ):
            if _plain_times((end,), 9e9) and _plain_times((at,)) and _plain_times((task[2],)):
                pending[seq] = task
                one = ((seq,), (end,), (at,), (host,), (worker,))
                completed_lines(lines, *one, emit, out, numbers)
            else:
                fields = ["DONE", end, at, host, worker, None, None]
                lines.ended_generally(seq, task, fields, emit, out)
        return
    runs = [end - at for end, at in zip(ended, started, strict=True)]
    if min(runs) < 0:
        runs = [run if not run < 0 else 0.0 for run in runs]
    queued = [at - sub if at - sub > 0 else 0.0 for at, sub in zip(started, submitted, strict=True)]
    ended_s = numbers(ended)
    runs_s = numbers(runs)
    queued_s = numbers(queued)
    ends_ns = numbers([int(end * 1e9) for end in ended])
    # duration_ms to 3 decimals, as rhapsody-py rounds it (round() costs 3x more)
    durations_ms = numbers(
        [((end - sub) * 1e6 + 0.5) // 1.0 / 1e3 for end, sub in zip(ended, submitted, strict=True)]
    )
    wheres, where_of = lines.wheres, lines.where
    trace_span, span_head = lines.trace_span, lines.span_head
    append = out.append
    duration_sum = 0.0
    for task, host, worker, run, ended_text, run_text, queued_text, end_ns, duration_ms in zip(
        tasks, hosts, workers, runs, ended_s, runs_s, queued_s, ends_ns, durations_ms, strict=True
    ):
        duration_sum += run
        where = wheres.get((host, worker)) or where_of(host, worker)
        q_uid, shape, _, sub_json, sub_ns, span, base, nib = task
        append(
            f'{{"event_id": "{base}{nib[4]}", "event_type": "TaskCompleted", '
            f'"event_time": {ended_text}, "emit_time": {emit}{shape.task_id}{q_uid}, '
            f'"node_id": {where.node}, '
            f'"attributes": {{{shape.exe}{where.event_worker}}}, '
            f'"duration_seconds": {run_text}{trace_span}{span}", '
            '"name": "TaskCompleted", "section": "event"}\n'
            f'{{"name": "task", "span_id": "{span}"{span_head}{sub_ns}, '
            f'"end_ns": {end_ns}, "start_time_s": {sub_json}, '
            f'"end_time_s": {ended_text}, "duration_ms": {duration_ms}, '
            '"status_code": "OK", "status_description": null, '
            f'"attributes": {shape.span_task_id}{q_uid}, {shape.exe}, '
            f'"status": "completed"{where.span_where}, "queue_seconds": {queued_text}, '
            f'"run_seconds": {run_text}}}, "section": "span"}}'
        )
    lines.counts["tasks_completed"] += len(tasks)
    lines.duration_count += len(tasks)
    lines.duration_sum += duration_sum
