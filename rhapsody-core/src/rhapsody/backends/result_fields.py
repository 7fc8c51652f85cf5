"""Writing a task's result fields from a backend's hot path.

``task.return_value = value`` goes through the task's assignment checks: a Python-level
``__setattr__``, which costs ~0.3-0.5 µs a field on the machines we measure on -- a backend that
writes five fields per task (host, worker, its times, its result) spent more on that than on
anything else of a no-op task. Result fields have no checks, so :func:`set_result` stores the
value directly, at C speed: ``set_result(task, "return_value", value)``. Use it for the names in
:data:`RESULT_FIELDS` only; the fields a user gives (``uid``, ``executable``, ``timeout``...)
must keep their checks, and ``state`` changes only through ``Backend.report``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The fields a backend writes on a task while it runs it.
RESULT_FIELDS: frozenset[str] = frozenset(
    {
        "return_value",
        "stdout",
        "stderr",
        "exit_code",
        "exception",
        "traceback",
        "started_at",
        "ended_at",
        "host",
        "worker",
        "response",
        "usage",
    }
)

#: ``set_result(task, name, value)``: ``task.name = value`` without the assignment checks.
set_result: Callable[[Any, str, Any], None] = object.__setattr__
