"""wait_tasks: returns exactly when the last of its tasks ended, whatever the order they end in,
how many there are (a countdown of futures below MANY, a walk from there on) and how many
waits overlap; a timeout or a canceled caller leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, Session, TaskState
from rhapsody.api.waiting import MANY

from .fakes import ManualBackend


def noop() -> None:
    return None


ENDINGS = [TaskState.DONE, TaskState.FAILED, TaskState.CANCELED]


@settings(max_examples=40, deadline=None)
@given(
    n=st.sampled_from([1, 5, MANY - 1, MANY, 3 * MANY]),
    data=st.data(),
)
def test_waits_end_exactly_when_their_last_task_ends(n: int, data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(n)), label="order tasks end in")
    endings = data.draw(st.lists(st.sampled_from(ENDINGS), min_size=n, max_size=n))
    per_step = data.draw(st.integers(1, 50), label="tasks ending per loop step")
    # overlapping waits: all tasks, and the first and last thirds
    slices = [slice(None), slice(0, max(1, n // 3)), slice(n - max(1, n // 3), None)]

    async def scenario() -> None:
        backend = ManualBackend()
        async with Session(backends=[backend]) as session:
            tasks = [ComputeTask(function=noop) for _ in range(n)]
            await session.submit_tasks(tasks)
            waits = [asyncio.ensure_future(session.wait_tasks(tasks[s])) for s in slices]
            await asyncio.sleep(0)
            ended: set[int] = set()
            for step in range(0, n, per_step):
                for i in order[step : step + per_step]:
                    backend.report(tasks[i], TaskState.RUNNING)
                    backend.report(tasks[i], endings[i])
                    ended.add(i)
                for _ in range(3):  # the waits' own steps
                    await asyncio.sleep(0)
                for wait, part in zip(waits, slices, strict=True):
                    members = set(range(n)[part])
                    assert wait.done() == (members <= ended), (step, part)
            results = await asyncio.gather(*waits)
            assert results[0] == tasks
            assert session._waits.open == []

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [3, 2 * MANY])
async def test_a_timeout_or_a_canceled_caller_leaves_no_wait_behind(n: int) -> None:
    backend = ManualBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=noop) for _ in range(n)]
        await session.submit_tasks(tasks)
        backend.report(tasks[0], TaskState.DONE)
        with pytest.raises(TimeoutError, match=f"{n - 1} of {n} tasks had not finished"):
            await session.wait_tasks(tasks, timeout=0.05)
        caller = asyncio.ensure_future(session.wait_tasks(tasks))
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert session._waits.open == []
        futures = [f for t in tasks if (f := t.future) is not None and not f.done()]
        assert all(not f._callbacks for f in futures)  # type: ignore[attr-defined]


async def test_a_future_canceled_from_outside_does_not_end_the_wait() -> None:
    # asyncio.wait_for(task, ...) timing out cancels the task's future; the task still runs,
    # and wait_tasks waits for the task, not for its future
    backend = ManualBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=noop) for _ in range(3)]
        await session.submit_tasks(tasks)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(tasks[1], 0.01)
        waiting = asyncio.ensure_future(session.wait_tasks(tasks))
        for task in (tasks[0], tasks[2]):
            backend.report(task, TaskState.DONE)
        await asyncio.sleep(0.05)
        assert not waiting.done() and tasks[1].state is TaskState.SUBMITTED
        backend.report(tasks[1], TaskState.DONE)
        assert await asyncio.wait_for(waiting, 5) == tasks
