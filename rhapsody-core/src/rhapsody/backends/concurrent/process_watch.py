"""Executables watched from the event loop: each running process is a pidfd the loop polls, so
no thread sits waiting on it.

A launcher thread per running process (:func:`.executables.run_executable`, the fallback where
the OS has no pidfds) costs the driving process two thread wake-ups and GIL hand-overs per task;
here a process's exit is one more readable descriptor in the loop's poll, and a burst of exits is
handled in one pass. Processes are started by a few spawner threads rather than on the loop: a
``Popen`` blocks its caller until the child has exec'd (~0.5 ms, most of it waiting, not
computing), and several spawners overlap those waits. ``limit`` processes run at once; the others
wait in a queue, started as running ones end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable

from ...api.clock import now
from ...api.states import TaskState
from ...api.task import ComputeTask
from ..inbox import LoopInbox, failing_with
from ..local_process import kill, reap_exited, wait
from ..result_fields import set_result
from .executables import Push, StartedProcess, failed_to_start, finish, start_process
from .thread_pool import TaskThreadPool

_RUNNING = TaskState.RUNNING
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)
# Spawner threads: enough to overlap the waits for exec; more only contend for the GIL.
SPAWNERS = 4
_READ_ON_LOOP = 1 << 20  # bytes of output read on the loop; more is read in a thread


def _output_size(started: StartedProcess) -> int:
    """Bytes to read back of a process's output (kept in ``started.sizes`` for the reading)."""
    if started.paths is not None:  # the task's own files: not read back
        return 0
    started.sizes = os.fstat(started.out).st_size, os.fstat(started.err).st_size
    return started.sizes[0] + started.sizes[1]


def pidfds_work() -> bool:
    """Whether this OS gives pidfds (Linux >= 5.3) that the event loop can poll."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        fd = pidfd_open(os.getpid())
    except OSError:  # an older kernel, or a sandbox without the call
        return False
    os.close(fd)
    return True


class LoopProcesses:
    """Runs executable tasks, at most ``limit`` at once, each watched from ``loop``.

    ``submit`` and ``close`` are called on the loop's thread; only :meth:`_spawn` runs
    elsewhere (a spawner thread).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        push: Push,
        processes: dict[ComputeTask, subprocess.Popen[bytes]],
        task_dir: Callable[[], str],
        closing: Callable[[], bool],
        name: str,
    ) -> None:
        self._loop = loop
        self._limit = limit
        self._push = push
        self._processes = processes
        self._task_dir = task_dir
        self._closing = closing
        self._queued: deque[ComputeTask] = deque()
        self._starting = 0  # handed to a spawner, not watched yet
        self._watched: dict[int, tuple[ComputeTask, StartedProcess]] = {}  # by pidfd
        self._spawners = TaskThreadPool(self._spawn, min(SPAWNERS, limit), name)
        self._spawned = LoopInbox(loop, self._watch, failing_with(push))
        # tasks with a large output, ended off the loop
        self._finished = LoopInbox(loop, push, failing_with(push))

    def submit(self, task: ComputeTask) -> None:
        if len(self._watched) + self._starting < self._limit:
            self._starting += 1
            self._spawners.submit(task)
        else:
            self._queued.append(task)

    # -- a spawner thread -------------------------------------------------------------------------

    def _spawn(self, task: ComputeTask) -> None:
        if task.state in _ENDED or self._closing():
            self._spawned.push(task, None, -1)
            return
        try:
            started = start_process(task, self._task_dir)
        except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the task ends FAILED
            self._spawned.push(task, exc, -1)
            return
        process = started.process
        # Known at once to the backend's kill-all (shutdown, interpreter exit).
        self._processes[task] = process
        try:
            pidfd = os.pidfd_open(process.pid)
        except BaseException as exc:  # noqa: BLE001 - e.g. out of descriptors: not left running
            self._reap_here(task, started)
            self._spawned.push(task, exc, -1)
            return
        if self._closing():  # the backend is stopping: nobody may watch it any more
            os.close(pidfd)
            self._reap_here(task, started)
            self._spawned.push(task, None, -1)
            return
        self._spawned.push(task, started, pidfd)

    def _reap_here(self, task: ComputeTask, started: StartedProcess) -> None:
        kill(started.process)
        wait(started.process)
        set_result(task, "ended_at", now())
        self._processes.pop(task, None)
        started.close()

    # -- the loop ---------------------------------------------------------------------------------

    def _watch(self, task: ComputeTask, started: object, pidfd: int) -> None:
        self._starting -= 1
        if pidfd < 0:  # not started: ``started`` is why, or None (canceled, shutting down)
            if isinstance(started, BaseException):
                failed_to_start(task, started, self._push)
            self._start_queued()
            return
        assert isinstance(started, StartedProcess)
        try:
            self._loop.add_reader(pidfd, self._exited, pidfd)
        except BaseException as exc:  # noqa: BLE001 - the loop cannot watch it: not left running
            os.close(pidfd)
            self._reap_here(task, started)
            failed_to_start(task, exc, self._push)
            self._start_queued()
            return
        self._watched[pidfd] = (task, started)
        self._push(task, _RUNNING)
        if task.state in _ENDED or self._closing():  # canceled while it was starting
            kill(started.process)

    def _exited(self, pidfd: int) -> None:
        # The pidfd is readable: the process exited, and reaping it does not block.
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        task, started = self._watched.pop(pidfd)
        handed_over = False
        try:
            try:
                code = reap_exited(started.process)
            finally:
                set_result(task, "ended_at", now())
                self._processes.pop(task, None)
            if task.state not in _ENDED and not self._closing():
                if _output_size(started) > _READ_ON_LOOP:  # read and decoded off the loop
                    self._loop.run_in_executor(None, self._finish_large, task, code, started)
                    handed_over = True
                else:
                    finish(task, self._push, code, started)
        except BaseException as exc:  # noqa: BLE001 - e.g. its output could not be read
            failed_to_start(task, exc, self._push)
        finally:
            if not handed_over:
                started.close()
            self._start_queued()

    def _finish_large(self, task: ComputeTask, code: int, started: StartedProcess) -> None:
        push = self._finished.push
        try:
            finish(task, push, code, started)
        except BaseException as exc:  # noqa: BLE001 - e.g. its output could not be read
            failed_to_start(task, exc, push)
        finally:
            started.close()

    def _start_queued(self) -> None:
        queued, limit, submit = self._queued, self._limit, self._spawners.submit
        while queued and len(self._watched) + self._starting < limit:
            self._starting += 1
            submit(queued.popleft())

    async def close(self, timeout: float) -> None:
        """Drop queued tasks, let the spawners stop, wait (at most ``timeout`` s) for the
        running processes -- the backend killed them -- to end, and stop watching the rest."""
        self._queued.clear()
        self._spawners.shutdown()
        deadline = time.monotonic() + timeout
        await asyncio.to_thread(self._spawners.join, timeout)
        await asyncio.sleep(0)  # what the spawners handed over is watched now
        while self._watched and time.monotonic() < deadline:
            for process in list(self._processes.values()):
                kill(process)  # any started since the backend's kill-all
            await asyncio.sleep(0.01)
        for pidfd, (task, started) in list(self._watched.items()):
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            started.close()
            self._processes.pop(task, None)
        self._watched.clear()

    def stop_at_exit(self) -> None:
        """Interpreter exit: queued tasks never start."""
        self._queued.clear()
        self._spawners.shutdown()
