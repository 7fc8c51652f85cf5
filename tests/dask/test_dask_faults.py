"""Faults on a real multi-process cluster: dead workers, a dead scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from rhapsody.api import BackendError, ComputeTask, Session, TaskState
from rhapsody.backends.execution import DaskExecutionBackend
from rhapsody_dask import outcomes

from ..conftest import child_pids, wait_until


def exit_hard() -> None:
    os._exit(7)


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CallCounter:
    """A callable with state of its own: each task must get it as it was sent."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


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


async def test_a_function_the_workers_cannot_import_fails_only_its_task(
    process_cluster, tmp_path, monkeypatch
):
    # A module only the client has (a workflow's helper file, a package missing on the workers):
    # left to Dask, the worker's connection to the scheduler died unpickling it and every task
    # sent to that worker stayed SUBMITTED for ever.
    (tmp_path / "client_only_helpers.py").write_text("def plus_one(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import client_only_helpers  # type: ignore[import-not-found]

    backend = await DaskExecutionBackend(address=process_cluster.address)
    async with Session(backends=[backend]) as session:
        stranger = ComputeTask(function=client_only_helpers.plus_one, args=(1,))
        others = [ComputeTask(function=nap, args=(0.01,)) for _ in range(4)]
        await session.submit_tasks([stranger, *others])
        await session.wait_tasks([stranger, *others], timeout=120)
        assert stranger.state is TaskState.FAILED
        assert isinstance(stranger.exception, BackendError)
        message = str(stranger.exception)
        assert message.startswith(f"{stranger.uid}: its function or arguments could not be loaded")
        assert "No module named 'client_only_helpers'" in message
        assert [t.state for t in others] == ["DONE"] * 4
        # the workers keep serving
        later = [ComputeTask(function=nap, args=(0.01,)) for _ in range(4)]
        await session.submit_tasks(later)
        await session.wait_tasks(later, timeout=120)
        assert [t.state for t in later] == ["DONE"] * 4


async def test_functions_and_arguments_that_exist_only_by_value_run(process_cluster):
    class Box:  # a local class: not importable anywhere, shipped by value
        def __init__(self, value: int) -> None:
            self.value = value

    offset = 10
    backend = await DaskExecutionBackend(address=process_cluster.address)
    async with Session(backends=[backend]) as session:
        tasks = [
            ComputeTask(function=lambda box, k=0: box.value + offset + k, args=(Box(i),))
            for i in range(3)
        ]
        tasks.append(ComputeTask(function=nap, args=(0.01,), kwargs={}))
        tasks.append(ComputeTask(function=lambda **kw: sorted(kw), kwargs={"b": 1, "a": 2}))
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=120)
    assert [t.return_value for t in tasks] == [10, 11, 12, 0.01, ["a", "b"]]


async def test_a_callable_object_reaches_each_task_as_it_was_sent(process_cluster):
    counter = CallCounter()
    backend = await DaskExecutionBackend(address=process_cluster.address)
    async with Session(backends=[backend]) as session:
        for _ in range(2):  # two batches: nothing kept between them either
            tasks = [ComputeTask(function=counter) for _ in range(6)]
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks, timeout=120)
            assert [t.return_value for t in tasks] == [1] * 6


async def test_a_start_that_fails_after_its_cluster_started_closes_it(
    monkeypatch, no_stray_children
):
    from distributed import Client

    ask = Client.run_on_scheduler

    async def refused(self, *args, **kwargs):
        raise OSError("the scheduler hung up")

    monkeypatch.setattr(Client, "run_on_scheduler", refused)
    before = child_pids()
    backend = DaskExecutionBackend(n_workers=1)  # its own LocalCluster: worker processes
    try:
        await backend
    except OSError as error:
        assert "hung up" in str(error)
    else:
        raise AssertionError("the start did not fail")
    assert backend.cluster is None  # closed, and forgotten: its worker process too
    assert wait_until(lambda: not (child_pids() - before), timeout=15), child_pids() - before
    monkeypatch.setattr(Client, "run_on_scheduler", ask)
    await backend  # a later await starts afresh
    try:
        task = ComputeTask(function=nap, args=(0.0,))
        async with Session(backends=[backend]) as session:
            await session.submit_tasks([task])
            await session.wait_tasks([task], timeout=60)
        assert task.state is TaskState.DONE
    finally:
        await backend.shutdown()


async def test_a_completion_that_raises_fails_its_task_and_strands_none(
    process_cluster, monkeypatch
):
    backend = await DaskExecutionBackend(address=process_cluster.address)
    real_store = outcomes.store_output

    def store_output(task, out, err, task_dir):
        if task.uid.endswith("bad"):  # e.g. the disk filled up writing its captured output
            raise OSError(28, "No space left on device")
        real_store(task, out, err, task_dir)

    monkeypatch.setattr(outcomes, "store_output", store_output)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=nap, args=(0.01,), uid=f"c.{i}") for i in range(6)]
        tasks.insert(2, ComputeTask(function=nap, args=(0.01,), uid="c.bad"))
        await session.submit_tasks(tasks)
        assert await session.wait_tasks(tasks, timeout=120)
    bad = tasks.pop(2)
    assert bad.state is TaskState.FAILED and isinstance(bad.exception, BackendError)
    assert "No space left on device" in str(bad.exception)
    assert all(t.state is TaskState.DONE for t in tasks)


async def test_a_failure_that_cannot_be_settled_fails_its_task_and_strands_none(
    process_cluster, monkeypatch
):
    """Two tasks whose worker died reach the collector together; settling the first raises
    once it took the task off its running list (as sending it again could): it ends FAILED all
    the same, and the second is still settled."""
    backend = await DaskExecutionBackend(address=process_cluster.address)
    real = backend._finish_unsuccessful
    raised: list[str] = []

    def finish_unsuccessful(future, error):
        if not raised:
            raised.append(str(future.key))
            backend._running.pop(future.key, None)
            raise RuntimeError("could not word the failure")
        real(future, error)

    monkeypatch.setattr(backend, "_finish_unsuccessful", finish_unsuccessful)
    async with Session(backends=[backend]) as session:
        culprits = [ComputeTask(function=exit_hard), ComputeTask(function=sigkill_self)]
        await session.submit_tasks(culprits)
        assert await session.wait_tasks(culprits, timeout=120)
    assert raised and all(t.state is TaskState.FAILED for t in culprits)
    messages = sorted(str(t.exception) for t in culprits)
    assert any("could not word the failure" in m for m in messages), messages
    assert any("the Dask worker running it died" in m for m in messages), messages


async def test_a_sweep_that_raises_does_not_end_the_sweeping(process_cluster, monkeypatch):
    """Only the sweeper sees a task whose worker died (no message comes from a dead worker):
    a sweep that raised once must not have ended it."""
    backend = await DaskExecutionBackend(address=process_cluster.address)
    real, sweeps = backend._sweep_once, []

    def sweep_once():
        sweeps.append(1)
        if len(sweeps) == 1:
            raise RuntimeError("a sweep went wrong")
        real()

    monkeypatch.setattr(backend, "_sweep_once", sweep_once)
    async with Session(backends=[backend]) as session:
        culprit = ComputeTask(function=exit_hard)
        await session.submit_tasks([culprit])
        assert await session.wait_tasks([culprit], timeout=120)
    assert len(sweeps) >= 2 and culprit.state is TaskState.FAILED
    assert "the Dask worker running it died" in str(culprit.exception)


async def test_shutdown_ends_a_collector_waiting_on_results(process_cluster):
    """Two fetches that would wait for ever (a worker that never answers): the shutdown's
    cancellation ends the collector, instead of being taken for the first one's error."""
    backend = await DaskExecutionBackend(address=process_cluster.address)

    class Unanswered:
        status = "finished"

        def __init__(self, key: str) -> None:
            self.key = key

        async def result(self) -> None:
            await asyncio.sleep(3600)

    tasks = [ComputeTask(function=nap, args=(0,)) for _ in range(2)]
    for i, task in enumerate(tasks):
        backend._running[f"k{i}"] = task
        backend._fetch(Unanswered(f"k{i}"))
    await asyncio.sleep(0.1)
    collector = backend._collector
    assert collector is not None and not collector.done()
    await backend.shutdown()
    await asyncio.sleep(0.1)
    assert collector.done()
