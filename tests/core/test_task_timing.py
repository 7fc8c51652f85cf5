"""Every task records when it was submitted, started and ended, and where it ran."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor

from rhapsody.api import BaseTask, ComputeTask, Session, TaskState
from rhapsody.backends import ConcurrentExecutionBackend

# Not fork: a pool forking from a process that runs threads can hang a worker at start
# (the backend warns about it; seen in this suite under load).
SPAWN = multiprocessing.get_context("spawn")


def nap(seconds):
    time.sleep(seconds)
    return os.getpid()


async def test_threads_executables_and_process_pools_record_when_and_where(tmp_path):
    threads = await ConcurrentExecutionBackend(name="threads")
    pool = await ConcurrentExecutionBackend(ProcessPoolExecutor(1, mp_context=SPAWN), name="pool")
    here = socket.gethostname()
    before = time.time()
    async with Session(backends=[threads, pool], work_dir=tmp_path) as session:
        fn = ComputeTask(function=nap, args=(0.2,), backend="threads")
        exe = ComputeTask(executable="/bin/sleep", arguments=["0.2"], backend="threads")
        remote = ComputeTask(function=nap, args=(0.05,), backend="pool")
        as_dict = {"function": nap, "args": (0,), "backend": "threads"}
        await session.submit_tasks([fn, exe, remote, as_dict])
        await session.wait_tasks([fn, exe, remote, as_dict])
    after = time.time()
    for task in (fn, exe, remote):
        assert task.state is TaskState.DONE and task.host == here
        # stamps come from the monotonic clock: compared with time.time() within a second
        assert before - 1 <= task.submitted_at <= task.started_at <= task.ended_at <= after + 1
        assert task.queue_time >= 0
    assert fn.worker.startswith("thread rhapsody-threads") and fn.run_time >= 0.19
    assert exe.worker.startswith("pid ") and exe.run_time >= 0.19
    assert remote.worker == f"pid {remote.return_value}" and remote.return_value != os.getpid()
    assert as_dict["started_at"] <= as_dict["ended_at"] and as_dict["host"] == here
    # plain fields: in to_dict, and back
    back = BaseTask.from_dict(json.loads(json.dumps(fn.to_dict())))
    assert (back.started_at, back.ended_at, back.worker) == (fn.started_at, fn.ended_at, fn.worker)


async def test_a_task_canceled_before_it_ran_has_no_start_but_an_end():
    backend = await ConcurrentExecutionBackend(max_processes=1)
    async with Session(backends=[backend]) as session:
        busy = ComputeTask(executable="/bin/sleep", arguments=["30"])
        queued = ComputeTask(executable="/bin/true")
        await session.submit_tasks([busy, queued])
        while busy.state is not TaskState.RUNNING:
            await asyncio.sleep(0.01)
        await session.cancel_tasks([queued, busy])
    assert queued.state is TaskState.CANCELED and queued.started_at is None
    assert queued.ended_at >= queued.submitted_at and queued.run_time is None
    assert busy.started_at is not None and busy.run_time >= 0


def test_an_unsubmitted_task_has_no_times():
    task = ComputeTask(executable="/bin/true")
    assert (task.submitted_at, task.started_at, task.ended_at, task.host, task.worker) == (
        None,
    ) * 5
    assert task.queue_time is None and task.run_time is None
