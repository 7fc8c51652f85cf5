"""A batch's tasks as records of columns, for the checkpoint file's writers (:mod:`.column_lines`).

Reading one field of a list of tasks is one C-level ``map(attrgetter(...), tasks)``; a writer
given columns formats a column's numbers and ids at once (see :mod:`.ledger` for what each side
costs). Records (lists of equal length; ``seqs`` are the tasks' sequence numbers)::

    ["s", first_seq, step, uids, backends, task_types, executables, submitted_at]
    ["r", seqs, started_at, hosts, workers]
    ["e", seqs, ended_at, started_at, hosts, workers]   (completed tasks without extra attributes)

Submissions of tasks of sequence number ``i`` go to writer ``i % parts`` (see
:mod:`.checkpoint_file`); starts and ends go to every writer, each formatting those of the tasks
it has pending (splitting them by writer cost the session's thread a pass per writer). A record
holds a batch's tasks however many: the writer cuts it (cutting here would be one more pass over
the columns on the session's thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .records import executable_of

if TYPE_CHECKING:
    from ..api.task import BaseTask

_UID = attrgetter("uid")
_BACKEND = attrgetter("backend")
_TYPE_NAME = attrgetter("__class__.__name__")
_FUNCTION_NAME = attrgetter("function.__name__")
_EXECUTABLE = attrgetter("executable")
_SUBMITTED_AT = attrgetter("submitted_at")
_STARTED_AT = attrgetter("started_at")
_ENDED_AT = attrgetter("ended_at")
_HOST = attrgetter("host")
_WORKER = attrgetter("worker")
_STRINGS = {str}


def executables(tasks: Sequence[BaseTask]) -> list[str]:
    """:func:`.records.executable_of` of each task; function tasks (the many small ones) by two
    C-level maps: their functions' names, and that none has an executable too."""
    try:
        names = list(map(_FUNCTION_NAME, tasks))
        plain = list(map(_EXECUTABLE, tasks)).count(None) == len(names)
    except AttributeError:  # a task without a function (an executable, a model), or a callable
        plain = False  # without a __name__
    if not plain or set(map(type, names)) != _STRINGS or "" in names:
        return list(map(executable_of, tasks))
    return names


def submitted_records(outs: list[list[Any]], first: int, tasks: list[BaseTask]) -> None:
    """The ``s`` records of tasks numbered ``first``, ``first + 1``... in order."""
    columns = [
        list(map(_UID, tasks)),
        list(map(_BACKEND, tasks)),
        list(map(_TYPE_NAME, tasks)),
        executables(tasks),
        list(map(_SUBMITTED_AT, tasks)),
    ]
    parts = len(outs)
    if parts == 1:
        outs[0] += ["s", first, 1, *columns]
        return
    for part in range(parts):
        offset = (part - first) % parts  # the first of this writer's tasks
        if offset < len(tasks):
            outs[part] += ["s", first + offset, parts]
            outs[part] += [column[offset::parts] for column in columns]


def started_records(shared: list[Any], seqs: list[int], tasks: list[BaseTask]) -> None:
    """The ``r`` record of tasks numbered ``seqs``, for every writer."""
    shared += ["r", seqs, list(map(_STARTED_AT, tasks)), list(map(_HOST, tasks))]
    shared.append(list(map(_WORKER, tasks)))


def completed_records(shared: list[Any], seqs: list[int], tasks: list[BaseTask]) -> None:
    """The ``e`` record of tasks numbered ``seqs``, for every writer."""
    shared += ["e", seqs, list(map(_ENDED_AT, tasks)), list(map(_STARTED_AT, tasks))]
    shared += [list(map(_HOST, tasks)), list(map(_WORKER, tasks))]
