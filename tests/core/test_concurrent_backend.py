"""The concurrent backend for real: threads, process pools and subprocesses."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from rhapsody.api import (
    BackendConfigurationError,
    BackendError,
    ComputeTask,
    Session,
    TaskExecutionError,
    TaskState,
    TaskTimeoutError,
    TaskValidationError,
)
from rhapsody.backends import ConcurrentExecutionBackend

from ..conftest import pid_alive, wait_until

# Not fork: a pool forking from a process that runs threads can hang a worker at start
# (the backend warns about it; seen in this suite under load).
SPAWN = multiprocessing.get_context("spawn")


def add(a: int, b: int = 0) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


def shout(text: str) -> str:
    print(text)
    print("warning!", file=sys.stderr)
    return text.upper()


def die_hard() -> None:
    os._exit(3)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def run(tasks, **backend_kwargs):
    backend = await ConcurrentExecutionBackend(**backend_kwargs)
    async with Session(backends=[backend]) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    return tasks


async def test_sync_and_async_functions():
    tasks = [
        ComputeTask(function=add, args=(1,), kwargs={"b": 2}),
        ComputeTask(function=async_add, args=(3, 4)),
    ]
    await run(tasks)
    assert [t.return_value for t in tasks] == [3, 7]
    assert all(t.state is TaskState.DONE for t in tasks)


async def test_executable_no_shell_by_default(work_dir):
    tasks = [
        ComputeTask(executable="/bin/echo", arguments=["$HOME", "a b"]),
        ComputeTask(
            executable="/bin/echo",
            arguments=["$MY_VAR"],
            task_backend_specific_kwargs={"shell": True, "env": {"MY_VAR": "shell!"}},
        ),
    ]
    await run(tasks)
    assert tasks[0].stdout == "$HOME a b\n" and tasks[0].return_value == "$HOME a b\n"
    assert tasks[0].exit_code == 0
    assert tasks[1].stdout == "shell!\n"


async def test_cwd_and_env(work_dir):
    sub = work_dir / "sub"
    sub.mkdir()
    t = ComputeTask(
        executable=sys.executable,
        arguments=["-c", "import os; print(os.getcwd(), os.environ['X'], 'PATH' in os.environ)"],
        task_backend_specific_kwargs={"cwd": str(sub), "env": {"X": "42"}},
    )
    await run([t])
    assert t.stdout.split() == [str(sub), "42", "True"]


async def test_missing_executable_fails_clearly():
    t = ComputeTask(executable="/no/such/program")
    await run([t])
    assert t.state is TaskState.FAILED
    assert isinstance(t.exception, TaskExecutionError)
    assert "could not start '/no/such/program'" in str(t.exception)


async def test_capture_stdio_writes_files_under_session_dir(work_dir):
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend], work_dir=work_dir, uid="s1") as session:
        exe = ComputeTask(
            executable="/bin/sh", arguments=["-c", "echo out; echo err >&2"], capture_stdio=True
        )
        fn = ComputeTask(function=shout, args=("hello",), capture_stdio=True)
        other = ComputeTask(function=shout, args=("not captured",))
        await session.submit_tasks([exe, fn, other])
        await session.wait_tasks([exe, fn, other])
    base = work_dir / "s1"
    assert exe.stdout == str(base / f"{exe.uid}.stdout")
    assert (base / f"{exe.uid}.stdout").read_text() == "out\n"
    assert (base / f"{exe.uid}.stderr").read_text() == "err\n"
    assert fn.return_value == "HELLO"
    assert (base / f"{fn.uid}.stdout").read_text() == "hello\n"
    assert (base / f"{fn.uid}.stderr").read_text() == "warning!\n"
    assert not (base / f"{other.uid}.stdout").exists()


async def test_no_session_dir_without_capture(work_dir):
    await run([ComputeTask(function=add, args=(1,))])
    assert list(work_dir.iterdir()) == []


async def test_input_and_output_files(work_dir):
    (work_dir / "in.txt").write_text("data")
    ok = ComputeTask(
        executable="/bin/cp",
        arguments=["in.txt", "out.txt"],
        input_files=["in.txt"],
        output_files=["out.txt"],
    )
    no_input = ComputeTask(
        executable="/bin/cat", arguments=["absent.txt"], input_files=["absent.txt"]
    )
    no_output = ComputeTask(executable="/bin/true", output_files=["never.txt"])
    await run([ok, no_input, no_output])
    assert ok.state is TaskState.DONE and (work_dir / "out.txt").read_text() == "data"
    assert no_input.state is TaskState.FAILED and "absent.txt" in str(no_input.exception)
    assert no_output.state is TaskState.FAILED and "never.txt" in str(no_output.exception)


async def test_unknown_option_rejected_before_anything_runs(work_dir):
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        good = ComputeTask(executable="/bin/touch", arguments=["ran"])
        bad = ComputeTask(executable="/bin/true", task_backend_specific_kwargs={"cwdd": "/"})
        with pytest.raises(
            TaskValidationError,
            match=r"kwargs\.cwdd: .*one of \['cwd', 'env', 'shell', 'launcher'\]",
        ):
            await session.submit_tasks([good, bad])
        with pytest.raises(TaskValidationError, match="dict of str to str"):
            await session.submit_tasks(
                [
                    ComputeTask(
                        executable="/bin/true", task_backend_specific_kwargs={"env": {"A": 1}}
                    )
                ]
            )
        with pytest.raises(TaskValidationError, match="shell only for executables"):
            await session.submit_tasks(
                [ComputeTask(function=add, args=(1,), task_backend_specific_kwargs={"shell": True})]
            )
    assert not (work_dir / "ran").exists() and good.future is None


def test_bad_backend_arguments():
    with pytest.raises(
        BackendConfigurationError, match="executor: expected a concurrent.futures.Executor"
    ):
        ConcurrentExecutionBackend(executor="threads")
    with pytest.raises(BackendConfigurationError, match="max_processes"):
        ConcurrentExecutionBackend(max_processes=0)
    with pytest.raises(BackendConfigurationError, match="name"):
        ConcurrentExecutionBackend(name="")


async def test_timeout_kills_the_process_group(work_dir, no_stray_children):
    t = ComputeTask(
        executable="/bin/sh", arguments=["-c", "sleep 30 & echo $! > child.pid; wait"], timeout=0.5
    )
    started = time.monotonic()
    await run([t])
    assert time.monotonic() - started < 10
    assert t.state is TaskState.FAILED and isinstance(t.exception, TaskTimeoutError)
    child = int((work_dir / "child.pid").read_text())
    assert wait_until(lambda: not pid_alive(child)), "the task's child process survived"


async def test_cancel_kills_the_subprocess(work_dir, no_stray_children):
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        t = ComputeTask(executable="/bin/sh", arguments=["-c", "echo $$ > me.pid; sleep 30"])
        await session.submit_tasks([t])
        assert wait_until(
            lambda: (
                (work_dir / "me.pid").exists() and (work_dir / "me.pid").read_text().strip() != ""
            ),
            timeout=10,
        )
        await asyncio.sleep(0.1)
        assert await session.cancel_tasks([t]) == 1
        assert t.state is TaskState.CANCELED
    pid = int((work_dir / "me.pid").read_text())
    assert wait_until(lambda: not pid_alive(pid))


async def test_shutdown_kills_every_child(work_dir, no_stray_children):
    backend = await ConcurrentExecutionBackend(max_processes=4)
    session = Session(backends=[backend])
    tasks = [
        ComputeTask(executable="/bin/sh", arguments=["-c", f"echo $$ > p{i}; sleep 30"])
        for i in range(8)
    ]
    futures = await session.submit_tasks(tasks)
    assert wait_until(lambda: sum(os.path.exists(f"p{i}") for i in range(8)) == 4, timeout=10)
    await session.close()
    assert all(t.state is TaskState.CANCELED for t in tasks)
    assert all(f.done() for f in futures)
    assert sum(os.path.exists(f"p{i}") for i in range(8)) == 4  # queued ones never started


async def test_process_pool_functions(no_stray_children):
    pool = ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    tasks = [ComputeTask(function=add, args=(i, 1)) for i in range(20)]
    tasks.append(ComputeTask(function=async_add, args=(1, 1)))
    tasks.append(ComputeTask(function=lambda: os.getpid()))  # shipped with cloudpickle
    await run(tasks, executor=pool)
    assert [t.return_value for t in tasks[:21]] == [*(i + 1 for i in range(20)), 2]
    assert tasks[-1].return_value != os.getpid()


def raise_value_error() -> None:
    raise ValueError("remote failure")


async def test_process_pool_exception_keeps_remote_traceback(no_stray_children):
    t = ComputeTask(function=raise_value_error)
    await run([t], executor=ProcessPoolExecutor(max_workers=1, mp_context=SPAWN))
    assert isinstance(t.exception, ValueError) and "remote failure" in str(t.exception)
    assert 'raise ValueError("remote failure")' in t.traceback


@pytest.mark.parametrize("killer", [die_hard, kill_myself])
async def test_process_pool_worker_death_fails_only_that_task(killer, no_stray_children):
    backend = await ConcurrentExecutionBackend(
        executor=ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    )
    async with Session(backends=[backend]) as session:
        bystanders = [ComputeTask(function=nap, args=(0.3,)) for _ in range(3)]
        culprit = ComputeTask(function=killer)
        batch = [*bystanders, culprit]
        await session.submit_tasks(batch)
        await session.wait_tasks(batch, timeout=60)
        assert culprit.state is TaskState.FAILED
        assert isinstance(culprit.exception, BackendError)
        assert "worker process running it died" in str(culprit.exception)
        assert [t.state for t in bystanders] == ["DONE"] * 3
        later = [ComputeTask(function=add, args=(i,)) for i in range(5)]
        await session.submit_tasks(later)
        await session.wait_tasks(later, timeout=60)
        assert [t.return_value for t in later] == list(range(5))


async def test_process_pool_functions_by_value_are_pickled_afresh_per_batch(no_stray_children):
    # A function cloudpickle sends by value (a closure here, a function of the user's script
    # alike) is pickled once per batch, not once per task: a later batch sees the values of its
    # time, not the first batch's pickle; two functions of the same code stay two functions in
    # the workers (their cache is keyed by the pickle).
    box = [1]

    def boxed() -> int:
        return box[0]

    def constant(value: int):
        return lambda: value

    backend = await ConcurrentExecutionBackend(
        executor=ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    )
    async with Session(backends=[backend]) as session:
        first = [ComputeTask(function=boxed) for _ in range(6)]
        await session.submit_tasks(first)
        await session.wait_tasks(first, timeout=60)  # (a task launched later sees later values)
        box[0] = 2
        second = [ComputeTask(function=boxed) for _ in range(6)]
        mixed = [ComputeTask(function=constant(i % 3)) for i in range(9)]
        with_args = [ComputeTask(function=add, args=(i,), kwargs={"b": 10}) for i in range(3)]
        await session.submit_tasks([*second, *mixed, *with_args])
        await session.wait_tasks([*first, *second, *mixed, *with_args], timeout=60)
        assert [t.return_value for t in first] == [1] * 6
        assert [t.return_value for t in second] == [2] * 6
        assert [t.return_value for t in mixed] == [i % 3 for i in range(9)]
        assert [t.return_value for t in with_args] == [10, 11, 12]


async def test_a_pool_whose_workers_die_at_start_fails_every_task_at_once(no_stray_children):
    # Workers that die before running anything (here their initializer exits; a script without
    # a __main__ guard under spawn does the same): no task is to blame, and trying each one
    # alone in a fresh pool would take two pool starts per task.
    pool = ProcessPoolExecutor(max_workers=2, mp_context=SPAWN, initializer=os._exit, initargs=(3,))
    backend = await ConcurrentExecutionBackend(executor=pool)
    async with Session(backends=[backend]) as session:
        for _ in range(2):  # a later submission gets a fresh pool, and the same verdict
            tasks = [ComputeTask(function=add, args=(i,)) for i in range(40)]
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks, timeout=120)
            assert [t.state for t in tasks] == [TaskState.FAILED] * 40
            culprits = [t for t in tasks if "died abruptly" in str(t.exception)]
            # at most the few that broke the first two pools are blamed; the rest are not
            assert len(culprits) <= 4
            rest = [t for t in tasks if t not in culprits]
            assert all(isinstance(t.exception, BackendError) for t in rest)
            assert all("cannot run anything" in str(t.exception) for t in rest)
            assert '__name__ == "__main__"' in str(rest[0].exception)


async def test_closing_while_a_dying_pool_is_probed_ends_every_task(no_stray_children):
    # closed as soon as the first pool broke: whatever the probe is doing then, every task ends
    pool = ProcessPoolExecutor(max_workers=2, mp_context=SPAWN, initializer=os._exit, initargs=(3,))
    backend = await ConcurrentExecutionBackend(executor=pool)
    session = Session(backends=[backend])
    tasks = [ComputeTask(function=add, args=(i,)) for i in range(20)]
    await session.submit_tasks(tasks)
    for _ in range(600):
        if any(t.done for t in tasks) or backend._dispatcher._probing is not None:
            break
        await asyncio.sleep(0.01)
    await asyncio.wait_for(session.close(), 60)
    assert all(t.state in (TaskState.FAILED, TaskState.CANCELED) for t in tasks)


async def test_culprits_in_a_row_fail_alone_and_their_bystanders_run(no_stray_children):
    # pools broken in a row by real culprits: the probe between them passes, nothing else fails
    backend = await ConcurrentExecutionBackend(
        executor=ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    )
    async with Session(backends=[backend]) as session:
        culprits = [ComputeTask(function=kill_myself) for _ in range(3)]
        bystanders = [ComputeTask(function=add, args=(i,)) for i in range(6)]
        batch = [*culprits, *bystanders]
        await session.submit_tasks(batch)
        await session.wait_tasks(batch, timeout=120)
        assert [t.state for t in culprits] == [TaskState.FAILED] * 3
        assert all("worker process running it died" in str(t.exception) for t in culprits)
        assert [t.return_value for t in bystanders] == list(range(6))


async def test_process_pool_timeout_stops_the_function(no_stray_children):
    backend = await ConcurrentExecutionBackend(
        executor=ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    )
    async with Session(backends=[backend]) as session:
        slow = ComputeTask(function=nap, args=(30,), timeout=0.5)
        other = ComputeTask(function=nap, args=(0.8,))
        await session.submit_tasks([slow, other])
        await session.wait_tasks([slow, other], timeout=60)
        assert isinstance(slow.exception, TaskTimeoutError)
        assert other.state is TaskState.DONE and other.return_value == 0.8


async def test_unpicklable_function_fails_alone(no_stray_children):
    import threading

    lock = threading.Lock()
    bad = ComputeTask(function=add, args=(lock,))
    good = ComputeTask(function=add, args=(1,))
    await run([bad, good], executor=ProcessPoolExecutor(max_workers=1, mp_context=SPAWN))
    assert bad.state is TaskState.FAILED and "cannot be sent to a worker process" in str(
        bad.exception
    )
    assert good.return_value == 1


async def test_user_thread_pool_executor():
    pool = ThreadPoolExecutor(max_workers=2)
    tasks = [ComputeTask(function=add, args=(i,)) for i in range(50)]
    await run(tasks, executor=pool)
    assert [t.return_value for t in tasks] == list(range(50))


async def test_backend_context_manager_and_reuse_of_name():
    async with ConcurrentExecutionBackend() as be:
        assert be.initialized and be.name == "concurrent"
        async with Session(backends=[be]) as session:
            t = ComputeTask(function=add, args=(5,))
            await session.submit_tasks([t])
            assert (await t).return_value == 5


async def test_a_process_pool_that_forks_is_warned_about(caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="rhapsody")
    forking = await ConcurrentExecutionBackend(
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")), name="forking"
    )
    spawning = await ConcurrentExecutionBackend(
        ProcessPoolExecutor(1, mp_context=SPAWN), name="spawning"
    )
    try:
        warned = [r.getMessage() for r in caplog.records if "'fork'" in r.getMessage()]
        assert len(warned) == 1 and "'forking'" in warned[0] and "'spawn'" in warned[0]
    finally:
        await forking.shutdown()
        await spawning.shutdown()


async def test_a_completion_that_raises_fails_its_task_and_the_pool_queue_goes_on(
    monkeypatch, no_stray_children
):
    from rhapsody.backends.concurrent import process_pool

    real_set_result = process_pool.set_result

    def set_result(task, name, value):
        if name == "return_value" and value in (4, 5):  # a bug met completing two tasks
            raise RuntimeError("completion bug")
        real_set_result(task, name, value)

    monkeypatch.setattr(process_pool, "set_result", set_result)
    tasks = [ComputeTask(function=add, args=(i, 1)) for i in range(8)]
    # one worker, two in flight: the rest wait in the dispatcher's queue behind the bad ones
    await asyncio.wait_for(
        run(tasks, executor=ProcessPoolExecutor(max_workers=1, mp_context=SPAWN)), 60
    )
    assert [t.state for t in tasks].count(TaskState.DONE) == 6
    for bad in tasks[3:5]:
        assert bad.state is TaskState.FAILED and isinstance(bad.exception, BackendError)
        assert "completion bug" in str(bad.exception) and bad.uid in str(bad.exception)


def test_a_thread_pool_thread_outlives_a_run_that_raises(caplog) -> None:
    from rhapsody.backends.concurrent.thread_pool import TaskThreadPool

    done: list[int] = []

    def run(item: int) -> None:
        if item == 1:
            raise ValueError("run bug")
        done.append(item)

    pool = TaskThreadPool(run, 1, "test-pool")  # one thread: it must survive item 1
    for item in range(4):
        pool.submit(item)
    deadline = time.monotonic() + 10
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.shutdown()
    pool.join(5)
    assert done == [0, 2, 3] and "run bug" in caplog.text
