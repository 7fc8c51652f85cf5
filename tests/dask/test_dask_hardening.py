"""Dask: only the guilty task fails, nothing it started outlives the cluster, bad configuration
is refused up front (real LocalCluster and real scheduler/worker processes)."""

from __future__ import annotations

import asyncio
import threading
import time

import psutil
import pytest

from rhapsody.api import (
    BackendConfigurationError,
    BackendError,
    ComputeTask,
    Session,
    TaskState,
)
from rhapsody.backends.execution import DaskExecutionBackend

from ..conftest import wait_until


def add(a: int, b: int = 0) -> int:
    return a + b


def count_up(n: int):
    yield from range(n)


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def test_one_unpicklable_task_fails_alone(local_cluster):
    lock = threading.Lock()

    def holds_a_lock() -> bool:
        return lock.locked()

    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        good = [ComputeTask(function=add, args=(i, 1)) for i in range(6)]
        bad = ComputeTask(function=holds_a_lock)
        tasks = [*good[:3], bad, *good[3:]]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=120)
    assert [t.return_value for t in good] == [1, 2, 3, 4, 5, 6]
    assert bad.state is TaskState.FAILED
    message = str(bad.exception)
    assert bad.uid in message and "lock" in message.lower()
    assert len(message) < 600


async def test_generator_functions_are_not_coroutines(local_cluster):
    task = ComputeTask(function=count_up, args=(3,))
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        await session.submit_tasks([task])
        await session.wait_tasks([task], timeout=120)
    # a generator cannot travel back from a worker: a clear failure, never "bad yield"
    assert task.state is TaskState.FAILED
    assert "generator" in str(task.exception)
    assert "bad yield" not in str(task.exception)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cluster": "tcp://127.0.0.1:1", "address": "tcp://127.0.0.1:2"}, "address"),
        ({"address": "tcp://127.0.0.1:1", "connect_timeout": -1}, "connect_timeout"),
        ({"address": "tcp://127.0.0.1:1", "connect_timeout": float("inf")}, "connect_timeout"),
        ({"address": 5}, "address"),
    ],
)
def test_bad_configuration_is_refused(kwargs, field):
    with pytest.raises(BackendConfigurationError) as info:
        DaskExecutionBackend(**kwargs)
    assert info.value.field == field


async def test_shutdown_leaves_no_executable_running(process_cluster):
    marker = "61.7071"
    backend = await DaskExecutionBackend(address=process_cluster.address)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="/bin/sleep", arguments=[marker]) for _ in range(6)]
        await session.submit_tasks(tasks)
        assert await asyncio.to_thread(wait_until, lambda: len(marked(marker)) >= 2, 60)
    assert all(t.state is TaskState.CANCELED for t in tasks)
    assert await asyncio.to_thread(wait_until, lambda: not marked(marker), 10), marked(marker)


async def test_executables_die_with_their_workers(fresh_process_cluster):
    marker = "62.7182"
    backend = await DaskExecutionBackend(address=fresh_process_cluster.address, connect_timeout=5)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="/bin/sleep", arguments=[marker]) for _ in range(2)]
        await session.submit_tasks(tasks)
        assert await asyncio.to_thread(wait_until, lambda: len(marked(marker)) >= 1, 60)
        fresh_process_cluster.kill_scheduler()
        await session.wait_tasks(tasks, timeout=120)
        assert all(t.state is TaskState.FAILED for t in tasks)
        assert all(isinstance(t.exception, BackendError) for t in tasks)
    # the workers give up on the lost scheduler (--death-timeout 5) and take their
    # executables with them
    assert await asyncio.to_thread(wait_until, lambda: not marked(marker), 60), marked(marker)
    assert time.monotonic() > 0
