"""Session behaviour on the real concurrent backend: awaiting, waiting, canceling, closing."""

from __future__ import annotations

import asyncio
import time

import pytest

from rhapsody.api import (
    ComputeTask,
    Session,
    SessionError,
    TaskCanceledError,
    TaskExecutionError,
    TaskState,
)
from rhapsody.backends import ConcurrentExecutionBackend

from .fakes import ManualBackend


def double(x: int) -> int:
    return 2 * x


def boom() -> None:
    raise KeyError("boom")


async def test_await_task_and_future_return_the_task():
    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        t = ComputeTask(function=double, args=(21,))
        (fut,) = await session.submit_tasks([t])
        assert await fut is t
        assert await t is t
        assert t.return_value == 42 and t.state is TaskState.DONE and t.state == "DONE"


async def test_failures_raise_on_await_but_not_in_wait_tasks():
    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        bad_fn = ComputeTask(function=boom)
        bad_exe = ComputeTask(executable="/bin/sh", arguments=["-c", "echo nope >&2; exit 4"])
        good = ComputeTask(function=double, args=(1,))
        futures = await session.submit_tasks([bad_fn, bad_exe, good])
        done = await session.wait_tasks([bad_fn, bad_exe, good])
        assert done == [bad_fn, bad_exe, good]
        assert [t.state for t in done] == ["FAILED", "FAILED", "DONE"]
        with pytest.raises(KeyError, match="boom"):
            await bad_fn
        assert "raise KeyError" in bad_fn.traceback
        with pytest.raises(TaskExecutionError) as err:
            await bad_exe
        assert (
            err.value.exit_code == 4 and "nope" in err.value.stderr and err.value.uid == bad_exe.uid
        )
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(results[0], KeyError) and isinstance(results[1], TaskExecutionError)
        assert results[2] is good


async def test_wait_tasks_timeout_leaves_tasks_running():
    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        slow = ComputeTask(executable="sleep", arguments=["2"])
        await session.submit_tasks([slow])
        with pytest.raises(asyncio.TimeoutError, match="1 of 1 tasks"):
            await session.wait_tasks([slow], timeout=0.2)
        assert slow.state is TaskState.RUNNING
        await session.cancel_tasks([slow])
        assert slow.state is TaskState.CANCELED


async def test_dict_tasks_are_converted_and_uid_written_back():
    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        d = {"executable": "/bin/echo", "arguments": ["x"]}
        (fut,) = await session.submit_tasks([d])
        task = await fut
        assert d["uid"] == task.uid and task.stdout == "x\n"
        (waited,) = await session.wait_tasks([d])
        assert waited is d and d["state"] == "DONE"  # the dict as given, as rhapsody-py did
        (by_uid,) = await session.wait_tasks([task.uid])
        assert by_uid is task


async def test_duplicate_uids_rejected():
    async with Session(backends=[ManualBackend()]) as session:
        await session.submit_tasks([ComputeTask(function=double, uid="same")])
        with pytest.raises(SessionError, match="duplicate task uid 'same'"):
            await session.submit_tasks([ComputeTask(function=double, uid="same")])
        with pytest.raises(SessionError, match="duplicate"):
            await session.submit_tasks(
                [ComputeTask(function=double, uid="x"), ComputeTask(function=double, uid="x")]
            )
        t = ComputeTask(function=double)
        await session.submit_tasks([t])
        with pytest.raises(SessionError, match="already submitted"):
            await session.submit_tasks([t])


async def test_await_unsubmitted_task():
    with pytest.raises(SessionError, match="has not been submitted"):
        await ComputeTask(function=double)


async def test_close_cancels_outstanding_tasks():
    backend = ManualBackend()
    session = Session(backends=[backend])
    tasks = [ComputeTask(function=double) for _ in range(3)]
    futures = await session.submit_tasks(tasks)
    await session.close()
    assert backend.shut_down
    assert all(t.state is TaskState.CANCELED for t in tasks)
    for fut in futures:
        with pytest.raises(TaskCanceledError, match="session was closed"):
            await fut
    with pytest.raises(SessionError, match="closed"):
        await session.submit_tasks([ComputeTask(function=double)])


async def test_duplicate_backend_names():
    with pytest.raises(SessionError, match="two backends are named 'x'"):
        Session(backends=[ManualBackend("x"), ManualBackend("x")])
    with pytest.raises(SessionError, match="expected rhapsody backends"):
        Session(backends=["concurrent"])


async def test_large_batch_does_not_block_the_loop():
    ticks = 0
    stop = False

    async def ticker():
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    async with Session(backends=[ManualBackend()]) as session:
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        tasks = [ComputeTask(function=double, args=(i,)) for i in range(100_000)]
        await session.submit_tasks(tasks)
        during = ticks - before
        stop = True
        await ticking
    # the ticker ran many times while the batch was routed, registered and handed over
    assert during > 50


async def test_hundred_thousand_functions_complete():
    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        tasks = [ComputeTask(function=double, args=(i,)) for i in range(100_000)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    assert all(t.return_value == 2 * i for i, t in enumerate(tasks))


async def test_timeout_on_function_task():
    from rhapsody.api import TaskTimeoutError

    async with Session(backends=[await ConcurrentExecutionBackend()]) as session:
        t = ComputeTask(function=time.sleep, args=(1.0,), timeout=0.1)
        await session.submit_tasks([t])
        with pytest.raises(TaskTimeoutError, match="timeout of 0.1s"):
            await t
        assert t.state is TaskState.FAILED


async def test_lifecycle_hooks_called():
    from rhapsody.plugins import hookimpl, register, unregister

    seen: list[str] = []

    class Spy:
        @hookimpl
        def rhapsody_session_start(self, session):
            seen.append("start")

        @hookimpl
        def rhapsody_task_submitted(self, task, backend):
            seen.append(f"submitted:{backend.name}")

        @hookimpl
        def rhapsody_task_finished(self, task):
            seen.append(f"finished:{task.state}")

        @hookimpl
        def rhapsody_session_close(self, session):
            seen.append("close")

    register(Spy(), name="spy")
    try:
        async with Session(backends=[await ConcurrentExecutionBackend(name="c")]) as session:
            t = ComputeTask(function=double, args=(1,))
            await session.submit_tasks([t])
            await t
    finally:
        unregister("spy")
    assert seen == ["start", "submitted:c", "finished:DONE", "close"]


async def test_backend_added_after_start_is_initialised():
    async with Session(backends=[]) as session:
        late = ConcurrentExecutionBackend(name="late")
        session.add_backend(late)
        t = ComputeTask(function=double, args=(4,))
        await session.submit_tasks([t])
        assert (await t).return_value == 8 and late.initialized
