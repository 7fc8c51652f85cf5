"""A backend that runs nothing: the ceiling of any backend behind a ``Session``.

Each submitted task is reported RUNNING and DONE on the spot (its ``return_value`` the first
argument, as the benchmarks' ``noop`` would give), so a run through it times what the session's
per-task API costs by itself -- making the ``ComputeTask``, submitting, routing, two state
changes, the future, the wait -- with no engine behind it. A backend that drives a real engine
pays all that plus its own share, so no backend runs per-task work faster than this. Written
against the public backend contract (docs/writing-a-backend-plugin.md), like any third party's;
``bench_dragon.py`` times it in every round, next to the raw pool.
"""

from __future__ import annotations

from collections.abc import Sequence

from rhapsody.api import BaseTask, TaskState
from rhapsody.backends import ExecutionBackend
from rhapsody.backends.result_fields import set_result

_RUNNING, _DONE = TaskState.RUNNING, TaskState.DONE


class NullBackend(ExecutionBackend):
    """Ends every task DONE as it is submitted."""

    def __init__(self, name: str = "null") -> None:
        super().__init__(name=name)

    async def initialize(self) -> None:
        return None

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        report = self.report
        for task in tasks:
            report(task, _RUNNING)
            args = getattr(task, "args", ())
            set_result(task, "return_value", args[0] if args else None)
            report(task, _DONE)

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            self.report(task, TaskState.CANCELED)

    async def shutdown(self) -> None:
        return None
