"""``ConcurrentExecutionBackend``: the embedded default, on ``concurrent.futures`` executors.

Functions run on a thread pool (default) or on a ``ProcessPoolExecutor`` passed as ``executor=``
(shipped with cloudpickle). Executables run as subprocesses, ``max_processes`` at once, watched
from the event loop through pidfds (:mod:`.process_watch`), or where the OS has none, each from a
launcher thread. Completions reach the event loop through a batching inbox.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from ...api.clock import WALL_OFFSET, now
from ...api.errors import (
    BackendConfigurationError,
    BackendError,
    ResourceError,
    TaskExecutionError,
    task_label,
)
from ...api.states import TaskState
from ...api.task import BaseTask, ComputeTask
from ...api.validators import integer
from ...resources.inventory import NodeResources
from ...resources.request import ResourceRequest
from ...resources.slots import RankSlot, SlotScheduler
from ..base import ExecutionBackend
from ..exit_cleanup import stop_at_exit
from ..inbox import LoopInbox, failing_with
from ..local_process import kill
from ..result_fields import set_result
from ..task_output import capture_paths
from ..where import HOST, this_thread
from .executables import run_executable
from .functions import call_captured, format_traceback
from .node_options import node_of
from .options import check_options as check_concurrent_options
from .options import cwd_of, missing_files
from .process_pool import ProcessPoolDispatcher, terminate_workers, warn_if_forking
from .process_watch import LoopProcesses, pidfds_work
from .ranks import Jobs, run_ranks
from .thread_pool import TaskThreadPool, default_workers

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)
_monotonic = time.monotonic
_CHUNK = 2048


def _default_max_processes() -> int:
    return max(16, 2 * (os.cpu_count() or 1))


class ConcurrentExecutionBackend(ExecutionBackend):
    """Runs ComputeTasks in this process's executors: no server, no extra dependency.

    Args:
        executor: where functions run; a ``ThreadPoolExecutor`` (default) or a
            ``ProcessPoolExecutor``. The backend shuts it down on :meth:`shutdown`.
        name: the backend's name in a session (``backend=`` of a task).
        max_processes: how many executables run at once (default ``max(16, 2 x cores)``).
        num_workers: threads of the default function pool (default: as many as the cores
            allow, like ``ThreadPoolExecutor``).
        cores: for tasks with a resource request, the CPU ids to hand out (default: this
            process's affinity set), or a count of them (more than the node has oversubscribes
            on purpose).
        gpus: the GPU ids to hand out (default: ``CUDA_VISIBLE_DEVICES``, else what
            nvidia-ml-py finds); ``[]`` for none.
        memory: bytes of memory to hand out (an int, or a size such as ``"64GB"``; default: the
            node's physical memory).
        backfill: how many tasks may start ahead of a waiting wide task (default: the cores).

    Tasks with a resource request (``ranks``, ``cores_per_rank``, ``gpus_per_rank``,
    ``mem_per_rank``) start only when their cores, GPUs and memory are free; tasks without one
    run as soon as a worker is free, as before.

    Per-task options (``task_backend_specific_kwargs``): ``cwd``, ``env`` (added to the inherited
    environment) and ``shell`` (run the command line through ``/bin/sh``; off by default).
    """

    default_name = "concurrent"

    def __init__(
        self,
        executor: Executor | None = None,
        name: str = "concurrent",
        *,
        max_processes: int | None = None,
        num_workers: int | None = None,
        cores: int | Sequence[int] | None = None,
        gpus: Sequence[int | str] | None = None,
        memory: int | str | None = None,
        backfill: int | None = None,
    ) -> None:
        super().__init__(name)
        self._node_options = node_of(cores, gpus, memory, backfill)  # checked, found lazily
        if executor is not None and not isinstance(executor, Executor):
            raise BackendConfigurationError(
                "ConcurrentExecutionBackend",
                "executor",
                "a concurrent.futures.Executor (ThreadPoolExecutor or ProcessPoolExecutor)",
                executor,
            )
        processes = integer(max_processes)
        if max_processes is not None and (processes is None or processes < 1):
            raise BackendConfigurationError(
                "ConcurrentExecutionBackend", "max_processes", "an integer >= 1", max_processes
            )
        workers = integer(num_workers)
        if num_workers is not None and (workers is None or workers < 1):
            raise BackendConfigurationError(
                "ConcurrentExecutionBackend", "num_workers", "an integer >= 1", num_workers
            )
        if workers is not None and executor is not None:
            raise BackendConfigurationError(
                "ConcurrentExecutionBackend",
                "num_workers",
                "no num_workers when an executor is given (size the executor instead)",
                num_workers,
            )
        self._num_workers = workers
        self._executor: Executor | None = executor
        self._threads: TaskThreadPool | None = None
        self._max_processes = processes or _default_max_processes()
        self._launcher: TaskThreadPool | None = None
        self._watched: LoopProcesses | None = None
        self._processes: dict[ComputeTask, subprocess.Popen[bytes]] = {}
        self._futures: dict[ComputeTask, Future[Any]] = {}  # on a user's thread executor
        self._inbox: LoopInbox | None = None
        self._dispatcher: ProcessPoolDispatcher | None = None
        # Tasks with a resource request: the slot scheduler, where each started one runs, and
        # the pools that run them (sized to the cores: a placed task never waits for a thread).
        self._slots: SlotScheduler | None = None
        self._placements: dict[ComputeTask, list[RankSlot]] = {}
        self._jobs: Jobs = {}
        self._placed_launcher: TaskThreadPool | None = None
        self._placed_threads: TaskThreadPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def executor(self) -> Executor | None:
        """The executor given as ``executor=`` (replaced if a process pool broke), else None."""
        return self._executor

    async def initialize(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._inbox = LoopInbox(loop, self._deliver, failing_with(self._deliver), width=2)
        if pidfds_work():  # executables watched from the loop; else a launcher thread each
            self._watched = LoopProcesses(
                loop,
                self._max_processes,
                self._deliver,
                self._processes,
                self._task_dir,
                self._is_closed,
                f"rhapsody-{self.name}-spawn",
            )
        if self._executor is None:
            self._threads = TaskThreadPool(
                self._run_function, self._num_workers or default_workers(), f"rhapsody-{self.name}"
            )
        if isinstance(self._executor, ProcessPoolExecutor):
            warn_if_forking(self._executor, self.name)
            self._dispatcher = ProcessPoolDispatcher(
                self._executor, loop, self._deliver, self._capture_paths, self._set_executor
            )
        stop_at_exit(self._stop_at_exit)

    def _set_executor(self, executor: Executor) -> None:
        self._executor = executor

    def _deliver(self, task: ComputeTask, state: TaskState) -> None:
        try:
            self.report(task, state)
        finally:  # even if reporting raised: the slots must not stay taken
            if self._placements and state in _ENDED and self._dispatcher is not None:
                self._release(task)  # a process-pool function: its worker is free again

    # -- checks and submission --------------------------------------------------------------------

    def check_options(self, task: BaseTask) -> None:
        check_concurrent_options(task)  # type: ignore[arg-type]

    # -- resources --------------------------------------------------------------------------------

    def resource_nodes(self) -> tuple[NodeResources]:
        return (self._scheduler().nodes[0],)

    def check_resources(self, task: BaseTask, request: ResourceRequest) -> None:
        if request.ranks > 1 and task.function is not None:  # type: ignore[attr-defined]
            raise ResourceError(
                f"{task_label(task.uid)} asks for ranks={request.ranks}: the concurrent backend "
                "runs a function as one rank (in this process); run a multi-rank job as an "
                "executable, or on the Dragon backend"
            )
        super().check_resources(task, request)

    def _scheduler(self) -> SlotScheduler:
        if self._slots is None:
            node, backfill = self._node_options.find()
            self._slots = SlotScheduler([node], backfill=backfill)
        return self._slots

    def _submit_placed(self, placing: list[tuple[BaseTask, ResourceRequest]]) -> None:
        for task, slots in self._scheduler().submit_many(placing):
            self._start_placed(task, slots)

    def _start_placed(self, task: ComputeTask, slots: list[RankSlot]) -> None:
        """Run ``task`` on its slots (from the loop, or from the thread that freed them)."""
        self._placements[task] = slots
        try:
            if task.function is None:
                if self._placed_launcher is None:
                    self._placed_launcher = TaskThreadPool(
                        self._run_placed_executable, self._cores(), f"rhapsody-{self.name}-ranks"
                    )
                self._placed_launcher.submit(task)
            elif self._placed_threads is not None:
                self._placed_threads.submit(task)
            elif self._dispatcher is not None:
                self._on_loop(self._dispatcher.submit, task)
            elif self._executor is not None:
                self._executor.submit(self._run_placed_function, task)
            else:
                self._placed_threads = TaskThreadPool(
                    self._run_placed_functions, self._cores(), f"rhapsody-{self.name}-placed"
                )
                self._placed_threads.submit(task)
        except Exception as exc:  # noqa: BLE001 - e.g. shut down under us: the task fails
            self._release(task)
            task.exception = BackendError(
                f"backend {self.name!r} could not start task {task.uid}: "
                f"{type(exc).__name__}: {exc}"
            )
            self._on_loop(self.report, task, _FAILED)

    def _cores(self) -> int:
        return len(self._scheduler().nodes[0].cores)

    def _on_loop(self, call: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            call(*args)
        else:
            loop.call_soon_threadsafe(call, *args)

    def _release(self, task: ComputeTask, *, continue_here: bool = False) -> ComputeTask | None:
        """Free ``task``'s slots and start what they let start. With ``continue_here`` (a
        placed-function thread), one started function is returned for this thread to run next:
        no hand-over to another thread, which costs a wake-up per task."""
        slots = self._placements.pop(task, None)
        following = None
        if slots is not None and self._slots is not None and not self._closed:
            for started, placed in self._slots.release(slots):
                if continue_here and following is None and started.function is not None:
                    self._placements[started] = placed
                    following = started
                else:
                    self._start_placed(started, placed)
        return following

    def _run_placed_function(self, task: ComputeTask) -> None:
        try:
            self._run_function(task)
        finally:
            self._release(task)

    def _run_placed_functions(self, task: ComputeTask | None) -> None:
        # the placed-function pool's threads: run a task, then the one its cores let start
        while task is not None:
            try:
                self._run_function(task)
            finally:
                task = self._release(task, continue_here=not self._closed)

    def _run_placed_executable(self, task: ComputeTask) -> None:
        try:
            run_ranks(
                task,
                self._placements.get(task) or [],
                self._inbox.push,  # type: ignore[union-attr]
                self._jobs,
                self._task_dir,
                self._is_closed,
                bool(self._scheduler().nodes[0].gpus),
            )
        finally:
            self._release(task)

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        if self._closed:
            raise BackendError(f"backend {self.name!r} is shut down")
        if self._inbox is None:
            await self._ensure_initialized()
        dispatcher, threads, executor = self._dispatcher, self._threads, self._executor
        if dispatcher is not None:
            dispatcher.begin_batch()
        run_function = self._run_function
        placing: list[tuple[BaseTask, ResourceRequest]] = []
        for i, task in enumerate(tasks):
            try:
                request = task.resources
                if request is not None:
                    placing.append((task, request))  # to the slot scheduler, a chunk at a time
                elif task.function is None:  # type: ignore[attr-defined]
                    self._launch_executable(task)  # type: ignore[arg-type]
                elif threads is not None:
                    threads.submit(task)
                elif dispatcher is not None:
                    dispatcher.submit(task)  # type: ignore[arg-type]
                else:
                    self._futures[task] = executor.submit(run_function, task)  # type: ignore[union-attr,index,arg-type]
            except Exception as exc:  # noqa: BLE001 - e.g. an executor shut down under us
                task.exception = BackendError(
                    f"backend {self.name!r} could not start task {task.uid}: "
                    f"{type(exc).__name__}: {exc}"
                )
                self.report(task, _FAILED)
            if i % _CHUNK == _CHUNK - 1:
                if placing:
                    self._submit_placed(placing)
                    placing = []
                await asyncio.sleep(0)
        if placing:
            self._submit_placed(placing)

    def _capture_paths(self, task: ComputeTask) -> tuple[str, str] | None:
        if not task.capture_stdio:
            return None
        return capture_paths(self._task_dir(), task.uid)

    def _task_dir(self) -> str:
        if self.session is None:
            raise BackendError("capture_stdio needs the backend to be part of a Session")
        return self.session.task_dir

    # -- functions on a thread pool (runs in a worker thread) --------------------------------------

    def _run_function(self, task: ComputeTask) -> None:
        push = self._inbox.push  # type: ignore[union-attr]
        if task.state in _ENDED:
            return
        set_result(task, "host", HOST)
        set_result(task, "worker", this_thread())
        set_result(task, "started_at", _monotonic() + WALL_OFFSET)  # clock.now(), inlined
        push(task, _RUNNING)
        try:
            if task.input_files:
                missing = missing_files(task.input_files, cwd_of(task))
                if missing:
                    raise FileNotFoundError(f"input files not found: {missing}")
            paths = self._capture_paths(task) if task.capture_stdio else None
            if paths is not None:
                task.stdout, task.stderr = paths
            result = call_captured(
                task.function,  # type: ignore[arg-type]
                task.args,
                task.kwargs,
                paths,
            )
            if task.output_files:
                missing = missing_files(task.output_files, cwd_of(task))
                if missing:
                    raise TaskExecutionError(
                        task.uid, None, None, message=f"did not produce its output files {missing}"
                    )
        except BaseException as exc:  # noqa: BLE001 - the task's failure, reported as such
            task.ended_at = now()
            if self._futures:
                self._futures.pop(task, None)
            if task.state not in _ENDED:
                task.exception = exc
                task.traceback = format_traceback(exc)
                push(task, _FAILED)
            return
        set_result(task, "ended_at", _monotonic() + WALL_OFFSET)
        if self._futures:
            self._futures.pop(task, None)
        if task.state not in _ENDED:
            set_result(task, "return_value", result)
            push(task, _DONE)

    # -- executables ------------------------------------------------------------------------------

    def _launch_executable(self, task: ComputeTask) -> None:
        if self._watched is not None:
            self._watched.submit(task)
            return
        if self._launcher is None:
            # Daemon threads: a launcher waiting on a process never holds the interpreter open.
            self._launcher = TaskThreadPool(
                self._run_executable, self._max_processes, f"rhapsody-{self.name}-exec"
            )
        self._launcher.submit(task)

    def _run_executable(self, task: ComputeTask) -> None:
        run_executable(
            task,
            self._inbox.push,  # type: ignore[union-attr]
            self._processes,
            self._task_dir,
            self._is_closed,
        )

    def _is_closed(self) -> bool:
        return self._closed

    # -- canceling and shutdown -------------------------------------------------------------------

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        running_in_pool: list[ComputeTask] = []
        waiting: list[BaseTask] = []  # for resources: not started yet
        processes, futures = self._processes, self._futures
        for task in tasks:
            process = processes.get(task)  # type: ignore[call-overload]
            if process is not None:
                kill(process)
            elif task in self._jobs:
                for rank in list(self._jobs.get(task) or ()):
                    kill(rank)
            elif (
                self._slots is not None
                and task not in self._placements
                and task.resources is not None
            ):
                waiting.append(task)
            elif self._dispatcher is not None and task.function is not None:  # type: ignore[attr-defined]
                running_in_pool.append(task)  # type: ignore[arg-type]
            else:
                future = futures.pop(task, None)  # type: ignore[call-overload]
                if future is not None:
                    future.cancel()  # a thread cannot be interrupted: only queued work stops
            # queued executables and thread-pool functions are skipped once the task ended
        if running_in_pool and self._dispatcher is not None:
            self._dispatcher.kill_running(running_in_pool)
            for task in running_in_pool:
                self._release(task)
        if waiting and self._slots is not None:
            for started, placed in self._slots.discard(waiting):
                self._start_placed(started, placed)

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._slots is not None:
            self._slots.drain()  # waiting tasks never start
        self._kill_processes()
        waits = []
        for launcher in (self._launcher, self._placed_launcher):
            if launcher is not None:
                launcher.shutdown()
                waits.append(asyncio.to_thread(launcher.join, 10))
        if self._watched is not None:
            waits.append(self._watched.close(10))
        if self._placed_threads is not None:
            self._placed_threads.shutdown()
        if self._dispatcher is not None:
            pool = self._dispatcher.close()
            terminate_workers(pool)  # before shutdown(): it forgets its processes
            pool.shutdown(wait=False, cancel_futures=True)
            waits.append(asyncio.to_thread(pool.shutdown, True))
        elif self._threads is not None:
            self._threads.shutdown()  # queued functions are dropped, running ones finish alone
        elif self._executor is not None:
            # Threads cannot be killed: queued functions are dropped, running ones finish alone.
            self._executor.shutdown(wait=False, cancel_futures=True)
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=30)
        self._kill_processes()  # started while we were stopping

    def _kill_processes(self) -> None:
        for process in list(self._processes.values()):
            kill(process)
        for ranks in list(self._jobs.values()):
            for rank in list(ranks):
                kill(rank)

    def _stop_at_exit(self) -> None:
        """Interpreter exit without a shutdown (Ctrl-C outside ``async with``): no strays."""
        self._closed = True
        if self._watched is not None:
            self._watched.stop_at_exit()
        self._kill_processes()
        if self._dispatcher is not None:
            terminate_workers(self._dispatcher.pool)
        for launcher in (self._launcher, self._placed_launcher):
            if launcher is not None:
                launcher.shutdown()
