"""``DragonExecutionBackendV3``: ComputeTasks on the DragonHPC runtime.

Which Dragon primitive runs a task depends on the task, chosen from measurements (see
``benchmarks/README.md``):

* a function without templates goes to the function pool (``function_pool.py``): Dragon
  worker processes fed in chunks, thousands of calls per second;
* an executable, or a function with ``process_template``/``process_templates``, runs as its own
  Dragon process(es) (``launcher.py``), so that the template's policy applies to it.

Three threads talk to Dragon so that the event loop never waits on it: the dispatcher (feeds
the pool), the launchers (start processes) and the reader (everything that comes back arrives
on one Dragon queue, in order); the reaper learns about exits.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from rhapsody.api import (
    BackendConfigurationError,
    BackendError,
    BaseTask,
    ComputeTask,
    TaskCanceledError,
    TaskState,
)
from rhapsody.api.validators import integer
from rhapsody.backends import ExecutionBackend
from rhapsody.backends.inbox import LoopInbox

from .function_pool import FunctionPool
from .global_services import GS_LOCK, destroy_queue, new_queue
from .launcher import JobOutcome, ProcessLauncher
from .outcomes import apply_call, apply_job
from .reaper import Reaper
from .runtime import allocation_cores, node_hostnames, require_runtime, this_node_huid
from .templates import check_options, process_plan
from .worker_side import MARK_BACKEND, kill_marked

log = logging.getLogger(__name__)

_RUNNING, _DONE, _FAILED, _CANCELED = (
    TaskState.RUNNING,
    TaskState.DONE,
    TaskState.FAILED,
    TaskState.CANCELED,
)
_STARTED = object()  # the outcome that means "it is running now"
_RESULT_QUEUE_SIZE = 1024  # messages; Dragon preallocates each slot's block
_READ_WAIT = 0.02  # seconds the reader waits on the queue before looking at exits again


class DragonExecutionBackendV3(ExecutionBackend):
    """Runs ComputeTasks on Dragon; the script must be started with ``dragon``.

    Args:
        num_workers: processes of the function pool; by default the cores the allocation gives
            this process on its node, times the allocation's nodes.
        name: the backend's name in a session.

    Per-task options (``task_backend_specific_kwargs``): ``process_template`` (a dict of Dragon
    ``ProcessTemplate`` parameters: ``cwd``, ``env``, ``stdin``, ``stdout``, ``stderr``,
    ``policy``, ``options``), ``process_templates`` (a job: ``[(count, template), ...]``), and
    ``cwd``, ``env``, ``shell`` for every process of the task.
    """

    default_name = "dragon"

    def __init__(self, num_workers: int | None = None, name: str = "dragon") -> None:
        super().__init__(name)
        if num_workers is not None and (integer(num_workers) or 0) < 1:
            raise BackendConfigurationError(
                type(self).__name__, "num_workers", "an integer >= 1", num_workers
            )
        self._num_workers = integer(num_workers)
        self._token = f"rhapsody-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[str, ComputeTask] = {}
        self._inbox: LoopInbox | None = None
        self._outq: Any = None
        self._out_dir: str | None = None
        self._reaper: Reaper | None = None
        self._pool: FunctionPool | None = None
        self._launcher: ProcessLauncher | None = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def num_workers(self) -> int:
        """Processes in the function pool (known once the backend is initialised)."""
        if self._pool is not None:
            return self._pool.size
        return self._num_workers or 0

    async def initialize(self) -> None:
        require_runtime(self.name)
        self._inbox = LoopInbox(asyncio.get_running_loop(), self._complete)
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        with GS_LOCK:
            hostnames = node_hostnames()
            local = this_node_huid()
        size = self._num_workers or allocation_cores(len(hostnames))
        self._outq = new_queue(_RESULT_QUEUE_SIZE)
        self._out_dir = tempfile.mkdtemp(prefix=f"{self._token}-")
        self._reaper = Reaper()
        # Pickled once, here: processes get these bytes, so no other thread touches the queue.
        outq_blob = cloudpickle.dumps(self._outq)
        self._pool = FunctionPool(
            size,
            self._token,
            outq_blob,
            self._reaper,
            hostnames,
            local,
            self._deliver,
            self._started,
        )
        self._launcher = ProcessLauncher(
            self._token,
            outq_blob,
            self._reaper,
            self._out_dir,
            self._task_dir,
            local,
            self._deliver,
            self._started,
        )
        self._reader = threading.Thread(
            target=self._read_loop, name="rhapsody-dragon-reader", daemon=True
        )
        self._reader.start()
        self._pool.start()
        log.info(
            "dragon backend %r: %d pool workers on %d node(s)", self.name, size, len(hostnames)
        )

    def _task_dir(self) -> str:
        if self.session is None:
            raise BackendError("capture_stdio needs the backend to be part of a Session")
        return self.session.task_dir

    # -- submission -------------------------------------------------------------------------------

    def check_options(self, task: BaseTask) -> None:
        check_options(task)

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        if self._closed:
            raise BackendError(f"backend {self.name!r} is shut down")
        if self._pool is None or self._launcher is None:
            raise BackendError(f"backend {self.name!r} is not initialised: await it first")
        functions: list[ComputeTask] = []
        registry, launch = self._tasks, self._launcher.submit
        for task in tasks:
            assert isinstance(task, ComputeTask)
            registry[task.uid] = task
            plan = process_plan(task)
            if plan is None:
                functions.append(task)
            else:
                launch(task, plan)
        if functions:
            self._pool.submit(functions)

    # -- what comes back (reader thread) ----------------------------------------------------------

    def _read_loop(self) -> None:
        pool, launcher, reaper, get = self._pool, self._launcher, self._reaper, self._outq.get
        assert pool is not None and launcher is not None and reaper is not None
        stopping = self._stopping
        while not stopping.is_set():
            exits = reaper.take()
            # Everything a process put on the queue before it exited is there by now: handle it
            # first, then the exits (a result must not be taken for lost).
            while True:
                try:
                    message = get(timeout=0 if exits else _READ_WAIT)
                except queue.Empty:
                    break
                self._on_message(message)
                if not exits:
                    break
            for puid, code in exits:
                try:
                    if pool.owns(puid):
                        pool.on_death(puid, code)
                    else:
                        launcher.on_exit(puid, code)
                except Exception:
                    log.exception("dragon backend %r: could not handle an exit", self.name)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        assert self._pool is not None and self._launcher is not None
        try:
            if message[0] == "proc":
                self._launcher.on_result(*message[1:])
            else:
                self._pool.on_message(message)
        except Exception:
            log.exception("dragon backend %r: could not handle %r", self.name, message[0])

    def _deliver(self, task: ComputeTask, outcome: Any) -> None:
        inbox = self._inbox
        if inbox is not None:
            inbox.push(task, outcome)

    def _started(self, task: ComputeTask) -> None:
        self._deliver(task, _STARTED)

    # -- completion (event loop) ------------------------------------------------------------------

    def _complete(self, task: ComputeTask, outcome: Any) -> None:
        if task.done:
            self._tasks.pop(task.uid, None)
            return
        if self._closed:  # shutting down: what the shutdown stops ends CANCELED, not FAILED
            return
        if outcome is _STARTED:
            self.report(task, _RUNNING)
            return
        self._tasks.pop(task.uid, None)
        if isinstance(outcome, JobOutcome):
            ok = apply_job(task, outcome)
        elif isinstance(outcome, BaseException):
            task.exception, ok = outcome, False
        else:
            ok = apply_call(task, outcome, self._session_task_dir(task))
        if task.state is not _RUNNING:
            self.report(task, _RUNNING)
        self.report(task, _DONE if ok else _FAILED)

    def _session_task_dir(self, task: ComputeTask) -> str | None:
        return self.session.task_dir if task.capture_stdio and self.session is not None else None

    # -- canceling and shutdown -------------------------------------------------------------------

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        mine = [t for t in tasks if isinstance(t, ComputeTask) and t.uid in self._tasks]
        # CANCELED first: what the kill makes of a task ("killed by signal 9") arrives later
        # and is then dropped, so a canceled task never ends FAILED.
        for task in mine:
            self._tasks.pop(task.uid, None)
            if not task.done:
                task.exception = TaskCanceledError(task.uid, "canceled")
                self.report(task, _CANCELED)
        if mine and self._pool is not None:
            await asyncio.to_thread(self._cancel, mine)

    def _cancel(self, tasks: list[ComputeTask]) -> None:
        assert self._pool is not None and self._launcher is not None
        launcher = self._launcher
        in_pool = [t for t in tasks if not launcher.owns(t)]
        if in_pool:
            self._pool.cancel(in_pool)
        for task in tasks:
            if launcher.owns(task):
                launcher.cancel(task)

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await asyncio.to_thread(self._stop)
        for task in list(self._tasks.values()):
            if not task.done:
                task.exception = TaskCanceledError(task.uid, f"backend {self.name!r} shut down")
                self.report(task, _CANCELED)
        self._tasks.clear()
        self._inbox = None

    def _stop(self) -> None:
        assert self._pool is not None and self._launcher is not None and self._reaper is not None
        self._launcher.stop()
        self._pool.stop()
        self._reaper.stop()
        # Whatever the backend started on this node and is still alive (a grandchild, say).
        kill_marked(self._token, MARK_BACKEND)
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(10)
        destroy_queue(self._outq)
        if self._out_dir is not None:
            shutil.rmtree(self._out_dir, ignore_errors=True)


# The same backend under the name rhapsody-py users know.
DragonExecutionBackend = DragonExecutionBackendV3
