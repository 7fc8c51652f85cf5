"""A backend that runs nothing: the ceiling of any backend behind a ``Session``.

Each submitted task is reported RUNNING and DONE on the spot (its ``return_value`` the first
argument, as the benchmarks' ``noop`` would give), so a run through it times what the session's
per-task API costs by itself -- making the ``ComputeTask``, submitting, routing, two state
changes, the future, the wait -- with no engine behind it. A backend that drives a real engine
pays all that plus its own share, so no backend runs per-task work faster than this. Written
against the public backend contract (docs/writing-a-backend-plugin.md), like any third party's.
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


async def session_ceiling(n: int) -> tuple[float, float]:
    """(tasks per second, CPU µs of this process per task) of ``n`` no-op function tasks
    through a ``Session`` on the null backend, timed as the benchmarks time theirs (the tasks
    made inside the timing)."""
    import time

    from rhapsody.api import ComputeTask, Session

    def noop(x: int) -> int:
        return x

    async with Session(backends=[await NullBackend()]) as session:
        warm = [ComputeTask(function=noop, args=(0,)) for _ in range(100)]
        await session.submit_tasks(warm)
        await session.wait_tasks(warm)
        t, c = time.perf_counter(), time.process_time()
        tasks = [ComputeTask(function=noop, args=(i,)) for i in range(n)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
    assert all(task.state == "DONE" for task in tasks), "a null-backend task did not end DONE"
    return n / seconds, cpu / n * 1e6


if __name__ == "__main__":
    import asyncio
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    rate, cpu = asyncio.run(session_ceiling(size))
    print(f"null backend, {size:,} no-op functions: {rate:,.0f}/s, {cpu:.1f} µs CPU/task")
