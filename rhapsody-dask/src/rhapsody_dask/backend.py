"""``DaskExecutionBackend``: ComputeTasks on a Dask distributed cluster.

Batches go to Dask in bulk (one ``client.map`` per kind and placement), every task under its own
key (no ``pure=True`` deduplication). Workers send starts and completions, small results included,
as batched events on a topic of the backend's own. What ends without such a message (a dead
worker, a task Dask itself failed, a lost scheduler) is found by a sweep over the outstanding
futures: a done callback per future costs the client a coroutine and a thread hop per task,
which was a sixth of the driving process's CPU per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import cloudpickle  # type: ignore[import-untyped]
from distributed import Client, Future

from rhapsody.api import (
    BackendError,
    BaseTask,
    ComputeTask,
    ResourceError,
    TaskState,
)
from rhapsody.api.errors import task_label
from rhapsody.backends import ExecutionBackend
from rhapsody.backends.inbox import failing_with
from rhapsody.resources import NodeResources, ResourceRequest, check_request

from . import worker_side
from .arguments import where_to_run
from .connection import DaskConnection, connect
from .options import check_options as check_dask_options
from .options import placement, unsatisfiable
from .outcomes import apply_outcome
from .resources import declare_own_workers, executable_env, worker_nodes
from .shipping import (
    call_pickle,
    command_string,
    cwd_option,
    function_pickle,
    key_prefix,
    map_options,
)

log = logging.getLogger(__name__)

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_MAP_CHUNK = 5000
_RETIRE_BATCH = 20_000
# The sweep over outstanding futures runs at most every this many seconds, and spends at most
# about 1/_SWEEP_SHARE of the loop's time (it slows down as the number of futures grows).
_SWEEP_INTERVAL = 0.25
_SWEEP_SHARE = 50
# Dask's error for a batch its scheduler could not unpickle, and the key suffix of a task sent
# again alone after one.
_GRAPH_UNREADABLE = "Error during deserialization of the task graph"
_ALONE = "-alone"


class DaskExecutionBackend(ExecutionBackend):
    """Runs ComputeTasks on Dask.

    Exactly one of these says where (none: the backend starts its own ``LocalCluster``):

    Args:
        cluster: a Dask cluster object (``LocalCluster``, a dask-jobqueue cluster...), sync or
            async, or a scheduler address string. Left running on shutdown.
        client: a ``distributed.Client``. Left open on shutdown.
        address: a scheduler address (``"tcp://host:8786"``).
        resources: keyword arguments for the ``LocalCluster`` the backend creates (the name
            rhapsody-py used); ``n_workers``, ``threads_per_worker`` and ``memory_limit`` too.
        name: the backend's name in a session.
        connect_timeout: seconds to wait for the scheduler.

    Per-task options (``task_backend_specific_kwargs``): ``resources`` (Dask worker resources,
    e.g. ``{"GPU": 1}``), ``workers``, ``priority``, ``retries``, and for executables ``cwd``,
    ``env`` and ``shell``.

    Resource requests (``cores_per_rank``, ``gpus_per_rank``, ``mem_per_rank``) become the Dask
    resources ``CPU``, ``GPU`` and ``MEMORY`` (see :mod:`rhapsody_dask.resources`); a task runs as
    one process, so ``ranks`` above 1 is refused.
    """

    default_name = "dask"

    def __init__(
        self,
        resources: dict[str, Any] | None = None,
        name: str = "dask",
        cluster: Any = None,
        client: Client | None = None,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: str | float | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        super().__init__(name)
        where = where_to_run(
            cluster=cluster,
            client=client,
            address=address,
            resources=resources,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            connect_timeout=connect_timeout,
        )
        self._cluster, self._client_arg, self._address = where.cluster, where.client, where.address
        self._cluster_kwargs: dict[str, Any] = dict(where.cluster_kwargs)
        self._timeout = where.connect_timeout
        self._conn: DaskConnection | None = None
        self._token = uuid.uuid4().hex[:10]
        self._topic = f"rhapsody-running-{self._token}"
        self._running: dict[Any, ComputeTask] = {}
        self._futures: dict[ComputeTask, Future[Any]] = {}
        self._completed: list[Future[Any]] = []
        self._retired: list[Future[Any]] = []
        self._collector: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._unannounced: set[Any] = set()  # keys seen finished by the last sweep, no message
        self._offered: dict[str, dict[str, float]] = {}  # worker address -> its resources

    @property
    def client(self) -> Client:
        """The asynchronous client the backend talks to Dask through."""
        if self._conn is None:
            raise BackendError(f"backend {self.name!r} is not initialised: await it first")
        return self._conn.client

    @property
    def cluster(self) -> Any:
        """The cluster the backend started or was given (None when given a client/address)."""
        return self._conn.cluster if self._conn is not None else self._cluster

    async def initialize(self) -> None:
        self._conn = await connect(
            self._cluster,
            self._client_arg,
            self._address,
            declare_own_workers(self._cluster_kwargs),
            self._timeout,
        )
        try:
            self._offered = await self.client.run_on_scheduler(worker_side.worker_resources)
            self._conn.client.subscribe_topic(self._topic, self._on_event)
        except BaseException:
            # nobody holds a backend whose start failed: the cluster and client it made (not
            # one it was given) are closed now, and a later await connects afresh
            conn, self._conn = self._conn, None
            await asyncio.shield(conn.close())
            raise
        self._sweeper = asyncio.ensure_future(self._sweep())

    # -- submission -------------------------------------------------------------------------------

    def check_options(self, task: BaseTask) -> None:
        check_dask_options(task)  # type: ignore[arg-type]

    # -- resources --------------------------------------------------------------------------------

    def resource_nodes(self) -> list[NodeResources]:
        """Each worker with the resources it declares (what the scheduler last told the client,
        and what the backend saw at start and at its last submission)."""
        offered = dict(self._offered)
        if self._conn is not None:
            for address, worker in self.client.scheduler_info().get("workers", {}).items():
                offered.setdefault(address, dict(worker.get("resources") or {}))
        return worker_nodes(offered)

    def check_resources(self, task: BaseTask, request: ResourceRequest) -> None:
        if request.ranks > 1:
            raise ResourceError(
                f"{task_label(task.uid)} asks for ranks={request.ranks}: the Dask backend runs "
                "each task as one process on one worker; run multi-rank jobs on the "
                "concurrent or Dragon backend"
            )
        if "resources" in task.task_backend_specific_kwargs:
            raise ResourceError(
                f"{task_label(task.uid)} gives both a resource request ({request.describe()}) "
                "and task_backend_specific_kwargs['resources']: use one of them"
            )
        nodes = self.resource_nodes()
        if getattr(task, "cores_per_rank", None) is None:  # not asked: no Dask resource
            nodes = [attrs.evolve(n, cores=(0,) * request.cores_per_rank) for n in nodes]
        try:
            check_request(self.name, task.uid, request, nodes, spans_nodes=False)
        except ResourceError as error:
            raise ResourceError(
                f"{error} Workers take tasks with requests when they declare the Dask resources "
                "CPU, GPU and MEMORY (dask worker --resources 'CPU=16 GPU=4 MEMORY=64e9'); the "
                "backend's own LocalCluster declares them itself."
            ) from None

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        if self._closed:
            raise BackendError(f"backend {self.name!r} is shut down")
        groups: dict[tuple[Any, ...], list[ComputeTask]] = {}
        for task in tasks:
            key = (task.function is not None, *placement(task))  # type: ignore[arg-type,attr-defined]
            groups.setdefault(key, []).append(task)  # type: ignore[arg-type]
        offered: dict[str, dict[str, float]] | None = None
        for (is_function, *where), group in groups.items():
            resources = where[0]
            if resources:
                if offered is None:
                    offered = await self.client.run_on_scheduler(worker_side.worker_resources)
                    self._offered = offered
                if unsatisfiable(resources, offered):
                    self._fail_unsatisfiable(group, dict(resources), offered)
                    continue
            options = map_options(*where)
            for start in range(0, len(group), _MAP_CHUNK):
                self._map(group[start : start + _MAP_CHUNK], is_function, options)
                await asyncio.sleep(0)

    def _map(
        self, tasks: list[ComputeTask], is_function: bool, options: dict[str, Any], suffix: str = ""
    ) -> None:
        try:
            futures, keys = self._map_now(tasks, is_function, options, suffix)
        except Exception:  # noqa: BLE001 - a task that does not serialise: find it by halves
            if len(tasks) == 1:
                self._fail_unsendable(tasks[0])
                return
            half = len(tasks) // 2
            self._map(tasks[:half], is_function, options, suffix)
            self._map(tasks[half:], is_function, options, suffix)
            return
        running, handles = self._running, self._futures
        for task, key, future in zip(tasks, keys, futures, strict=True):
            running[key] = task
            handles[task] = future

    def _map_now(
        self, tasks: list[ComputeTask], is_function: bool, options: dict[str, Any], suffix: str
    ) -> tuple[list[Future[Any]], list[str]]:
        keys = [f"{key_prefix(t)}-{self._token}-{t.uid}{suffix}" for t in tasks]
        topics = [self._topic] * len(tasks)
        if is_function:
            functions: dict[Any, bytes] = {}  # one pickle per function in the batch
            futures = self.client.map(
                worker_side.run_shipped,
                [function_pickle(t.function, functions) for t in tasks],
                [call_pickle(t) for t in tasks],
                [t.capture_stdio for t in tasks],
                [t.timeout is not None for t in tasks],
                topics,
                keys,
                key=keys,
                pure=False,
                **options,
            )
        else:
            run_executable: Any = worker_side.run_executable
            futures = self.client.map(
                run_executable,
                [command_string(t) for t in tasks],
                [bool(t.task_backend_specific_kwargs.get("shell")) for t in tasks],
                [cwd_option(t) for t in tasks],
                [executable_env(t) for t in tasks],
                [t.timeout for t in tasks],
                topics,
                keys,
                key=keys,
                pure=False,
                **options,
            )
        return futures, keys

    def _fail_unsendable(self, task: ComputeTask) -> None:
        try:
            cloudpickle.dumps((task.function, task.args, dict(task.kwargs)))
            reason = "Dask refused it"
        except Exception as exc:  # noqa: BLE001 - the reason, shortened
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        task.exception = BackendError(
            f"{task_label(task.uid)}: its function or arguments cannot be sent to a "
            f"Dask worker ({reason})"
        )
        self.report(task, _FAILED)

    def _fail_unsatisfiable(
        self,
        tasks: list[ComputeTask],
        wanted: dict[str, float],
        offered: dict[str, dict[str, float]],
    ) -> None:
        summary = offered or "no workers"
        for task in tasks:
            task.exception = ResourceError(
                f"{task_label(task.uid)}: no Dask worker offers resources {wanted}; workers offer "
                f"{summary}"
            )
            self.report(task, _FAILED)

    # -- progress ---------------------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:  # a worker's messages, on the loop
        message = event[1]  # (timestamp, message); ("batch", [message, ...]) from our workers
        for one in message[1] if message[0] == "batch" else (message,):
            self._on_message(one)

    def _on_message(self, message: Any) -> None:
        kind, key = message[0], message[1]
        task = self._running.get(key)
        if task is None:
            return
        if kind == "run":
            self.report(task, _RUNNING)
            return
        if kind == "ready":  # its result is too large for a message: fetch it
            future = self._futures.get(task)
            if future is not None:
                self._fetch(future)
            return
        del self._running[key]
        self._retire(task)
        try:
            result = cloudpickle.loads(message[2])
        except Exception as exc:  # noqa: BLE001
            result = exc
        self._complete(task, result)

    def _fetch(self, future: Future[Any]) -> None:
        """Finish ``future``'s task from Dask's side of it (its result or its error)."""
        self._completed.append(future)
        if self._collector is None or self._collector.done():
            self._collector = asyncio.ensure_future(self._collect())

    async def _sweep(self) -> None:
        """Find the futures that ended without a message from their worker: an error of Dask's
        (a dead worker, a lost scheduler, a task that could not be deserialised) or a message
        that was lost. A finished future gets one more sweep for its message to arrive."""
        loop = asyncio.get_running_loop()
        interval = _SWEEP_INTERVAL
        while not self._closed:
            await asyncio.sleep(interval)
            started = loop.time()
            try:
                self._sweep_once()
            except Exception:  # swept again next time: ending the sweeper would leave every
                # later failure of Dask's (a dead worker...) unseen, its task waiting for ever
                log.exception("dask backend %r: a sweep failed", self.name)
            interval = max(_SWEEP_INTERVAL, (loop.time() - started) * _SWEEP_SHARE)

    def _sweep_once(self) -> None:
        seen, unannounced = self._unannounced, set()
        for future in list(self._futures.values()):
            status = future.status
            if status == "pending":
                continue
            if status == "finished" and future.key not in seen:
                unannounced.add(future.key)  # its message may be on its way
                continue
            if future.key in self._running:
                self._fetch(future)
        self._unannounced = unannounced

    async def _collect(self) -> None:
        """Futures that ended without their completion message: large results, Dask's errors."""
        while self._completed:
            batch, self._completed = self._completed, []
            for future in batch:
                task = self._running.get(future.key)
                if task is None or task.done:
                    self._running.pop(future.key, None)
                    continue
                # A large result's message may come before Dask has the result: this waits.
                result = await _result_or_error(future)
                if self._running.get(future.key) is not task or task.done:
                    continue  # canceled, or its message came, meanwhile
                try:
                    self._settle(future, task, result)
                except Exception as exc:  # its task ends FAILED; the batch's others still end
                    log.error("settling %s failed", task.uid, exc_info=exc)
                    self._running.pop(future.key, None)
                    failing_with(self.report)(task, exc)

    def _settle(self, future: Future[Any], task: ComputeTask, result: Any) -> None:
        """End ``task`` from what was fetched of its ``future``."""
        if future.status != "finished":
            self._finish_unsuccessful(future, result)
            return
        if result is None:  # delivered by an event that is still on its way
            asyncio.get_running_loop().call_later(30, self._result_lost, future.key)
            return
        del self._running[future.key]
        self._retire(task)
        self._complete(task, result)

    def _retire(self, task: ComputeTask) -> None:
        """Forget a finished task's future. Dropping the last reference makes the client tell
        the scheduler to forget the key, one message each: done in bulk, when the backend is
        idle or every few thousand tasks, so that the scheduler is not kept busy mid-run."""
        retired = self._retired
        future = self._futures.pop(task, None)
        if future is not None:
            retired.append(future)
        if len(retired) >= _RETIRE_BATCH or not self._running:
            self._retired = []

    def _result_lost(self, key: Any) -> None:
        task = self._running.pop(key, None)
        if task is not None and not task.done:
            task.exception = BackendError(
                f"{task_label(task.uid)}: its result never reached the client"
            )
            self.report(task, _FAILED)

    def _complete(self, task: ComputeTask, result: Any) -> None:
        try:
            self._conclude(task, result)
        except Exception as exc:  # its task ends FAILED, and the others still end
            log.error("completing %s failed", task.uid, exc_info=exc)
            failing_with(self.report)(task, exc)

    def _conclude(self, task: ComputeTask, result: Any) -> None:
        if task.done:
            return
        session = self.session
        task_dir = session.task_dir if task.capture_stdio and session is not None else None
        self.report(task, apply_outcome(task, result, task_dir))

    def _finish_unsuccessful(self, future: Future[Any], error: Any) -> None:
        """Fail (or send again, see below) the task of ``future``, which Dask ended with
        ``error`` (fetched by the caller)."""
        task = self._running.pop(future.key, None)
        if task is None or task.done:  # canceled meanwhile: it stays CANCELED, and is not re-run
            return
        self._futures.pop(task, None)
        name = type(error).__name__
        if (
            _GRAPH_UNREADABLE in str(error)
            and not str(future.key).endswith(_ALONE)
            and not self._closed
        ):
            # Dask's scheduler failed a whole client.map batch it could not unpickle (our calls
            # travel as bytes: a scheduler without rhapsody-dask, say). Each goes again alone,
            # so that only the guilty fail.
            self._map([task], task.function is not None, map_options(*placement(task)), _ALONE)
            return
        if name == "KilledWorker":
            message = f"{task_label(task.uid)}: the Dask worker running it died ({error})"
        elif future.status == "cancelled":
            message = f"{task_label(task.uid)}: Dask dropped it: {error}"
        else:
            message = f"{task_label(task.uid)}: Dask failed it: {name}: {error}"
        task.exception = BackendError(message)
        self.report(task, _FAILED)

    # -- canceling and shutdown -------------------------------------------------------------------

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        handles = self._futures
        futures = [f for t in tasks if (f := handles.pop(t, None)) is not None]  # type: ignore[call-overload]
        if not futures or self._conn is None:
            return
        keys = [f.key for f in futures]
        for key in keys:
            self._running.pop(key, None)
        await asyncio.gather(
            _quietly(self.client.cancel(futures, force=True)),
            _quietly(self.client.run(worker_side.kill_tasks, keys)),  # a running executable
        )

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._conn is None:
            return
        in_flight = list(self._running.values())
        if in_flight:
            await self.cancel_tasks(in_flight)  # each step bounded by _quietly's timeout
            # and whatever of ours still runs, or would start, on any worker
            await _quietly(self.client.run(worker_side.kill_backend, self._token))
        with contextlib.suppress(Exception):  # the scheduler may already be gone
            self._conn.client.unsubscribe_topic(self._topic)
        for helper in (self._collector, self._sweeper):
            if helper is not None and not helper.done():
                helper.cancel()
        await self._conn.close()


async def _result_or_error(future: Future[Any]) -> Any:
    try:
        return await future.result()
    # The task's error is what we want; not the collector's own cancellation (at shutdown), which
    # must end it rather than make it fetch the next result (that could wait for ever).
    except Exception as exc:  # noqa: BLE001
        return exc


async def _quietly(awaitable: Any) -> None:
    try:
        async with asyncio.timeout(10):  # not wait_for: in 3.11 it can lose a cancel
            await awaitable
    except Exception as exc:  # noqa: BLE001 - best effort while canceling
        log.debug("dask cancel step failed: %s", exc)
