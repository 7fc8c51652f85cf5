"""The Dask backend against real clusters: functions, executables, options, ownership."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import pytest
from distributed import Client, LocalCluster

from rhapsody.api import (
    BackendConfigurationError,
    ComputeTask,
    ResourceError,
    Session,
    TaskExecutionError,
    TaskState,
    TaskTimeoutError,
    TaskValidationError,
)
from rhapsody.backends.execution import DaskExecutionBackend

from ..conftest import pid_alive, wait_until


def square(x: int) -> int:
    return x * x


async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


def fails() -> None:
    raise ZeroDivisionError("deliberate")


def talk(word: str) -> str:
    print(word)
    print("to stderr", file=sys.stderr)
    return word


def token() -> str:
    return uuid.uuid4().hex


def where() -> int:
    return os.getpid()


async def test_the_user_guide_example():
    gpu_cluster = await LocalCluster(
        n_workers=4, threads_per_worker=1, asynchronous=True, dashboard_address=None
    )
    try:
        backend = await DaskExecutionBackend(cluster=gpu_cluster)
        async with Session(backends=[backend]) as session:
            tasks = [ComputeTask(function=square, args=(i,)) for i in range(100)]
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks)
        assert [t.return_value for t in tasks] == [i * i for i in range(100)]
        assert gpu_cluster.status.name == "running"  # the user's cluster is left running
    finally:
        await gpu_cluster.close()


async def test_functions_executables_and_failures(local_cluster, tmp_path):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend], work_dir=tmp_path) as session:
        fn = ComputeTask(function=square, args=(7,))
        afn = ComputeTask(function=async_double, args=(4,))
        bad = ComputeTask(function=fails)
        exe = ComputeTask(executable="/bin/echo", arguments=["$HOME"])
        shell = ComputeTask(
            executable="echo $GREETING; pwd",
            task_backend_specific_kwargs={
                "shell": True,
                "env": {"GREETING": "hi"},
                "cwd": str(tmp_path),
            },
        )
        bad_exe = ComputeTask(executable="/bin/sh", arguments=["-c", "echo no >&2; exit 5"])
        missing = ComputeTask(executable="/no/such/thing")
        captured = ComputeTask(function=talk, args=("hello",), capture_stdio=True)
        captured_exe = ComputeTask(executable="/bin/echo", arguments=["file"], capture_stdio=True)
        tasks = [fn, afn, bad, exe, shell, bad_exe, missing, captured, captured_exe]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=120)
    assert (fn.return_value, afn.return_value) == (49, 8)
    assert isinstance(bad.exception, ZeroDivisionError) and "deliberate" in bad.traceback
    assert exe.stdout == "$HOME\n" and exe.return_value == "$HOME\n"  # no shell by default
    assert shell.stdout == f"hi\n{tmp_path}\n"
    assert isinstance(bad_exe.exception, TaskExecutionError)
    assert bad_exe.exit_code == 5 and "no" in bad_exe.stderr
    assert missing.state is TaskState.FAILED and "could not start" in str(missing.exception)
    with open(captured.stdout) as out, open(captured.stderr) as err:
        assert (out.read(), err.read()) == ("hello\n", "to stderr\n")
    assert captured.stdout == str(tmp_path / session.uid / f"{captured.uid}.stdout")
    with open(captured_exe.stdout) as out:
        assert out.read() == "file\n"
    assert [t.backend for t in tasks] == ["dask"] * len(tasks)


async def test_identical_calls_are_separate_executions(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=token) for _ in range(20)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    assert len({t.return_value for t in tasks}) == 20


async def test_resources(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        ok = ComputeTask(
            function=square, args=(3,), task_backend_specific_kwargs={"resources": {"GPU": 1}}
        )
        too_many = ComputeTask(
            function=square, args=(3,), task_backend_specific_kwargs={"resources": {"GPU": 2}}
        )
        unknown = ComputeTask(
            function=square, args=(3,), task_backend_specific_kwargs={"resources": {"TPU": 1}}
        )
        started = time.monotonic()
        await session.submit_tasks([ok, too_many, unknown])
        await session.wait_tasks([ok, too_many, unknown], timeout=60)
        assert time.monotonic() - started < 30  # nobody waited forever
    assert ok.return_value == 9
    for task in (too_many, unknown):
        assert isinstance(task.exception, ResourceError)
        assert "no Dask worker offers resources" in str(task.exception)
    assert "{'TPU': 1}" in str(unknown.exception)


async def test_running_state_and_executable_timeout_kills_the_process(local_cluster, tmp_path):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        slow = ComputeTask(
            executable="/bin/sh", arguments=["-c", f"echo $$ > {tmp_path}/pid; sleep 30"], timeout=2
        )
        await session.submit_tasks([slow])
        assert await asyncio.to_thread(wait_until, lambda: slow.state is TaskState.RUNNING, 30)
        await session.wait_tasks([slow], timeout=60)
    assert isinstance(slow.exception, TaskTimeoutError)
    pid = int((tmp_path / "pid").read_text())
    assert await asyncio.to_thread(wait_until, lambda: not pid_alive(pid), 15)


async def test_function_timeout(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        t = ComputeTask(function=time.sleep, args=(3,), timeout=0.5)
        await session.submit_tasks([t])
        with pytest.raises(TaskTimeoutError):
            await t


async def test_cancel_kills_a_running_executable(local_cluster, tmp_path):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        t = ComputeTask(
            executable="/bin/sh", arguments=["-c", f"echo $$ > {tmp_path}/pid; sleep 30"]
        )
        await session.submit_tasks([t])
        assert await asyncio.to_thread(
            wait_until, lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 30
        )
        assert await session.cancel_tasks([t]) == 1
        assert t.state is TaskState.CANCELED
    pid = int((tmp_path / "pid").read_text())
    assert await asyncio.to_thread(wait_until, lambda: not pid_alive(pid), 15)


async def test_shutdown_with_tasks_in_flight_cancels_them(local_cluster, tmp_path):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    session = Session(backends=[backend])
    tasks = [
        ComputeTask(executable="/bin/sh", arguments=["-c", f"echo $$ > {tmp_path}/p{i}; sleep 30"])
        for i in range(2)
    ]
    futures = await session.submit_tasks(tasks)
    assert await asyncio.to_thread(
        wait_until, lambda: all((tmp_path / f"p{i}").exists() for i in range(2)), 30
    )
    await asyncio.sleep(0.2)
    await session.close()
    assert all(t.state is TaskState.CANCELED for t in tasks) and all(f.done() for f in futures)
    pids = [int((tmp_path / f"p{i}").read_text()) for i in range(2)]
    assert await asyncio.to_thread(wait_until, lambda: not any(map(pid_alive, pids)), 15)


async def test_own_cluster_is_closed_on_shutdown(no_stray_children):
    backend = await DaskExecutionBackend(n_workers=1)
    cluster = backend.cluster
    async with Session(backends=[backend]) as session:
        t = ComputeTask(function=where)
        await session.submit_tasks([t])
        assert (await t).return_value != os.getpid()  # ran in a worker process
    assert cluster.status.name == "closed"
    assert backend.client.status == "closed"


async def test_user_client_is_left_open(local_cluster):
    async with Client(local_cluster.scheduler_address, asynchronous=True) as client:
        backend = await DaskExecutionBackend(client=client)
        assert backend.client is client
        async with Session(backends=[backend]) as session:
            t = ComputeTask(function=square, args=(5,))
            await session.submit_tasks([t])
            assert (await t).return_value == 25
        assert client.status == "running"


def test_sync_client_and_sync_cluster(local_cluster):
    sync_client = Client(local_cluster)

    async def main():
        for backend in (
            DaskExecutionBackend(client=sync_client),
            DaskExecutionBackend(cluster=local_cluster),
        ):
            await backend
            async with Session(backends=[backend]) as session:
                t = ComputeTask(function=square, args=(6,))
                await session.submit_tasks([t])
                assert (await t).return_value == 36

    try:
        asyncio.run(main())
        assert sync_client.status == "running"
        assert sync_client.submit(square, 2).result() == 4
    finally:
        sync_client.close()


async def test_scheduler_address_string(process_cluster):
    for backend in (
        DaskExecutionBackend(cluster=process_cluster.address),
        DaskExecutionBackend(address=process_cluster.address),
    ):
        await backend
        async with Session(backends=[backend]) as session:
            tasks = [ComputeTask(function=square, args=(i,)) for i in range(10)]
            tasks.append(ComputeTask(executable="/bin/echo", arguments=["remote"]))
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks, timeout=60)
        assert [t.return_value for t in tasks[:10]] == [i * i for i in range(10)]
        assert tasks[-1].stdout == "remote\n"
    assert process_cluster.scheduler.poll() is None  # left running


async def test_bad_options_rejected_before_anything_runs(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        for options, match in (
            ({"resources": {"GPU": -1}}, "positive amount"),
            ({"resources": "GPU"}, "positive amount"),
            ({"gpus": 1}, r"one of \['resources'"),
            ({"retries": -1}, ">= 0"),
            ({"env": {"A": 1}}, "dict of str to str"),
        ):
            with pytest.raises(TaskValidationError, match=match):
                await session.submit_tasks(
                    [ComputeTask(function=square, args=(1,), task_backend_specific_kwargs=options)]
                )
        assert session.tasks == {}


def test_bad_constructor_arguments(local_cluster):
    with pytest.raises(BackendConfigurationError, match="only one of"):
        DaskExecutionBackend(cluster=local_cluster, address="tcp://127.0.0.1:1")
    with pytest.raises(BackendConfigurationError, match="client: expected a distributed.Client"):
        DaskExecutionBackend(client="tcp://x")
    with pytest.raises(BackendConfigurationError, match="n_workers"):
        DaskExecutionBackend(n_workers=0)
    with pytest.raises(BackendConfigurationError, match="cluster: expected a Dask cluster"):
        DaskExecutionBackend(cluster=42)


async def test_unreachable_scheduler_is_a_backend_error():
    from rhapsody.api import BackendError

    with pytest.raises(BackendError, match="could not connect to the Dask scheduler"):
        await DaskExecutionBackend(address="tcp://127.0.0.1:9", connect_timeout=2)


async def test_long_tasks_report_running(local_cluster):
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        long = ComputeTask(function=time.sleep, args=(1.5,))
        await session.submit_tasks([long])
        assert long.state is TaskState.SUBMITTED
        assert await asyncio.to_thread(wait_until, lambda: long.state is TaskState.RUNNING, 30)
        await long
        assert long.state is TaskState.DONE
