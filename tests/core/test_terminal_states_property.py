"""Property, on the real concurrent backend: whatever mix of successes, failures, timeouts,
cancellations and an early close, every task ends in exactly one terminal state and no awaiting
caller hangs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, Session, TaskState
from rhapsody.api.states import TERMINAL_STATES
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.plugins import hookimpl, register, unregister


def quick(x: int) -> int:
    return x


def failing() -> None:
    raise RuntimeError("no")


def sleepy() -> None:
    time.sleep(0.3)


def make(kind: str, timeout: float | None) -> ComputeTask:
    if kind == "fn":
        return ComputeTask(function=quick, args=(1,), timeout=timeout)
    if kind == "fail":
        return ComputeTask(function=failing, timeout=timeout)
    if kind == "slow-fn":
        return ComputeTask(function=sleepy, timeout=timeout)
    if kind == "exe":
        return ComputeTask(executable="/bin/true", timeout=timeout)
    if kind == "bad-exe":
        return ComputeTask(executable="/bin/false", timeout=timeout)
    return ComputeTask(executable="sleep", arguments=["0.3"], timeout=timeout)


class Recorder:
    def __init__(self) -> None:
        self.terminal: Counter[str] = Counter()

    @hookimpl
    def rhapsody_task_state_changed(self, task, new_state):
        if new_state in TERMINAL_STATES:
            self.terminal[task.uid] += 1


@settings(max_examples=15)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["fn", "fail", "slow-fn", "exe", "bad-exe", "slow-exe"]),
            st.sampled_from([None, None, 0.05, 5.0]),
            st.booleans(),  # cancel it?
        ),
        min_size=1,
        max_size=12,
    ),
    close_early=st.booleans(),
)
def test_every_task_ends_exactly_once(specs, close_early):
    recorder = Recorder()
    register(recorder, name="terminal-recorder")

    async def scenario():
        backend = await ConcurrentExecutionBackend(max_processes=4)
        session = Session(backends=[backend])
        tasks = [make(kind, timeout) for kind, timeout, _ in specs]
        futures = await session.submit_tasks(tasks)
        to_cancel = [t for t, (_, _, cancel) in zip(tasks, specs, strict=True) if cancel]
        await asyncio.sleep(0.02)
        await session.cancel_tasks(to_cancel)
        if not close_early:
            await session.wait_tasks(tasks, timeout=30)
        await session.close()
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=30
        )
        return tasks, results

    try:
        tasks, results = asyncio.run(scenario())
    finally:
        unregister("terminal-recorder")
    for task, result in zip(tasks, results, strict=True):
        assert task.state in TERMINAL_STATES
        assert recorder.terminal[task.uid] == 1, (task, recorder.terminal[task.uid])
        assert (result is task) == (task.state is TaskState.DONE)
