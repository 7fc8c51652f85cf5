"""Faults on a real Dragon runtime: timeouts, cancellation, killed workers and processes,
shutdown with work in flight, and the backend outside the launcher."""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import subprocess
import sys
import tempfile

from rhapsody.api import (
    BackendError,
    ComputeTask,
    Session,
    TaskState,
    TaskTimeoutError,
)
from rhapsody.backends import DragonExecutionBackendV3

from ..conftest import pid_alive, wait_until
from . import payloads
from .conftest import owner_pids


async def _pid_from(path, timeout=30.0):
    for _ in range(int(timeout / 0.05)):
        if path.exists() and path.read_text():
            return int(path.read_text())
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never written")


async def test_a_pool_function_past_its_timeout_fails_and_its_worker_is_replaced(session, tmp_path):
    pid_file = tmp_path / "pid"
    slow = ComputeTask(function=payloads.sleep_forever, args=(str(pid_file),), timeout=1.0)
    await session.submit_tasks([slow])
    pid = await _pid_from(pid_file)
    await session.wait_tasks([slow], timeout=30)
    assert slow.state is TaskState.FAILED and isinstance(slow.exception, TaskTimeoutError)
    assert wait_until(lambda: not pid_alive(pid), timeout=10), "the worker still runs the call"
    after = [ComputeTask(function=payloads.square, args=(i,)) for i in range(20)]
    await session.submit_tasks(after)
    await asyncio.gather(*after)
    assert [t.return_value for t in after] == [i * i for i in range(20)]


async def test_an_executable_past_its_timeout_is_killed_with_its_children(dragon, session):
    task = ComputeTask(
        executable="/bin/sh", arguments=["-c", "sleep 60 & sleep 60; wait"], timeout=1.0
    )
    await session.submit_tasks([task])
    await session.wait_tasks([task], timeout=30)
    assert isinstance(task.exception, TaskTimeoutError)
    assert wait_until(lambda: not owner_pids(dragon, task), timeout=10)


async def test_cancel_stops_running_functions_and_executables(dragon, session, tmp_path):
    pid_file = tmp_path / "pid"
    fn = ComputeTask(function=payloads.sleep_forever, args=(str(pid_file),))
    exe = ComputeTask(executable="/bin/sleep", arguments=["60"])
    job = ComputeTask(
        executable="/bin/sleep",
        arguments=["60"],
        task_backend_specific_kwargs={"process_templates": [(2, {})]},
    )
    await session.submit_tasks([fn, exe, job])
    pid = await _pid_from(pid_file)
    assert wait_until(lambda: owner_pids(dragon, exe) and len(owner_pids(dragon, job)) == 2)
    assert await session.cancel_tasks([fn, exe, job]) == 3
    assert [t.state for t in (fn, exe, job)] == [TaskState.CANCELED] * 3
    assert wait_until(lambda: not pid_alive(pid))
    assert wait_until(lambda: not owner_pids(dragon, exe) and not owner_pids(dragon, job))


async def test_a_worker_killed_with_sigkill_fails_its_task_only(session, tmp_path):
    pid_file = tmp_path / "pid"
    victim = ComputeTask(function=payloads.sleep_forever, args=(str(pid_file),))
    others = [ComputeTask(function=payloads.square, args=(i,)) for i in range(50)]
    await session.submit_tasks([victim, *others])
    pid = await _pid_from(pid_file)
    # past the worker's first tick, so it has said which call it is in (a worker that dies in
    # a call's first 10 ms gets its calls in doubt re-run one by one: see the next test)
    await asyncio.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    await session.wait_tasks([victim, *others], timeout=60)
    assert victim.state is TaskState.FAILED
    assert isinstance(victim.exception, BackendError) and "signal 9" in str(victim.exception)
    assert [t.return_value for t in others] == [i * i for i in range(50)]


async def test_a_call_that_kills_its_worker_fails_alone(session):
    tasks = [ComputeTask(function=payloads.square, args=(i,)) for i in range(200)]
    tasks[77] = ComputeTask(function=payloads.die_hard)
    tasks[150] = ComputeTask(function=payloads.kill_myself)
    await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=120)
    failed = [i for i, t in enumerate(tasks) if t.state is TaskState.FAILED]
    assert failed == [77, 150], [(i, tasks[i].exception) for i in failed]
    assert all(t.return_value == i * i for i, t in enumerate(tasks) if i not in (77, 150))


async def test_an_executable_process_killed_with_sigkill_fails_its_task(dragon, session):
    task = ComputeTask(executable="/bin/sleep", arguments=["60"])
    await session.submit_tasks([task])
    assert wait_until(lambda: owner_pids(dragon, task))
    for pid in owner_pids(dragon, task):
        os.kill(pid, signal.SIGKILL)
    await session.wait_tasks([task], timeout=30)
    assert task.state is TaskState.FAILED and task.exit_code == -9
    assert "signal 9" in str(task.exception)


async def test_shutdown_with_work_in_flight_cancels_it_and_stops_every_process(tmp_path):
    backend = await DragonExecutionBackendV3(num_workers=2)
    session = Session(backends=[backend], work_dir=tmp_path)
    await session.start()
    tasks = [
        ComputeTask(function=payloads.sleep_forever, args=(str(tmp_path / f"p{i}"),))
        for i in range(4)
    ]
    tasks += [ComputeTask(executable="/bin/sleep", arguments=["60"]) for _ in range(3)]
    await session.submit_tasks(tasks)
    await _pid_from(tmp_path / "p0")
    await asyncio.wait_for(session.close(), 60)
    assert {t.state for t in tasks} == {TaskState.CANCELED}
    # the autouse fixture checks that no process of the backend is left


def test_under_plain_python_the_backend_says_to_use_the_launcher(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(
        "import asyncio\n"
        "from rhapsody.api import BackendError\n"
        "from rhapsody.backends import DragonExecutionBackendV3\n"
        "async def main():\n"
        "    try:\n"
        "        await DragonExecutionBackendV3()\n"
        "    except BackendError as e:\n"
        "        print('BackendError:', e)\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGON")}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "BackendError:" in out.stdout and "dragon my_workflow.py" in out.stdout


async def test_a_start_that_fails_midway_leaves_nothing_and_a_later_await_starts_afresh(
    monkeypatch,
):
    from rhapsody_dragon.function_pool import FunctionPool

    spawn, spawned = FunctionPool._spawn, []

    def spawn_once_then_fail(pool):
        if spawned:
            raise OSError("no more processes")
        spawned.append(1)
        spawn(pool)

    monkeypatch.setattr(FunctionPool, "_spawn", spawn_once_then_fail)
    backend = DragonExecutionBackendV3(num_workers=2, name="dragon_failing_start")
    left = os.path.join(tempfile.gettempdir(), f"{backend._token}-*")  # its own directory
    try:
        try:
            await backend
        except OSError as error:
            assert "no more processes" in str(error)
        else:
            raise AssertionError("the start did not fail")
        assert spawned and not glob.glob(left), "the started worker or directory was left"
        assert wait_until(lambda: not owner_pids_of(backend), timeout=15)
        monkeypatch.setattr(FunctionPool, "_spawn", spawn)
        await backend  # the retry starts from nothing
        (task,) = [ComputeTask(function=payloads.add, args=(2, 3))]
        async with Session(backends=[backend]) as session:
            await session.submit_tasks([task])
            await session.wait_tasks([task], timeout=60)
        assert task.state is TaskState.DONE and task.return_value == 5
    finally:
        await backend.shutdown()
    assert not glob.glob(left)


def owner_pids_of(backend) -> list[int]:
    from rhapsody_dragon.worker_side import MARK_BACKEND, marked_pids

    return [p for p in marked_pids(backend._token, MARK_BACKEND) if pid_alive(p)]


async def test_a_completion_that_raises_fails_its_task_and_strands_none(session, monkeypatch):
    from rhapsody_dragon import backend as dragon_backend

    real_apply = dragon_backend.apply_call

    def apply_call(task, outcome, task_dir):
        if task.uid.endswith("bad"):  # a bug met while completing this one
            raise RuntimeError("completion bug")
        return real_apply(task, outcome, task_dir)

    monkeypatch.setattr(dragon_backend, "apply_call", apply_call)
    tasks = [ComputeTask(function=payloads.square, args=(i,)) for i in range(40)]
    tasks[5] = ComputeTask(function=payloads.square, args=(5,), uid="dragon.bad")
    await session.submit_tasks(tasks)
    assert await session.wait_tasks(tasks, timeout=60)
    bad = tasks.pop(5)
    assert bad.state is TaskState.FAILED and isinstance(bad.exception, BackendError)
    assert "completion bug" in str(bad.exception)
    assert all(t.state is TaskState.DONE for t in tasks)


class _BrokenQueue:
    def put(self, item, *args, **kwargs):
        raise RuntimeError("queue gone")


async def test_a_dispatcher_that_cannot_send_fails_the_calls_instead_of_hanging(tmp_path):
    backend = await DragonExecutionBackendV3(num_workers=2)
    async with Session(backends=[backend], work_dir=tmp_path) as session:
        pool = backend._pool
        # both workers ready: the dispatcher then plans a chunk for each, and the second must
        # not be lost when sending the first fails
        assert wait_until(lambda: all(w.ready for w in pool._workers.values()), timeout=30)
        with pool._cond:  # what Dragon would raise for a worker's queue that is gone
            originals = {w: w.inq for w in pool._workers.values()}
            for worker in originals:
                worker.inq = _BrokenQueue()
        try:
            tasks = [ComputeTask(function=payloads.square, args=(i,)) for i in range(6)]
            await session.submit_tasks(tasks)
            assert await session.wait_tasks(tasks, timeout=60)
            late = ComputeTask(function=payloads.square, args=(7,))  # the pool stays broken
            await session.submit_tasks([late])
            assert await session.wait_tasks([late], timeout=30)
        finally:
            for worker, inq in originals.items():
                worker.inq = inq
    for task in [*tasks, late]:
        assert task.state is TaskState.FAILED and isinstance(task.exception, BackendError)
        assert "dispatcher failed" in str(task.exception) and "queue gone" in str(task.exception)


async def test_a_function_whose_module_the_workers_cannot_import_fails_all_its_calls_at_once(
    session, tmp_path, monkeypatch
):
    """The module is importable here (on this process's sys.path only), not in the workers:
    every call of its function fails, saying so, without each being retried alone."""
    import importlib

    from rhapsody_dragon import function_pool

    (tmp_path / "only_here_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    only_here = importlib.import_module("only_here_mod")
    sent: list[int] = []  # the calls of it in each chunk sent
    send = function_pool.FunctionPool._send

    def counting(self, worker, tasks):
        sent.append(sum(t.function is only_here.triple for t in tasks))
        return send(self, worker, tasks)

    monkeypatch.setattr(function_pool.FunctionPool, "_send", counting)
    doomed = [ComputeTask(function=only_here.triple, args=(i,)) for i in range(400)]
    fine = [ComputeTask(function=payloads.square, args=(i,)) for i in range(20)]
    await session.submit_tasks([*doomed, *fine])
    await session.wait_tasks([*doomed, *fine], timeout=120)
    assert [t.return_value for t in fine] == [i * i for i in range(20)]
    assert {t.state for t in doomed} == {TaskState.FAILED}
    assert all(isinstance(t.exception, BackendError) for t in doomed)
    assert "cannot import its function's module 'only_here_mod'" in str(doomed[-1].exception)
    # a few chunks went out before the workers said so; not 400 calls one at a time
    assert sum(sent) <= 400 and len([n for n in sent if n]) <= 8, sent
    # a later call of it fails at once, without reaching a worker
    sent.clear()
    later = ComputeTask(function=only_here.triple, args=(1,))
    await session.submit_tasks([later])
    await session.wait_tasks([later], timeout=30)
    assert later.state is TaskState.FAILED and sent == []
