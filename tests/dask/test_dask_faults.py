"""Faults on a real multi-process cluster: dead workers, a dead scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from rhapsody.api import BackendError, ComputeTask, Session, TaskState
from rhapsody.backends.execution import DaskExecutionBackend


def exit_hard() -> None:
    os._exit(7)


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def test_worker_killed_mid_task_fails_that_task(process_cluster):
    backend = await DaskExecutionBackend(address=process_cluster.address)
    async with Session(backends=[backend]) as session:
        culprits = [ComputeTask(function=exit_hard), ComputeTask(function=sigkill_self)]
        await session.submit_tasks(culprits)
        await session.wait_tasks(culprits, timeout=240)
        for task in culprits:
            assert task.state is TaskState.FAILED
            assert isinstance(task.exception, BackendError)
            assert "the Dask worker running it died" in str(task.exception)
        # the cluster (its nanny restarted the workers) keeps serving
        later = [ComputeTask(function=nap, args=(0.01,)) for _ in range(4)]
        await session.submit_tasks(later)
        await session.wait_tasks(later, timeout=120)
        assert [t.state for t in later] == ["DONE"] * 4


async def test_scheduler_disappearing_fails_outstanding_tasks(fresh_process_cluster):
    backend = await DaskExecutionBackend(address=fresh_process_cluster.address, connect_timeout=5)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=nap, args=(30,)) for _ in range(3)]
        await session.submit_tasks(tasks)
        await asyncio.sleep(1)
        fresh_process_cluster.kill_scheduler()
        started = time.monotonic()
        await session.wait_tasks(tasks, timeout=120)
        assert time.monotonic() - started < 60
    for task in tasks:
        assert task.state is TaskState.FAILED
        assert isinstance(task.exception, BackendError)
        assert "connection to the scheduler" in str(task.exception)
