"""rhapsody-py 0.6 user code on the Dask backend, unchanged: its module path, its user-guide
examples, dict tasks, callbacks, extra fields, NumPy numbers, and tasks that travel as data."""

from __future__ import annotations

import asyncio
import json
import pickle

import numpy as np

import rhapsody
from rhapsody.api import ComputeTask, Session, TaskState


def compute_square(n):
    return n * n


async def fetch_data(n):
    await asyncio.sleep(0.01)
    return n * 2


async def test_the_rhapsody_py_guide_example_runs_unchanged():
    # rhapsody-py docs/getting-started/advanced-usage.md, "Dask Distributed Backend"
    from rhapsody.backends import DaskExecutionBackend

    async with DaskExecutionBackend(resources={"n_workers": 1, "threads_per_worker": 2}) as backend:
        session = Session(backends=[backend])
        i = 4
        tasks = [
            ComputeTask(function=compute_square, args=(i,)),  # sync fn
            ComputeTask(function=fetch_data, args=(i,)),  # async fn
            ComputeTask(executable="/bin/echo", arguments=[f"{i}"]),  # executable
        ]
        async with session:
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks)

        lines = []
        for t in tasks:
            result = t.return_value if t.function else t.stdout
            lines.append(f"{t.uid}: {t.state} -> {result}")
    assert [line.split(": ", 1)[1] for line in lines] == ["DONE -> 16", "DONE -> 8", "DONE -> 4\n"]


async def test_rhapsody_py_module_path_dicts_callbacks_and_extras(local_cluster):
    from rhapsody.backends.execution.dask_parallel import DaskExecutionBackend

    backend = await DaskExecutionBackend(cluster=local_cluster)
    seen = []
    backend.register_callback(lambda task, state: seen.append((task["uid"], str(state))))
    async with rhapsody.Session(backends=[backend]) as session:
        as_dict = {"uid": "dk.dict", "function": compute_square, "args": (np.int64(6),)}
        tagged = ComputeTask(
            function=compute_square,
            args=(3,),
            uid="dk.tag",
            priority="high",
            timeout=np.float64(30),
        )
        failing = ComputeTask(executable="/bin/sh", arguments=["-c", "exit 7"], uid="dk.fail")
        await session.submit_tasks([as_dict, tagged, failing])
        results = await session.wait_tasks([as_dict, tagged, failing], timeout=60)
        assert [r["state"] for r in results] == ["DONE", "DONE", "FAILED"]
        assert await backend.state() == "RUNNING"
    assert as_dict["state"] == "DONE" and as_dict["return_value"] == 36
    assert tagged["priority"] == "high" and tagged.timeout == 30.0 and type(tagged.timeout) is float
    assert failing.exit_code == 7 and str(failing.exception) == "task 'dk.fail' exited with code 7"
    states = {}
    for uid, state in seen:
        states.setdefault(uid, []).append(state)
    # RUNNING is reported when Dask tells the client (always for a task with a timeout)
    expected = {"dk.dict": "DONE", "dk.tag": "DONE", "dk.fail": "FAILED"}
    for uid, terminal in expected.items():
        assert states[uid] in ([terminal], ["RUNNING", terminal]), (uid, states[uid])
    assert states["dk.tag"] == ["RUNNING", "DONE"]


async def test_tasks_checkpointed_as_json_or_pickle_run_on_dask(local_cluster):
    from rhapsody.backends import DaskExecutionBackend

    original = [
        ComputeTask(function=compute_square, args=(5,), uid="ck.1", stage=1),
        ComputeTask(function=lambda x: x + 1, args=(1,), uid="ck.2"),  # travels by value
        ComputeTask(executable="/bin/echo", arguments=["ck"], uid="ck.3"),
    ]
    restored = [
        rhapsody.BaseTask.from_dict(json.loads(json.dumps(original[0].to_dict()))),
        pickle.loads(pickle.dumps(original[1])),
        rhapsody.BaseTask.from_dict(json.loads(json.dumps(original[2].to_dict()))),
    ]
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        await session.submit_tasks(restored)
        await session.wait_tasks(restored, timeout=60)
    assert [t.state for t in restored] == [TaskState.DONE] * 3
    assert [t.return_value for t in restored[:2]] == [25, 2] and restored[2].stdout == "ck\n"
    assert restored[0]["stage"] == 1
    # and after they ran, they round-trip with their results
    again = rhapsody.BaseTask.from_dict(json.loads(json.dumps(restored[0].to_dict())))
    assert again.state is TaskState.DONE and again.return_value == 25


async def test_numpy_numbers_configure_the_backend_and_its_options(local_cluster):
    from rhapsody.api import BackendConfigurationError
    from rhapsody.backends import DaskExecutionBackend

    DaskExecutionBackend(n_workers=np.int64(1), connect_timeout=np.float32(5))  # accepted
    try:
        DaskExecutionBackend(n_workers=True)
    except BackendConfigurationError as exc:
        assert "n_workers" in str(exc)
    else:
        raise AssertionError("n_workers=True was accepted")
    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        task = ComputeTask(
            function=compute_square,
            args=(2,),
            task_backend_specific_kwargs={"priority": np.int64(3), "retries": np.int32(1)},
        )
        await session.submit_tasks([task])
        assert (await task).return_value == 4


async def test_where_and_when_tasks_ran_on_dask(local_cluster):
    import socket

    from rhapsody.backends import DaskExecutionBackend

    backend = await DaskExecutionBackend(cluster=local_cluster)
    async with Session(backends=[backend]) as session:
        fn = ComputeTask(function=compute_square, args=(2,))
        exe = ComputeTask(executable="/bin/sleep", arguments=["0.2"])
        await session.submit_tasks([fn, exe])
        await session.wait_tasks([fn, exe], timeout=60)
    workers = set(local_cluster.scheduler_info["workers"])
    for task in (fn, exe):
        assert task.host == socket.gethostname() and task.worker in workers
        assert task.submitted_at <= task.started_at <= task.ended_at
    assert exe.run_time >= 0.15


def test_the_worker_side_module_imported_first_breaks_no_plugin():
    # A Dask worker process imports rhapsody_dask.worker_side before anything else.
    import subprocess
    import sys

    code = (
        "import rhapsody_dask.worker_side\n"
        "import rhapsody\n"
        "assert rhapsody.discover_backends()['dask'], rhapsody.discover_backends()['dask']\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
