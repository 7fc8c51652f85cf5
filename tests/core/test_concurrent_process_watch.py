"""Executables on the concurrent backend, both ways it watches them: from the event loop through
pidfds (where the OS has them) and from a launcher thread each (the fallback). Same behaviour."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading

import pytest

from rhapsody.api import ComputeTask, Session, TaskExecutionError, TaskState
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.backends.concurrent import backend as concurrent_backend
from rhapsody.backends.concurrent import process_watch
from rhapsody.backends.concurrent.process_watch import LoopProcesses, pidfds_work

from ..conftest import peak_use, pid_alive, wait_until


@pytest.fixture(params=["pidfd", "threads"])
def watching(request, monkeypatch) -> str:
    if request.param == "threads":
        monkeypatch.setattr(concurrent_backend, "pidfds_work", lambda: False)
    elif not pidfds_work():
        # not a missing install: an OS without pidfds runs only the fallback (tested here too)
        pytest.skip("no pidfds on this OS (Linux >= 5.3 has them): only the fallback runs")
    return request.param


async def until(predicate, timeout: float = 20.0) -> bool:
    """Wait for ``predicate`` without blocking the event loop (it watches the processes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def exec_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rhapsody-concurrent-")]


async def test_outputs_exit_codes_and_failures(watching, work_dir, monkeypatch):
    big = 3 * 1024 * 1024  # far over a pipe's buffer: read back whole
    read_off_loop: list[str] = []
    finish_large = LoopProcesses._finish_large

    def spy(self, task, code, started):  # a large output is read in a thread, not on the loop
        read_off_loop.append(task.uid)
        finish_large(self, task, code, started)

    monkeypatch.setattr(LoopProcesses, "_finish_large", spy)
    tasks = [
        ComputeTask(executable="/bin/sh", arguments=["-c", "echo out; echo err >&2"]),
        ComputeTask(executable=sys.executable, arguments=["-c", f"print('x' * {big}, end='')"]),
        ComputeTask(executable="/bin/sh", arguments=["-c", "echo broken >&2; exit 3"]),
        ComputeTask(executable="/no/such/program"),
        ComputeTask(executable="/bin/true", input_files=["missing.txt"]),
        ComputeTask(executable="/bin/true", output_files=["never.txt"]),
        ComputeTask(executable="/bin/sh", arguments=["-c", "echo kept"], capture_stdio=True),
    ]
    backend = await ConcurrentExecutionBackend(max_processes=3)
    async with Session(backends=[backend], work_dir=work_dir, uid="s") as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
        threads = exec_threads()
    ok, large, bad, absent, no_input, no_output, captured = tasks
    assert (ok.state, ok.stdout, ok.stderr, ok.exit_code) == (TaskState.DONE, "out\n", "err\n", 0)
    assert large.state is TaskState.DONE and large.stdout == "x" * big
    assert bad.state is TaskState.FAILED and bad.exit_code == 3
    assert isinstance(bad.exception, TaskExecutionError) and "broken" in str(bad.exception)
    assert absent.state is TaskState.FAILED
    assert "could not start '/no/such/program'" in str(absent.exception)
    assert no_input.state is TaskState.FAILED and "missing.txt" in str(no_input.exception)
    assert no_output.state is TaskState.FAILED and "never.txt" in str(no_output.exception)
    assert captured.state is TaskState.DONE
    assert open(captured.stdout).read() == "kept\n"
    for task in (ok, large, bad, no_output, captured):
        assert task.started_at <= task.ended_at and task.worker.startswith("pid ")
    # the loop-watched path has a few spawner threads, never one per running process
    if watching == "pidfd":
        assert read_off_loop == [large.uid]
        assert not threads  # started on the loop too: no thread of their own at all
    else:
        assert any("-exec" in name for name in threads)


async def test_at_most_max_processes_run_at_once(watching, work_dir):
    tasks = [ComputeTask(executable="/bin/sleep", arguments=["0.3"]) for _ in range(8)]
    backend = await ConcurrentExecutionBackend(max_processes=2)
    async with Session(backends=[backend]) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
    assert all(t.state is TaskState.DONE for t in tasks)
    assert peak_use([(t.started_at, t.ended_at, 1) for t in tasks]) == 2


async def test_cancel_and_shutdown_leave_nothing_running(watching, work_dir, no_stray_children):
    script = "echo $$ > p$0; exec sleep 30"
    tasks = [ComputeTask(executable="/bin/sh", arguments=["-c", script, str(i)]) for i in range(6)]
    backend = await ConcurrentExecutionBackend(max_processes=3)
    session = Session(backends=[backend])
    futures = await session.submit_tasks(tasks)

    def started() -> int:  # processes that wrote their pid
        return sum(os.path.exists(f"p{i}") and os.path.getsize(f"p{i}") > 0 for i in range(6))

    assert await until(lambda: started() == 3)
    first = next(t for i, t in enumerate(tasks) if os.path.exists(f"p{i}"))
    assert await session.cancel_tasks([first]) == 1
    # its slot goes to a queued task
    assert await until(lambda: started() == 4)
    await asyncio.wait_for(session.close(), 30)
    assert all(t.state is TaskState.CANCELED for t in tasks)
    assert all(f.done() for f in futures)
    pids = [int(open(f"p{i}").read()) for i in range(6) if os.path.exists(f"p{i}")]
    assert len(pids) == 4  # the queued ones never started
    assert wait_until(lambda: not any(pid_alive(p) for p in pids))
    assert not exec_threads()


def test_pidfds_work_where_the_os_has_them():
    # Linux >= 5.3 (every CI and HPC machine we target) has them; elsewhere the fallback runs.
    if hasattr(os, "pidfd_open") and os.uname().sysname == "Linux":
        release = tuple(int(p) for p in re.findall(r"\d+", os.uname().release)[:2])
        if release >= (5, 3):
            assert pidfds_work() is True
            return
    assert pidfds_work() in (True, False)  # a sandbox may emulate an older kernel


async def test_a_process_the_loop_cannot_watch_fails_and_the_queue_goes_on(
    work_dir, monkeypatch, no_stray_children
):
    if not pidfds_work():
        pytest.skip("no pidfds on this OS (Linux >= 5.3 has them): only the fallback runs")
    loop = asyncio.get_running_loop()

    def refuse(fd, callback, *args):
        raise OSError(1, "Operation not permitted")  # what epoll says of a descriptor it refuses

    backend = await ConcurrentExecutionBackend(max_processes=1)
    async with Session(backends=[backend]) as session:
        monkeypatch.setattr(loop, "add_reader", refuse)
        tasks = [ComputeTask(executable="/bin/sleep", arguments=["30"]) for _ in range(3)]
        await session.submit_tasks(tasks)
        # none is left running unwatched, and the one-at-a-time queue still drains
        assert await asyncio.wait_for(session.wait_tasks(tasks), 20)
        monkeypatch.undo()
    for task in tasks:
        assert task.state == TaskState.FAILED
        assert "Operation not permitted" in str(task.exception)


def needs_pidfds() -> None:
    if not pidfds_work():
        pytest.skip("no pidfds on this OS (Linux >= 5.3 has them): only the fallback runs")


def timed_starts(monkeypatch, seconds: float, events: list[str]) -> None:
    """Every process start takes at least ``seconds`` (blocking, like an exec on a slow file
    system) and is recorded in ``events``, with the thread that made it."""
    start = process_watch.start_process

    def slow_start(task, task_dir):
        events.append(f"start {threading.current_thread().name}")
        deadline = __import__("time").perf_counter() + seconds
        while __import__("time").perf_counter() < deadline:
            pass
        return start(task, task_dir)

    monkeypatch.setattr(process_watch, "start_process", slow_start)


async def test_the_loop_starts_processes_a_few_ms_per_step_and_runs_others_between(
    work_dir, monkeypatch
):
    needs_pidfds()
    events: list[str] = []
    timed_starts(monkeypatch, 0.002, events)  # 20 starts: 40 ms, the step budget is 5 ms
    ticking = True

    async def ticker() -> None:
        while ticking:
            events.append("tick")
            await asyncio.sleep(0)

    backend = await ConcurrentExecutionBackend(max_processes=20)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="/bin/true") for _ in range(20)]
        ticks = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
        ticking = False
        await ticks
    assert all(t.state is TaskState.DONE for t in tasks)
    starts = [i for i, e in enumerate(events) if e.startswith("start")]
    assert len(starts) == 20 and all(e == "start MainThread" for e in events if e != "tick")
    between = events[starts[0] : starts[-1]].count("tick")
    assert between >= 3, events  # other callbacks ran while they were being started


async def test_a_slow_start_sends_the_next_ones_to_spawner_threads(work_dir, monkeypatch):
    needs_pidfds()
    events: list[str] = []
    monkeypatch.setattr(process_watch, "SLOW_START", 0.02)
    timed_starts(monkeypatch, 0.03, events)  # every start blocks 30 ms: "slow"
    backend = await ConcurrentExecutionBackend(max_processes=4)
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="/bin/true") for _ in range(8)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
    assert all(t.state is TaskState.DONE for t in tasks)
    assert events[0] == "start MainThread"  # the loop tried, and found it slow
    assert all("-spawn" in e for e in events[1:]), events


async def test_thousands_of_queued_starts_that_fail_all_end_failed(work_dir):
    """Queued behind a running process, they start one after the other once it ends, each
    failing at once: started in a loop, not by each failure calling the next start."""
    needs_pidfds()
    backend = await ConcurrentExecutionBackend(max_processes=1)
    async with Session(backends=[backend]) as session:
        first = ComputeTask(executable="/bin/sleep", arguments=["0.2"])
        failing = [
            ComputeTask(executable="/bin/true", input_files=["missing"]) for _ in range(3000)
        ]
        await session.submit_tasks([first, *failing])
        await session.wait_tasks([first, *failing], timeout=120)
    assert first.state is TaskState.DONE
    assert all(t.state is TaskState.FAILED for t in failing)
    assert "input files not found" in str(failing[-1].exception)


def test_a_ctrl_c_while_the_loop_starts_a_process_reaches_the_user(work_dir, monkeypatch):
    """The loop's thread gets the KeyboardInterrupt of a Ctrl-C (outside asyncio.run, whose
    first Ctrl-C cancels instead): it is the user's, not the failure of the task being started."""
    needs_pidfds()

    def interrupted(task, task_dir):
        raise KeyboardInterrupt

    async def scenario(session: Session) -> None:
        await session.submit_tasks([ComputeTask(executable="/bin/true")])
        await asyncio.sleep(1)

    loop = asyncio.new_event_loop()
    try:
        backend = loop.run_until_complete(ConcurrentExecutionBackend())
        session = Session(backends=[backend])
        loop.run_until_complete(session.start())
        monkeypatch.setattr(process_watch, "start_process", interrupted)
        main = loop.create_task(scenario(session))
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main)
        monkeypatch.undo()
        main.cancel()  # what asyncio.run does to what is left after a KeyboardInterrupt
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(main)
        loop.run_until_complete(session.close())
        (task,) = session.tasks.values()
        # it ends (the session could not hand it over), without a process left behind
        assert task.state is TaskState.FAILED and "KeyboardInterrupt" in str(task.exception)
        assert not backend._processes
    finally:
        loop.close()
