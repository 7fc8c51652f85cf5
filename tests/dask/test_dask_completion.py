"""How a task's end reaches the client: small results with the workers' batched messages, large
ones fetched from Dask, and what Dask itself fails found by the sweep over outstanding futures
(real LocalCluster)."""

from __future__ import annotations

import asyncio
import threading

from rhapsody.api import BackendError, ComputeTask, Session, TaskState
from rhapsody.backends.execution import DaskExecutionBackend
from rhapsody_dask import worker_side


def blob(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def returns_a_lock() -> object:
    return threading.Lock()


def _refuse_to_load() -> None:
    raise RuntimeError("this argument cannot be rebuilt")


class LoadsNowhere:
    """Pickles fine; unpickling it raises (Dask's scheduler unpickles what it is sent)."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_refuse_to_load, ())


def echo(value: object) -> object:
    return value


async def test_a_large_result_is_fetched_and_small_ones_come_with_the_message(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        size = 4 * worker_side.INLINE_LIMIT
        large = ComputeTask(function=blob, args=(size,))
        small = [ComputeTask(function=blob, args=(256,)) for _ in range(20)]
        await session.submit_tasks([large, *small])
        await session.wait_tasks([large, *small], timeout=120)
    assert large.state is TaskState.DONE and large.return_value == blob(size)
    assert all(t.state is TaskState.DONE and t.return_value == blob(256) for t in small)
    assert not backend._running and not backend._futures  # nothing left behind


async def test_a_result_nothing_can_send_fails_its_task(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        task = ComputeTask(function=returns_a_lock)
        await session.submit_tasks([task])
        await asyncio.wait_for(session.wait_tasks([task]), 120)
    assert task.state is TaskState.FAILED
    assert isinstance(task.exception, BackendError) and task.uid in str(task.exception)


async def test_a_task_whose_argument_cannot_be_loaded_fails_alone(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        broken = ComputeTask(function=echo, args=(LoadsNowhere(),))
        # One batch: when Dask's scheduler unpickled a batch, one bad task failed all of it;
        # now only the worker unpickles a call, and only that task fails
        fine = [ComputeTask(function=echo, args=(i,)) for i in range(5)]
        await session.submit_tasks([*fine[:2], broken, *fine[2:]])
        await session.wait_tasks([broken, *fine], timeout=120)
    assert [(t.state, t.return_value) for t in fine] == [(TaskState.DONE, i) for i in range(5)]
    assert broken.state is TaskState.FAILED
    message = str(broken.exception)
    # unpickled by the worker itself (not by Dask's scheduler): the reason is its own
    assert isinstance(broken.exception, BackendError)
    assert message.startswith(f"{broken.uid}: its function or arguments could not be loaded")
    assert "RuntimeError: this argument cannot be rebuilt" in message, message
