"""DragonExecutionBackendV3 on a real Dragon runtime: the issue's user code, functions and
executables, results and errors."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from rhapsody.api import ComputeTask, Session, TaskExecutionError, TaskState
from rhapsody.backends import ConcurrentExecutionBackend, DragonExecutionBackendV3
from rhapsody.backends.execution import DragonExecutionBackend

from ..conftest import wait_until
from . import payloads


async def test_the_issue_example_runs_hostname_16_times(tmp_path):
    dragon_be = await DragonExecutionBackendV3(num_workers=8, name="dragon_hpc")
    async with Session(backends=[dragon_be], work_dir=tmp_path) as session:
        tasks = [ComputeTask(executable="hostname", backend=dragon_be.name) for _ in range(16)]
        await session.submit_tasks(tasks)
        results = await asyncio.gather(*tasks)
    assert dragon_be.num_workers == 8
    assert [t.state for t in results] == [TaskState.DONE] * 16
    assert {t.return_value for t in results} == {socket.gethostname() + "\n"}
    assert all(t.exit_code == 0 for t in results)


def compute_function(x=4):
    return x * 10


async def test_mixed_with_a_concurrent_backend_routed_by_name(tmp_path):
    be_local = ConcurrentExecutionBackend(name="local_cpu")
    be_remote = DragonExecutionBackendV3(name="hpc_gpu")
    await asyncio.gather(be_local, be_remote)
    async with Session(backends=[be_local, be_remote], work_dir=tmp_path) as session:
        task1 = ComputeTask(function=compute_function, backend=be_local.name)
        task2 = ComputeTask(function=compute_function, backend=be_remote.name)
        await session.submit_tasks([task1, task2])
        await asyncio.gather(task1, task2)
    assert (task1.backend, task2.backend) == ("local_cpu", "hpc_gpu")
    assert task1.return_value == task2.return_value == 40


async def test_default_pool_size_is_the_cores_given_to_this_process():
    backend = await DragonExecutionBackendV3()
    try:
        assert backend.num_workers == len(os.sched_getaffinity(0))
    finally:
        await backend.shutdown()


def test_alias_is_the_same_backend():
    assert issubclass(DragonExecutionBackend, DragonExecutionBackendV3)


async def test_functions_return_their_values(session):
    tasks = [ComputeTask(function=payloads.add, args=(i,), kwargs={"b": 1}) for i in range(500)]
    tasks.append(ComputeTask(function=payloads.async_square, args=(7,)))
    await session.submit_tasks(tasks)
    await asyncio.gather(*tasks)
    assert [t.return_value for t in tasks[:-1]] == [i + 1 for i in range(500)]
    assert tasks[-1].return_value == 49


async def test_a_function_that_raises_fails_with_its_exception_and_traceback(session):
    bad = ComputeTask(function=payloads.boom, args=("no such sample",))
    good = ComputeTask(function=payloads.square, args=(5,))
    await session.submit_tasks([bad, good])
    await session.wait_tasks([bad, good])
    assert bad.state is TaskState.FAILED and good.return_value == 25
    assert isinstance(bad.exception, ValueError) and "no such sample" in str(bad.exception)
    assert "def boom" in bad.traceback or "boom" in bad.traceback


async def test_an_argument_that_does_not_pickle_fails_only_its_task(session):
    tasks = [ComputeTask(function=payloads.square, args=(i,)) for i in range(10)]
    tasks.insert(4, ComputeTask(function=payloads.square, args=(threading.Lock(),)))
    await session.submit_tasks(tasks)
    await session.wait_tasks(tasks)
    assert tasks[4].state is TaskState.FAILED and "pickle" in str(tasks[4].exception)
    assert [t.return_value for i, t in enumerate(tasks) if i != 4] == [i * i for i in range(10)]


async def test_executables_give_stdout_stderr_and_exit_code(session):
    ok = ComputeTask(executable="/bin/sh", arguments=["-c", "echo out; echo err >&2"])
    bad = ComputeTask(executable="/bin/sh", arguments=["-c", "echo why >&2; exit 7"])
    await session.submit_tasks([ok, bad])
    await session.wait_tasks([ok, bad])
    assert (ok.state, ok.stdout, ok.stderr, ok.exit_code) == (TaskState.DONE, "out\n", "err\n", 0)
    assert ok.return_value == "out\n"
    assert bad.state is TaskState.FAILED and bad.exit_code == 7
    assert isinstance(bad.exception, TaskExecutionError) and "why" in str(bad.exception)


async def test_executables_run_without_a_shell_unless_asked(session, tmp_path):
    literal = ComputeTask(executable="/bin/echo", arguments=["$HOME", "a b"])
    shell = ComputeTask(
        executable="echo",
        arguments=["$MY_VAR"],
        task_backend_specific_kwargs={"shell": True, "env": {"MY_VAR": "from-env"}},
    )
    cwd = ComputeTask(executable="pwd", task_backend_specific_kwargs={"cwd": str(tmp_path)})
    await session.submit_tasks([literal, shell, cwd])
    await asyncio.gather(literal, shell, cwd)
    assert literal.stdout == "$HOME a b\n"
    assert shell.stdout == "from-env\n"
    assert cwd.stdout == f"{tmp_path}\n"


async def test_a_missing_executable_fails_with_a_clear_error(session):
    task = ComputeTask(executable="no-such-program-here")
    await session.submit_tasks([task])
    await session.wait_tasks([task], timeout=30)
    assert task.state is TaskState.FAILED
    assert "no-such-program-here" in str(task.exception)


async def test_capture_stdio_writes_files(session):
    fn = ComputeTask(function=payloads.chatty, args=(3,), capture_stdio=True)
    exe = ComputeTask(executable="/bin/echo", arguments=["hello"], capture_stdio=True)
    await session.submit_tasks([fn, exe])
    await asyncio.gather(fn, exe)
    assert fn.return_value == 3
    assert open(fn.stdout).read() == "out 3\n" and open(fn.stderr).read() == "err 3\n"
    assert open(exe.stdout).read() == "hello\n"
    assert os.path.dirname(exe.stdout) == session.task_dir


async def test_many_functions_in_several_batches(session):
    batches = [
        [ComputeTask(function=payloads.square, args=(i,)) for i in range(b * 1000, (b + 1) * 1000)]
        for b in range(3)
    ]
    for batch in batches:
        await session.submit_tasks(batch)
    done = await asyncio.gather(*(t for b in batches for t in b))
    assert [t.return_value for t in done] == [i * i for i in range(3000)]


async def test_bad_num_workers_is_rejected_before_anything_starts():
    from rhapsody.api import BackendConfigurationError

    with pytest.raises(BackendConfigurationError, match="num_workers"):
        DragonExecutionBackendV3(num_workers=0)


async def test_where_and_when_tasks_ran(session):
    fn = ComputeTask(function=payloads.square, args=(3,))
    exe = ComputeTask(executable="/bin/sleep", arguments=["0.2"])
    job = ComputeTask(
        executable="/bin/true", task_backend_specific_kwargs={"process_templates": [(2, {})]}
    )
    await session.submit_tasks([fn, exe, job])
    await asyncio.gather(fn, exe, job)
    from rhapsody_dragon.runtime import node_hostnames

    here = node_hostnames()  # Dragon's names of the nodes (not always socket.gethostname())
    assert fn.host in here and fn.worker.startswith("worker ") and "puid" in fn.worker
    assert exe.host in here and exe.worker.startswith("puid ")
    assert job.worker == "2 processes"
    for task in (fn, exe, job):
        assert task.submitted_at <= task.started_at <= task.ended_at
    assert exe.run_time >= 0.15


async def test_telemetry_samples_each_node_and_leaves_no_sampler(dragon, tmp_path):
    from rhapsody_dragon.runtime import node_hostnames
    from rhapsody_dragon.worker_side import marked_pids

    session = Session(backends=[dragon], work_dir=tmp_path)
    telemetry = await session.start_telemetry(resource_poll_interval=0.2, checkpoint_path=tmp_path)
    samples = []
    telemetry.subscribe(lambda e: samples.append(e) if e.event_type == "ResourceUpdate" else None)
    (sampler,) = [s for _, s in telemetry._samplers]
    tasks = [ComputeTask(function=payloads.square, args=(i,)) for i in range(10)]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        deadline = asyncio.get_running_loop().time() + 30
        while not samples and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)  # the node readers start with the first poll
        assert wait_until(lambda: bool(marked_pids(sampler.owner)), timeout=5)
    assert samples, "no resource sample from the Dragon node"
    assert {e.node_id for e in samples} <= set(node_hostnames())
    assert all(e.backend == "dragon" and 0 <= e.cpu_percent <= 100 for e in samples)
    assert all(0 < e.memory_percent < 100 for e in samples)
    assert wait_until(lambda: not marked_pids(sampler.owner), timeout=15)  # readers killed
    spans = [s for s in telemetry.read_traces() if s.name == "task"]
    assert len(spans) == 10 and all(s.attributes["host"] in node_hostnames() for s in spans)
