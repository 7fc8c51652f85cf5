"""``rhapsody demo``: a small heterogeneous workload on the embedded concurrent backend."""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from typing import TextIO

from ..api import ComputeTask, Session, TaskState
from ..backends.concurrent import ConcurrentExecutionBackend
from .render import table


def square(x: int) -> int:
    return x * x


async def fetch_host(i: int) -> str:
    await asyncio.sleep(0.01)
    return f"{platform.node()}#{i}"


def broken() -> None:
    raise ValueError("this task fails on purpose")


FAILING_EXAMPLES = 2  # tasks that fail on purpose, when there are enough tasks to show them


def build_workload(size: int) -> list[ComputeTask]:
    """``size`` tasks of four kinds; with ``size >= 4`` the last two fail on purpose (one
    function, one executable), to show what failures look like."""
    failing = FAILING_EXAMPLES if size >= 4 else 0
    tasks: list[ComputeTask] = []
    for i in range(size - failing):
        kind = i % 4
        if kind == 0:
            tasks.append(ComputeTask(function=square, args=(i,)))
        elif kind == 1:
            tasks.append(ComputeTask(function=fetch_host, args=(i,)))
        elif kind == 2:
            tasks.append(ComputeTask(executable="/bin/echo", arguments=[f"task {i}"]))
        else:
            tasks.append(ComputeTask(executable=sys.executable, arguments=["-c", f"print({i}*2)"]))
    if failing:
        tasks.append(ComputeTask(function=broken))
        tasks.append(ComputeTask(executable="/bin/sh", arguments=["-c", "echo oops >&2; exit 3"]))
    return tasks


async def run_demo(size: int, out: TextIO, telemetry: str | None = None) -> int:
    if size == 0:
        print("nothing to run: --tasks 0", file=out)
        return 0
    tasks = build_workload(size)
    expected_failures = FAILING_EXAMPLES if size >= 4 else 0
    started = time.perf_counter()
    backend = await ConcurrentExecutionBackend(name="local")
    # The session's own progress bar: drawn when a terminal (or Jupyter) is watching.
    session = Session(backends=[backend], progress=True)
    recorder = None
    if telemetry is not None:
        recorder = await session.start_telemetry(
            checkpoint_path=telemetry, resource_poll_interval=0.2
        )
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    elapsed = time.perf_counter() - started
    kinds: dict[tuple[str, str], int] = {}
    for task in tasks:
        kind = "function" if task.function is not None else "executable"
        kinds[(kind, task.state)] = kinds.get((kind, task.state), 0) + 1
    rows = [(kind, state, n) for (kind, state), n in sorted(kinds.items())]
    print(table(["kind", "state", "tasks"], rows), file=out)
    failed = [t for t in tasks if t.state is TaskState.FAILED]
    on_purpose = " (on purpose)" if failed and len(failed) == expected_failures else ""
    print(
        f"\n{len(tasks)} tasks in {elapsed:.2f}s on backend 'local'; {len(failed)} failed"
        f"{on_purpose}{':' if failed else '.'}",
        file=out,
    )
    for task in failed:
        print(f"  {type(task.exception).__name__}: {task.exception}", file=out)
    if recorder is not None:
        print(f"telemetry: {recorder.checkpoint_file}", file=out)
    return 0 if len(failed) == expected_failures else 1
