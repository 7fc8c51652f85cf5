"""Executables started and watched from the event loop: each running process is a pidfd the
loop polls, so no thread sits waiting on it.

A launcher thread per running process (:func:`.executables.run_executable`, the fallback where
the OS has no pidfds) costs the driving process two thread wake-ups and GIL hand-overs per task;
here a process's exit is one more readable descriptor in the loop's poll, and a burst of exits is
handled in one pass. Processes are started on the loop too: a ``Popen`` blocks its caller until
the child has exec'd (~0.35 ms, most of it waiting), and starting them from spawner threads
instead made those threads and the loop hand the GIL to each other ~50 times per process
(futex calls: cheap on bare Linux, dear where system calls are, e.g. the gVisor node of
issue 13, where it cost 1.4x raw asyncio's CPU per process). The loop spends at most
:data:`STEP_BUDGET` seconds per step starting processes (the rest start in the next steps, so
other callbacks run between); should a start block it for long (an executable on a slow shared
file system), starts go to a few spawner threads for a while. ``limit`` processes run at once;
the others wait in a queue, started as running ones end.
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
# Spawner threads, used while starts are slow: enough to overlap the waits for exec.
SPAWNERS = 4
STEP_BUDGET = 0.005  # seconds of one loop step spent starting processes
SLOW_START = 0.05  # a start that blocked the loop this long sends starts to the spawners ...
SLOW_FOR = 10.0  # ... for this many seconds (then the loop tries again)
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
        self._starting = 0  # being started (on the loop or by a spawner), not watched yet
        self._step_spent = 0.0  # seconds spent starting processes in this loop step
        self._spawners_until = 0.0  # time.monotonic() until which spawner threads start them
        self._starting_queued = False
        self._fail = failing_with(push)
        self._watched: dict[int, tuple[ComputeTask, StartedProcess]] = {}  # by pidfd
        self._spawners = TaskThreadPool(self._spawn, min(SPAWNERS, limit), name)
        self._spawned = LoopInbox(loop, self._watch, self._fail, width=3)
        # tasks with a large output, ended off the loop
        self._finished = LoopInbox(loop, push, failing_with(push), width=2)

    def submit(self, task: ComputeTask) -> None:
        self._queued.append(task)
        self._start_queued()

    def _start_queued(self) -> None:
        if self._starting_queued:  # called back from below (a start that failed): go on there
            return
        self._starting_queued = True
        try:
            self._start_queued_now()
        finally:
            self._starting_queued = False

    def _start_queued_now(self) -> None:
        queued, limit = self._queued, self._limit
        while queued and len(self._watched) + self._starting < limit:
            if self._spawners_until > time.monotonic():
                self._starting += 1
                self._spawners.submit(queued.popleft())
                continue
            if self._step_spent >= STEP_BUDGET:  # the rest in the next steps
                return
            if not self._step_spent:
                self._loop.call_soon(self._next_step)
            self._starting += 1
            begun = time.perf_counter()
            task = queued.popleft()
            started, pidfd = self._start(task)
            took = time.perf_counter() - begun
            self._step_spent += took or 1e-9
            if took > SLOW_START:
                self._spawners_until = time.monotonic() + SLOW_FOR
            try:
                self._watch(task, started, pidfd)
            except Exception as exc:  # noqa: BLE001 - that task ends FAILED, the others start
                self._fail(task, exc)

    def _next_step(self) -> None:
        self._step_spent = 0.0
        self._start_queued()

    # -- starting (on the loop, or in a spawner thread while starts are slow) -------------------

    def _spawn(self, task: ComputeTask) -> None:
        self._spawned.push(task, *self._start(task))

    def _start(self, task: ComputeTask) -> tuple[object, int]:
        """``(StartedProcess, its pidfd)``, or ``(why not, -1)``: an exception, or None when
        the task ended or the backend is stopping meanwhile."""
        if task.state in _ENDED or self._closing():
            return None, -1
        try:
            started = start_process(task, self._task_dir)
        # Whatever went wrong, the task ends FAILED; but not for a Ctrl-C (KeyboardInterrupt) on
        # the loop's thread: that is the user's, and goes on up.
        except Exception as exc:  # noqa: BLE001
            return exc, -1
        process = started.process
        # Known at once to the backend's kill-all (shutdown, interpreter exit).
        self._processes[task] = process
        try:
            pidfd = os.pidfd_open(process.pid)
        except Exception as exc:  # noqa: BLE001 - e.g. out of descriptors: not left running
            self._reap_here(task, started)
            return exc, -1
        if self._closing():  # the backend is stopping: nobody may watch it any more
            os.close(pidfd)
            self._reap_here(task, started)
            return None, -1
        return started, pidfd

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
        except Exception as exc:  # noqa: BLE001 - the loop cannot watch it: not left running
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
        except Exception as exc:  # noqa: BLE001 - e.g. its output could not be read
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
