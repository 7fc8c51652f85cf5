"""Function tasks on a ``ProcessPoolExecutor``: bounded dispatch and recovery from dead workers.

A worker that dies (``os._exit``, SIGKILL, a segfault) breaks the whole pool and every task in
flight on it. The dispatcher replaces the pool and re-runs the affected tasks one at a time as
suspects: a task that breaks the pool a second time is the culprit and FAILS with a clear error;
the others finish normally. Canceling or timing out a running task kills the pool's workers the
same way (a process cannot be interrupted otherwise), without counting against the bystanders.

A pool whose workers die before they run anything (an initializer that fails, a script without
an ``if __name__ == "__main__":`` guard under ``spawn``) would make every task a suspect in turn,
one fresh pool each: hours for a few thousand tasks, each blamed. So when a replacement breaks
too before any call came back, a trivial call probes the next pool before anything else runs;
if the probe breaks it as well, the pool cannot run anything and every waiting task FAILS at
once, with an error that says so.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from ...api.errors import BackendError, task_label
from ...api.states import TaskState
from ...api.task import ComputeTask
from .. import where
from ..inbox import LoopInbox, failing_with
from ..process_tree import kill_tree
from ..result_fields import set_result
from .functions import call_pickled

log = logging.getLogger(__name__)

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_NO_ARGUMENTS = cloudpickle.dumps(((), {}))
_PICKLES_KEPT = 256  # functions whose pickle a batch keeps

Deliver = Callable[[ComputeTask, TaskState], Any]


def _replacement(pool: ProcessPoolExecutor) -> ProcessPoolExecutor:
    # Same configuration as the broken pool (private attributes, stable since Python 3.8).
    return ProcessPoolExecutor(
        max_workers=getattr(pool, "_max_workers", None),
        mp_context=getattr(pool, "_mp_context", None),
        initializer=getattr(pool, "_initializer", None),
        initargs=getattr(pool, "_initargs", ()),
    )


def warn_if_forking(pool: ProcessPoolExecutor, backend: str) -> None:
    """Log a warning when ``pool`` starts its workers with ``fork``: the pool forks a worker at
    a submission, when the session's threads already run, and a child forked from a threaded
    process can hang for ever on a lock another thread held at that moment (Python 3.12 warns
    about such forks too). ``forkserver`` and ``spawn`` do not have that problem."""
    context = getattr(pool, "_mp_context", None)
    method = (
        context.get_start_method()
        if context is not None
        else multiprocessing.get_start_method(allow_none=True)
    )
    if method == "fork":
        log.warning(
            "backend %r: its ProcessPoolExecutor starts workers with 'fork', from a process that "
            "runs threads: a worker can then hang at start. Pass ProcessPoolExecutor(..., "
            "mp_context=multiprocessing.get_context('spawn')) (or 'forkserver').",
            backend,
        )


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes and whatever they started (call before ``shutdown()``,
    which forgets them)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        pid = process.pid
        if pid is not None:
            kill_tree(pid, group=False)  # workers share our process group


class ProcessPoolDispatcher:
    """Feeds function tasks to a process pool, at most ``2 x max_workers`` in flight."""

    def __init__(
        self,
        pool: ProcessPoolExecutor,
        loop: Any,
        deliver: Deliver,
        capture_paths: Callable[[ComputeTask], tuple[str, str] | None],
        on_new_pool: Callable[[ProcessPoolExecutor], None],
    ) -> None:
        self.pool = pool
        self._limit = 2 * (getattr(pool, "_max_workers", None) or os.cpu_count() or 1)
        self._deliver = deliver
        self._capture_paths = capture_paths
        self._on_new_pool = on_new_pool
        self._inbox = LoopInbox(loop, self._completed, failing_with(deliver), width=3)
        self._queue: deque[ComputeTask] = deque()
        self._suspects: deque[ComputeTask] = deque()
        self._suspect_in_flight: ComputeTask | None = None
        self._strikes: dict[ComputeTask, int] = {}
        self._killed_pools: set[int] = set()
        self._futures: dict[ComputeTask, Future[Any]] = {}
        self._in_flight = 0
        self._closed = False
        # function -> its pickle, for the batch being submitted (see begin_batch); the function
        # is kept with it, so that its id is not another's meanwhile
        self._pickles: dict[int, tuple[Any, bytes]] = {}
        self._breaks = 0  # pools broken in a row, no call having come back in between
        self._probing: ProcessPoolExecutor | None = None  # the pool a probe call runs on

    def begin_batch(self) -> None:
        """A new batch of tasks is being submitted: their functions are pickled afresh (with
        the globals they see now), once each, however many tasks call them. (Pickling a
        function from the user's script, by value, cost the session ~27 µs a task.)"""
        self._pickles.clear()

    def _payload(self, task: ComputeTask) -> tuple[bytes, bytes]:
        function = task.function
        kept = self._pickles.get(id(function))
        if kept is None or kept[0] is not function:
            if len(self._pickles) >= _PICKLES_KEPT:
                self._pickles.clear()
            kept = self._pickles[id(function)] = (function, cloudpickle.dumps(function))
        if not task.args and not task.kwargs:
            return kept[1], _NO_ARGUMENTS
        return kept[1], cloudpickle.dumps((task.args, task.kwargs))

    def submit(self, task: ComputeTask) -> None:
        self._queue.append(task)
        if self._in_flight < self._limit:
            self._pump()

    def _pump(self) -> None:
        if self._probing is not None:
            return  # nothing runs until the probe says the pool can run anything
        while self._in_flight < self._limit and not self._closed:
            if self._suspects and self._suspect_in_flight is None:
                task = self._suspects.popleft()
                self._suspect_in_flight = task
            elif self._queue:
                task = self._queue.popleft()
            else:
                return
            if not task.done:
                self._launch(task)

    def _launch(self, task: ComputeTask) -> None:
        try:
            function_blob, call_blob = self._payload(task)
        except Exception as exc:  # noqa: BLE001 - an unpicklable task fails alone
            self._fail(
                task,
                BackendError(
                    f"{task_label(task.uid)}: its function or arguments cannot be sent to a worker "
                    f"process ({type(exc).__name__}: {exc})"
                ),
            )
            return
        pool = self.pool
        paths = self._capture_paths(task)
        if paths is not None:
            task.stdout, task.stderr = paths
        try:
            future = pool.submit(call_pickled, function_blob, call_blob, paths)
        except BrokenProcessPool:
            self._replace(pool)
            pool = self.pool
            future = pool.submit(call_pickled, function_blob, call_blob, paths)
        except RuntimeError as exc:  # the pool was shut down under us
            self._fail(
                task, BackendError(f"{task_label(task.uid)}: the process pool is shut down: {exc}")
            )
            return
        future._rhapsody = (task, pool)  # type: ignore[attr-defined]
        self._futures[task] = future
        self._in_flight += 1
        self._deliver(task, _RUNNING)
        future.add_done_callback(self._future_done)

    def _future_done(self, future: Future[Any]) -> None:  # runs in the pool's manager thread
        task, pool = future._rhapsody  # type: ignore[attr-defined]
        self._inbox.push(task, future, pool)

    def _completed(
        self, task: ComputeTask | None, future: Future[Any], pool: ProcessPoolExecutor
    ) -> None:
        if task is None:
            self._probed(future, pool)
            return
        self._in_flight -= 1
        if self._suspect_in_flight is task:
            self._suspect_in_flight = None
        try:
            self._conclude(task, future, pool)
        finally:  # whatever happened to this one, the queue behind it moves on
            if task.done:
                self._strikes.pop(task, None)
                self._futures.pop(task, None)
            self._pump()

    def _conclude(self, task: ComputeTask, future: Future[Any], pool: ProcessPoolExecutor) -> None:
        if future.cancelled():
            return  # canceled before it started; the session ended the task
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._broken(task, pool)
            return
        self._breaks = 0  # a call came back: the pool can run things
        if error is not None:
            self._fail(task, error)
        else:
            ok, value, text, pid = future.result()
            set_result(task, "host", where.HOST)
            set_result(task, "worker", where.process(pid))
            if ok:
                set_result(task, "return_value", value)
                self._deliver(task, _DONE)
            else:
                task.traceback = text
                self._fail(task, value)

    def _broken(self, task: ComputeTask, pool: ProcessPoolExecutor) -> None:
        if pool is self.pool:
            self._replace(pool)
            if id(pool) not in self._killed_pools:
                self._breaks += 1
                if self._breaks >= 2:
                    self._probe()
        if task.done:
            return
        if id(pool) in self._killed_pools:  # we killed it (cancel/timeout): not this task's fault
            self._queue.appendleft(task)
            return
        strikes = self._strikes.get(task, 0) + 1
        if strikes >= 2:
            self._strikes.pop(task, None)
            self._fail(
                task,
                BackendError(
                    f"{task_label(task.uid)}: the worker process running it died "
                    f"abruptly (killed by a "
                    "signal, os._exit or a crash), twice; the pool was replaced"
                ),
            )
            return
        self._strikes[task] = strikes
        self._suspects.append(task)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        log.info("a process-pool worker died; replacing the pool")
        self.pool = _replacement(broken)
        # Its surviving workers go too: Python 3.11's pool joins them for ever when it breaks
        # (one may wait on the call queue), and the interpreter's exit then waits on that join
        # (3.12 kills them itself, gh-94777). Their calls failed with the pool: re-run as suspects.
        terminate_workers(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        self._on_new_pool(self.pool)

    # -- a pool that cannot run anything ----------------------------------------------------------

    def _probe(self) -> None:
        """Run a trivial call on the fresh pool before anything else."""
        pool = self._probing = self.pool
        try:
            future = pool.submit(os.getpid)
        except Exception as exc:  # noqa: BLE001 - the pool refuses work: nothing can run
            self._probing = None
            self._fail_all(exc)
            return
        future._rhapsody = (None, pool)  # type: ignore[attr-defined]
        future.add_done_callback(self._future_done)

    def _probed(self, future: Future[Any], pool: ProcessPoolExecutor) -> None:
        if pool is not self._probing:
            return
        self._probing = None
        if self._closed:  # the shutdown canceled it: no new pool, and nothing waits any more
            return
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            if pool is self.pool:
                self._replace(pool)  # a fresh pool for what is submitted later
            self._fail_all(error)
        else:
            self._breaks = 0
        self._pump()

    def _fail_all(self, error: BaseException | None) -> None:
        """Fail every task waiting for the pool: its workers die before running anything."""
        waiting = [*self._suspects, *self._queue]
        self._suspects.clear()
        self._queue.clear()
        self._strikes.clear()
        self._breaks = 0  # a later submission gets a fresh pool and a fresh chance
        log.error(
            "the process pool's workers die before they run anything; %d waiting task(s) fail",
            len(waiting),
        )
        for task in waiting:
            if not task.done:
                self._fail(
                    task,
                    BackendError(
                        f"{task_label(task.uid)}: the process pool cannot run anything: its "
                        "worker processes died before running a task, in three pools in a row "
                        "(the last one given only a trivial call). Check the pool's "
                        "initializer, and that a script using a 'spawn' or 'forkserver' pool "
                        'starts its work under `if __name__ == "__main__":`'
                        + (f" ({type(error).__name__}: {error})" if error is not None else "")
                    ),
                )

    def _fail(self, task: ComputeTask, error: BaseException) -> None:
        task.exception = error
        self._deliver(task, _FAILED)

    def kill_running(self, tasks: list[ComputeTask]) -> None:
        """Stop ``tasks``: cancel pending futures, kill the workers for running ones."""
        must_kill = False
        for task in tasks:
            future = self._futures.get(task)
            if future is not None and not future.cancel() and not future.done():
                must_kill = True
        if must_kill:
            self._killed_pools.add(id(self.pool))
            terminate_workers(self.pool)

    def close(self) -> ProcessPoolExecutor:
        self._closed = True
        self._queue.clear()
        self._suspects.clear()
        return self.pool
