"""Every submitted task reaches exactly one terminal state, and nothing outlives the session:
the cases that used to hang or leak on the concurrent backend (real processes throughout)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor

import psutil
import pytest

from rhapsody.api import ComputeTask, Session, SessionError, TaskState
from rhapsody.backends import ConcurrentExecutionBackend

from ..conftest import pid_alive, wait_until
from .fakes import ManualBackend

# Not fork: a pool forking from a process that runs threads can hang a worker at start
# (the backend warns about it; seen in this suite under load).
SPAWN = multiprocessing.get_context("spawn")


def add(a: int, b: int = 0) -> int:
    return a + b


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def numbers(n: int):
    return (i for i in range(n))


def count_up(n: int):
    yield from range(n)


class FlakyPath(os.PathLike):
    """Accepted when the task is built and submitted, raises when the backend starts it."""

    def __fspath__(self) -> str:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name in ("start_process", "run_executable"):
                raise RuntimeError("this path went away")
            frame = frame.f_back  # type: ignore[assignment]
        return "/bin/true"


async def test_any_exception_while_starting_fails_the_task():
    task = ComputeTask(executable=FlakyPath())
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        await session.submit_tasks([task])
        await session.wait_tasks([task], timeout=10)
    assert task.state is TaskState.FAILED
    assert "this path went away" in str(task.exception)


@pytest.mark.parametrize("yields", [0, 1, 3, 6, 12, 24])
async def test_a_canceled_submission_leaves_nothing_half_done(yields):
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=add, args=(i,)) for i in range(12_000)]
        submission = asyncio.ensure_future(session.submit_tasks(tasks))
        for _ in range(yields):
            await asyncio.sleep(0)
        submission.cancel()
        await asyncio.gather(submission, return_exceptions=True)
        for _ in range(200):  # an accepted batch goes on registering after the caller left
            if len(session.tasks) in (0, len(tasks)):
                break
            await asyncio.sleep(0.01)
        registered = list(session.tasks.values())
        # all or nothing: either no task was taken, or every task runs to the end
        assert len(registered) in (0, len(tasks))
        if registered:
            await session.wait_tasks(registered, timeout=60)
            assert all(t.state is TaskState.DONE for t in tasks)
        else:
            assert all(t.state is TaskState.NEW and t.future is None for t in tasks)
            await session.submit_tasks(tasks)  # nothing was claimed: they can go again
            await session.wait_tasks(tasks, timeout=60)


async def test_concurrent_submissions_of_one_uid_accept_only_one():
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        first = [ComputeTask(uid=f"t{i}", function=add, args=(i,)) for i in range(5000)]
        second = [ComputeTask(uid=f"t{i}", function=add, args=(i,)) for i in range(5000)]
        results = await asyncio.gather(
            session.submit_tasks(first), session.submit_tasks(second), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], SessionError)
        accepted = first if not isinstance(results[0], BaseException) else second
        await session.wait_tasks(accepted, timeout=60)
        assert all(t.state is TaskState.DONE for t in accepted)
        assert len(session.tasks) == 5000


async def test_executables_beside_a_process_pool_end_when_they_end(no_stray_children):
    backend = await ConcurrentExecutionBackend(ProcessPoolExecutor(2, mp_context=SPAWN))
    async with Session(backends=[backend]) as session:
        slow = [ComputeTask(function=nap, args=(20,)) for _ in range(2)]
        await session.submit_tasks(slow)
        sleeps = [ComputeTask(executable="/bin/sleep", arguments=["0.2"]) for _ in range(4)]
        await session.submit_tasks(sleeps)
        await session.wait_tasks(sleeps, timeout=10)  # not held by the pool's forked workers
        assert all(t.state is TaskState.DONE for t in sleeps)
        assert all(t.state is TaskState.RUNNING for t in slow)
        start = time.monotonic()
    assert all(t.state is TaskState.CANCELED for t in slow)
    assert time.monotonic() - start < 10


async def test_close_kills_process_pool_workers_running_functions():
    pool = ProcessPoolExecutor(2, mp_context=SPAWN)
    backend = await ConcurrentExecutionBackend(pool)
    async with Session(backends=[backend]) as session:
        slow = [ComputeTask(function=nap, args=(30,)) for _ in range(2)]
        await session.submit_tasks(slow)
        assert wait_until(lambda: len(pool._processes or {}) == 2, 10)
        await asyncio.sleep(0.3)
        workers = [p.pid for p in pool._processes.values()]
    assert wait_until(lambda: not any(pid_alive(p) for p in workers), 5), workers
    assert all(t.state is TaskState.CANCELED for t in slow)


async def test_children_left_by_a_finished_executable_are_stopped(no_stray_children):
    task = ComputeTask(executable="/bin/sh", arguments=["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        await session.submit_tasks([task])
        await session.wait_tasks([task], timeout=10)
    assert task.state is TaskState.DONE
    orphan = int(task.stdout.strip())
    assert wait_until(lambda: not pid_alive(orphan), 5), f"pid {orphan} still runs"


async def test_generators_are_values_not_coroutines():
    tasks = [
        ComputeTask(function=numbers, args=(3,)),
        ComputeTask(function=count_up, args=(3,)),
    ]
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=10)
    assert [t.state for t in tasks] == [TaskState.DONE, TaskState.DONE]
    assert [list(t.return_value) for t in tasks] == [[0, 1, 2], [0, 1, 2]]


async def test_generators_on_a_process_pool_fail_clearly():
    tasks = [ComputeTask(function=count_up, args=(3,))]
    backend = await ConcurrentExecutionBackend(ProcessPoolExecutor(1, mp_context=SPAWN))
    async with Session(backends=[backend]) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=30)
    assert tasks[0].state is TaskState.FAILED
    assert "generator" in str(tasks[0].exception)
    assert "bad yield" not in str(tasks[0].exception)


def test_remote_exceptions_keep_their_traceback():
    import pickle

    from rhapsody.backends.remote_errors import RemoteTaskError, portable_exception

    def inner():
        raise KeyError("deep")

    try:
        inner()
    except KeyError as exc:
        portable, text = portable_exception(exc)
    back = pickle.loads(pickle.dumps(portable))
    assert isinstance(back, KeyError) and "inner" in text
    import traceback

    assert "inner" in "".join(traceback.format_tb(back.__traceback__))

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("no")

    portable, _ = portable_exception(Unpicklable("x"))
    assert isinstance(portable, RemoteTaskError) and "Unpicklable: x" in str(portable)


def test_exit_wording_is_shared():
    from rhapsody.backends.exit_status import describe_exit

    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(None) == "ended without an exit code"


CTRL_C_WORKFLOW = textwrap.dedent(
    """
    import asyncio, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    def nap(s):
        time.sleep(s)

    tasks = []

    async def main():
        threads = await ConcurrentExecutionBackend(name="threads")
        procs = await ConcurrentExecutionBackend(ProcessPoolExecutor(2), name="procs")
        async with Session(backends=[threads, procs]) as session:
            tasks.extend(ComputeTask(function=nap, args=(60,), backend="procs") for _ in range(2))
            tasks.extend(
                ComputeTask(executable="/bin/sleep", arguments=["60"], backend="threads")
                for _ in range(3)
            )
            tasks.append(ComputeTask(function=nap, args=(1,), backend="threads"))
            await session.submit_tasks(tasks)
            while sum(t.state == "RUNNING" for t in tasks) < len(tasks):
                await asyncio.sleep(0.05)
            print("running", flush=True)
            await session.wait_tasks(tasks)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("states", sorted({str(t.state) for t in tasks}), flush=True)
    """
)


@pytest.mark.parametrize("with_close", [True, False])
def test_ctrl_c_ends_the_workflow_promptly_and_leaves_nothing(tmp_path, with_close):
    script = CTRL_C_WORKFLOW
    if not with_close:  # no `async with`: only the exit hook stands between us and strays
        script = script.replace(
            "async with Session(backends=[threads, procs]) as session:",
            "session = await Session(backends=[threads, procs]).start()\n    if True:",
        )
    path = tmp_path / "workflow.py"
    path.write_text(script)
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(tree) >= 5  # 2 pool workers (+ helpers) and 3 sleeps
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        proc.kill()
    assert took < 10, f"took {took:.1f}s to end; stderr: {err[-2000:]}"
    if with_close:
        assert "states ['CANCELED']" in out, (out, err[-2000:])
    assert wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in tree), 5)


class _FailingStart(ManualBackend):
    async def initialize(self) -> None:
        await asyncio.sleep(0.01)
        raise OSError("no allocation")


class _SlowStart(ManualBackend):
    async def initialize(self) -> None:
        await asyncio.sleep(0.3)  # still starting when the other one failed


async def test_a_session_whose_backend_fails_to_start_shuts_the_others_down():
    slow, failing = _SlowStart("slow"), _FailingStart("failing")
    session = Session(backends=[slow, failing])
    try:
        async with session:
            raise AssertionError("the session started")
    except OSError as error:
        assert "no allocation" in str(error)
    # the slow one had finished starting, then was shut down: nothing of it runs on
    assert slow.initialized and slow.shut_down and failing.shut_down
    with pytest.raises(SessionError, match="closed"):
        await session.submit_tasks([ComputeTask(executable="/bin/true")])


class _HungStart(ManualBackend):
    async def initialize(self) -> None:
        await asyncio.Event().wait()  # a third-party backend whose start never ends


async def test_a_backend_that_never_starts_does_not_hold_a_failed_start_for_ever(caplog):
    hung, failing = _HungStart("hung"), _FailingStart("failing")
    session = Session(backends=[hung, failing])
    session.shutdown_timeout = 0.3
    with pytest.raises(OSError, match="no allocation"):
        async with asyncio.timeout(30):
            await session.__aenter__()
    assert "'hung' was still starting 0.3s after another one failed" in caplog.text
    assert session.closed
