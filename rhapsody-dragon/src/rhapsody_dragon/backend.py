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
import contextlib
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
    ResourceError,
    TaskCanceledError,
    TaskState,
)
from rhapsody.api.errors import task_label
from rhapsody.api.validators import integer
from rhapsody.backends import ExecutionBackend
from rhapsody.backends.inbox import LoopInbox, failing_with
from rhapsody.resources import NodeResources, RankSlot, ResourceRequest, SlotScheduler

from .function_pool import FunctionPool
from .global_services import GS_LOCK, destroy_queue, new_queue
from .launcher import JobOutcome, ProcessLauncher
from .outcomes import apply_call, apply_job
from .polling import Backoff
from .reaper import Reaper
from .resources import allocation_nodes, placed_plan
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
_READ_BATCH = 64  # messages the reader handles before looking at exits again
STOP_TIMEOUT = 60.0  # seconds shutdown waits for Dragon to stop the backend's processes
START_TIMEOUT = 300.0  # seconds initialize waits for Dragon to start the pool


class DragonExecutionBackendV3(ExecutionBackend):
    """Runs ComputeTasks on Dragon; the script must be started with ``dragon``.

    Args:
        num_workers: processes of the function pool; by default the cores the allocation gives
            this process on its node, times the allocation's nodes.
        name: the backend's name in a session.
        cores: for tasks with a resource request, how many CPUs each node hands out (default:
            its CPUs).
        gpus: the GPU ids each node hands out (default: what Dragon finds on it). Given GPUs
            are only named in ``CUDA_VISIBLE_DEVICES``, not passed to Dragon's policy.
        backfill: how many tasks may start ahead of a waiting wide task (default: the cores of
            the largest node).

    Tasks with a resource request (``ranks``, ``cores_per_rank``, ``gpus_per_rank``,
    ``mem_per_rank``) run as one Dragon process per rank, each placed by a policy on the host,
    CPUs and GPUs the backend chose for it; the ranks of a job may spread over nodes.

    Per-task options (``task_backend_specific_kwargs``): ``process_template`` (a dict of Dragon
    ``ProcessTemplate`` parameters: ``cwd``, ``env``, ``stdin``, ``stdout``, ``stderr``,
    ``policy``, ``options``), ``process_templates`` (a job: ``[(count, template), ...]``), and
    ``cwd``, ``env``, ``shell`` for every process of the task.
    """

    default_name = "dragon"
    ranks_span_nodes = True

    def __init__(
        self,
        num_workers: int | None = None,
        name: str = "dragon",
        *,
        cores: int | None = None,
        gpus: Sequence[int | str] | None = None,
        backfill: int | None = None,
    ) -> None:
        super().__init__(name)
        owner = type(self).__name__
        if num_workers is not None and (integer(num_workers) or 0) < 1:
            raise BackendConfigurationError(owner, "num_workers", "an integer >= 1", num_workers)
        if cores is not None and (integer(cores) or 0) < 1:
            raise BackendConfigurationError(owner, "cores", "a count of CPUs >= 1", cores)
        if gpus is not None and (
            isinstance(gpus, (str, bytes))
            or not all(isinstance(g, str) or integer(g) is not None for g in gpus)
        ):
            raise BackendConfigurationError(owner, "gpus", "a list of GPU ids", gpus)
        if backfill is not None and (integer(backfill) is None or backfill < 0):
            raise BackendConfigurationError(owner, "backfill", "an integer >= 0", backfill)
        self._cores = integer(cores)
        self._gpus = None if gpus is None else tuple(str(g) for g in gpus)
        self._backfill = backfill
        self._slots: SlotScheduler | None = None
        self._placements: dict[ComputeTask, list[RankSlot]] = {}
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
        self._inbox = LoopInbox(
            asyncio.get_running_loop(), self._complete, failing_with(self.report), width=2
        )
        try:
            await in_own_thread(self._start, START_TIMEOUT, "rhapsody-dragon-start")
        except TimeoutError:
            # the start is still waiting on Dragon: what it made cannot be undone under it
            raise BackendError(
                f"backend {self.name!r}: the Dragon runtime did not answer within "
                f"{START_TIMEOUT}s while the backend started"
            ) from None
        except BaseException:
            # Nobody holds a backend whose start failed (``await Backend()`` raised): what the
            # start made -- workers, threads, queue, directory -- goes now, and a later await
            # starts afresh.
            await self._stop_bounded()
            self._pool = self._launcher = self._reaper = self._reader = None
            self._outq, self._out_dir = None, None
            self._stopping = threading.Event()
            raise

    def _start(self) -> None:
        with GS_LOCK:
            hostnames = node_hostnames()
            local = this_node_huid()
            nodes = allocation_nodes(self._cores, self._gpus)
        self._slots = SlotScheduler(nodes, spans_nodes=True, backfill=self._backfill)
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

    # -- resources --------------------------------------------------------------------------------

    def resource_nodes(self) -> tuple[NodeResources, ...]:
        return self._slots.nodes if self._slots is not None else ()

    def check_resources(self, task: BaseTask, request: ResourceRequest) -> None:
        options = task.task_backend_specific_kwargs
        given = [k for k in ("process_template", "process_templates") if k in options]
        if given:
            raise ResourceError(
                f"{task_label(task.uid)} gives both a resource request ({request.describe()}) "
                f"and task_backend_specific_kwargs[{given[0]!r}]: use one of them (the request "
                "lets the backend place the ranks; templates place them yourself)"
            )
        super().check_resources(task, request)

    def _launch_placed(self, task: ComputeTask, slots: list[RankSlot]) -> None:
        assert self._slots is not None and self._launcher is not None
        self._placements[task] = slots
        plan = placed_plan(task, slots, self._slots.nodes, real_gpus=self._gpus is None)
        self._launcher.submit(task, plan)

    def _release(self, task: ComputeTask) -> None:
        slots = self._placements.pop(task, None)
        if slots is not None and self._slots is not None and not self._closed:
            for started, placed in self._slots.release(slots):
                self._launch_placed(started, placed)

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
            request = task.resources
            if request is not None:
                assert self._slots is not None
                slots = self._slots.submit(task, request)
                if slots is not None:
                    self._launch_placed(task, slots)
                continue
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
        backoff = Backoff()  # a blocking get spins: poll and sleep instead (see .polling)
        while not stopping.is_set():
            exits = reaper.take()
            # Everything a process put on the queue before it exited is there by now: handle it
            # all first, then the exits (a result must not be taken for lost). Without exits,
            # a bounded batch, so that exits are looked at again soon under a steady stream.
            handled = 0
            while exits or handled < _READ_BATCH:
                try:
                    message = get(block=False)
                except queue.Empty:
                    break
                self._on_message(message)
                handled += 1
            for puid, code in exits:
                try:
                    if pool.owns(puid):
                        pool.on_death(puid, code)
                    else:
                        launcher.on_exit(puid, code)
                except Exception:
                    log.exception("dragon backend %r: could not handle an exit", self.name)
            if handled or exits:
                backoff.reset()
            else:
                backoff.pause(stopping)

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
        if self._placements and outcome is not _STARTED:
            self._release(task)  # its processes have ended (or never started)
        if task.done:
            self._tasks.pop(task.uid, None)
            return
        if self._closed:  # shutting down: what the shutdown stops ends CANCELED, not FAILED
            return
        if outcome is _STARTED:
            self.report(task, _RUNNING)
            return
        if outcome is None:  # a job dropped before it started (its task had ended)
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
        if self._slots is not None:  # those that waited for resources never start
            waiting = [t for t in mine if t.resources is not None and t not in self._placements]
            for started, placed in self._slots.discard(waiting):
                self._launch_placed(started, placed)
        for task in mine:
            self._tasks.pop(task.uid, None)
            if not task.done:
                task.exception = TaskCanceledError(task.uid, "canceled")
                self.report(task, _CANCELED)
        if mine and self._pool is not None:
            try:
                await in_own_thread(
                    lambda: self._cancel(mine), STOP_TIMEOUT, "rhapsody-dragon-cancel"
                )
            except TimeoutError:
                log.error(
                    "dragon backend %r: Dragon did not stop %d canceled tasks within %ss",
                    self.name,
                    len(mine),
                    STOP_TIMEOUT,
                )

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
        if self._slots is not None:
            self._slots.drain()  # waiting tasks never start
        if self._pool is not None:
            await self._stop_bounded()
        for task in list(self._tasks.values()):
            if not task.done:
                task.exception = TaskCanceledError(task.uid, f"backend {self.name!r} shut down")
                self.report(task, _CANCELED)
        self._tasks.clear()
        self._inbox = None

    async def _stop_bounded(self) -> None:
        try:
            await in_own_thread(self._stop, STOP_TIMEOUT, "rhapsody-dragon-stop")
        except TimeoutError:
            log.error(
                "dragon backend %r: Dragon did not finish stopping within %ss (its services did "
                "not answer); giving up on it",
                self.name,
                STOP_TIMEOUT,
            )

    def _stop(self) -> None:
        """Stop what :meth:`_start` made, all or part of it (a start that failed midway)."""
        try:
            # A process killed while putting on the result queue may hold its channel's lock:
            # destroying it would hang Dragon (see FunctionPool.stop): it goes with the runtime.
            clean = self._launcher.stop() if self._launcher is not None else True
            clean = (self._pool.stop() if self._pool is not None else True) and clean
            if self._reaper is not None:
                self._reaper.stop()
            # Whatever the backend started on this node and is still alive (a grandchild, say).
            kill_marked(self._token, MARK_BACKEND)
            self._stopping.set()
            if self._reader is not None and self._reader.is_alive():
                self._reader.join(10)
            if clean and self._outq is not None:
                destroy_queue(self._outq)
        finally:
            if self._out_dir is not None:
                shutil.rmtree(self._out_dir, ignore_errors=True)


async def in_own_thread(call: Any, timeout: float, name: str) -> Any:
    """``call()`` in a daemon thread of its own, awaited for at most ``timeout`` seconds
    (TimeoutError after that; the thread is left to finish or not).

    Not in the loop's default executor: a Dragon request that never gets its answer (a runtime
    whose services hang) would then hold ``asyncio.run``, which waits for that executor, for
    ever."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    async with asyncio.timeout(timeout):
        return await asyncio.shield(done)


# The same backend under the name rhapsody-py users know.
DragonExecutionBackend = DragonExecutionBackendV3
