"""Finding a session's tasks from what a caller names them by: task objects, task dicts (the
ones it submitted) or uids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SessionError, TaskValidationError, task_label
from .task import BaseTask


def look_up(
    known: Mapping[str, BaseTask],
    session_uid: str,
    tasks: Iterable[BaseTask | Mapping[str, Any] | str],
) -> list[BaseTask]:
    """The session's tasks named by ``tasks`` (tasks, task dicts or uids), in order; a clear
    error for anything that is not one of them."""
    require_list(tasks, "a list of tasks, task dicts or task uids", "Session")
    found: list[BaseTask] = []
    for item in tasks:
        if isinstance(item, BaseTask):
            task = known.get(item.uid)
            if task is not item:
                raise SessionError(
                    f"{task_label(item.uid)} was not submitted to session {session_uid}"
                )
        else:
            if isinstance(item, str):
                uid: Any = item
            elif isinstance(item, Mapping):
                uid = item.get("uid")
            else:
                raise TaskValidationError(
                    "tasks[]", "a task, a task dict or a task uid", item, owner="Session"
                )
            task = known.get(uid) if isinstance(uid, str) else None
            if task is None:
                raise SessionError(f"{task_label(uid)} was not submitted to session {session_uid}")
        found.append(task)
    return found


def require_list(tasks: object, expected: str, owner: str) -> None:
    """A collection of tasks, not one task, one dict or one uid string (which iterate too)."""
    if isinstance(tasks, (BaseTask, Mapping, str, bytes)) or not isinstance(tasks, Iterable):
        raise TaskValidationError("tasks", expected, tasks, owner=owner)
