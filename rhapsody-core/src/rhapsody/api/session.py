"""The :class:`Session`: routes tasks to backends, tracks their states, resolves their futures."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

from .clock import WALL_OFFSET as _WALL_OFFSET
from .closing import await_closing_hooks, shut_down_backends, start_backends
from .dict_tasks import write_back
from .errors import (
    SessionError,
    TaskCanceledError,
    TaskExecutionError,
    TaskTimeoutError,
)
from .lazy_futures import FutureToMake, settle
from .routing_table import RoutingTable
from .states import TaskState
from .submission import prepare, register_and_submit, route
from .task import BaseTask
from .task_lookup import look_up, require_list
from .validators import unsafe_name
from .waiting import TaskWaits

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..telemetry.manager import TelemetryManager

log = logging.getLogger(__name__)

_set = object.__setattr__
_NEW, _SUBMITTED, _RUNNING = TaskState.NEW, TaskState.SUBMITTED, TaskState.RUNNING
_DONE, _FAILED, _CANCELED = TaskState.DONE, TaskState.FAILED, TaskState.CANCELED


class Session:
    """Runs tasks on a set of backends.

    ``Session(backends=[...], uid=None, work_dir=None, progress=False)``; use it as
    ``async with Session(...)`` or call :meth:`close` yourself. Files a task writes for you
    (``capture_stdio``) go under ``{work_dir}/{uid}/``. ``progress=True`` draws a live bar
    where a person watches (a terminal, Jupyter); ``"always"`` prints it to logs too.
    """

    def __init__(
        self,
        backends: Sequence[Backend] | None = None,
        uid: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        progress: bool | str = False,
    ) -> None:
        from ..backends.base import Backend
        from ..plugins.manager import get_plugin_host

        if uid is not None and unsafe_name(uid):
            raise SessionError(
                f"Session.uid: expected a name usable as a directory name (non-empty, no '/', NUL "
                f"or control characters, not '.' or '..'), got {uid!r}"
            )
        if backends is not None and (
            isinstance(backends, (str, bytes, Mapping)) or not isinstance(backends, Iterable)
        ):
            raise SessionError(
                f"Session.backends: expected a list of backends, got {backends!r}"
                + (" (wrap it in a list: backends=[backend])" if hasattr(backends, "name") else "")
            )
        if progress not in (True, False, "always"):
            raise SessionError(
                f"Session.progress: expected True, False or 'always', got {progress!r}"
            )
        self.progress: bool | str = progress
        self.uid: str = uid or f"session.{uuid.uuid4().hex[:8]}"
        self.work_dir: str = os.path.abspath(os.fspath(work_dir)) if work_dir else os.getcwd()
        self.backends: dict[str, Backend] = {}
        self.tasks: dict[str, BaseTask] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._future_to_make: FutureToMake | None = None  # what a submitted task holds at first
        self._host = get_plugin_host()
        self._backend_type = Backend
        self._started = False
        self._closed = False
        self._pending = 0
        self._waits = TaskWaits()
        self._timers: dict[BaseTask, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._task_dir: str | None = None
        self._claimed: set[str] = set()  # uids of batches being prepared, not registered yet
        self._on_submitted: Any = None
        self._on_state: Any = None
        self._on_finished: Any = None
        self._on_changes: Any = None
        # Tasks and the states they entered, for rhapsody_tasks_changed, flushed once per loop
        # step; None when no plugin observes them. Two lists, not a list of pairs: a tuple per
        # transition is garbage the collector then walks every live task to reclaim (measured).
        self._changes: list[BaseTask] | None = None
        self._change_states: list[TaskState] = []
        self._routing: RoutingTable | None = None
        self._telemetry: TelemetryManager | None = None  # for get_telemetry()
        # Tasks submitted as dicts -> those dicts, kept up to date until the task ends.
        self._sources: dict[BaseTask, MutableMapping[str, Any]] = {}
        # Backend name -> callbacks registered with backend.register_callback (usually none).
        self._watchers: dict[str, list[Callable[[BaseTask, TaskState], object]]] = {}
        self.shutdown_timeout: float = 60.0
        for backend in backends or ():
            self.add_backend(backend)

    # -- set-up -----------------------------------------------------------------------------------

    def add_backend(self, backend: Backend) -> None:
        """Add a backend; it is initialised (awaited) when the session starts, if it was not.

        A backend written for rhapsody-py (its ``BaseBackend`` contract) is accepted too: it
        runs through :class:`~rhapsody.compat.legacy_backend.LegacyBackendAdapter`, which
        ``session.backends[name]`` then holds.
        """
        if not isinstance(backend, self._backend_type):
            from ..compat.legacy_backend import LegacyBackendAdapter, is_legacy_backend

            if not is_legacy_backend(backend):
                raise SessionError(f"Session.backends: expected rhapsody backends, got {backend!r}")
            backend = LegacyBackendAdapter(backend)
        if self._closed:
            raise SessionError(f"session {self.uid} is closed")
        if backend.name in self.backends:
            raise SessionError(
                f"Session.backends: two backends are named {backend.name!r}; give each a "
                "distinct name="
            )
        owner = backend.session
        if owner is not None and owner is not self and not owner._closed:
            raise SessionError(f"backend {backend.name!r} already belongs to session {owner.uid}")
        self.backends[backend.name] = backend
        backend._attach(self, self._transition)
        self._watch(backend)
        if self._routing is not None:
            self._routing.invalidate()

    @property
    def task_dir(self) -> str:
        """``{work_dir}/{uid}``: where captured stdout/stderr files go (created on first use)."""
        if self._task_dir is None:
            path = os.path.join(self.work_dir, self.uid)
            os.makedirs(path, exist_ok=True)
            self._task_dir = path
        return self._task_dir

    async def start(self) -> Session:
        """Initialise every backend and call the session-start hooks (done by ``async with``)."""
        if self._closed:
            raise SessionError(f"session {self.uid} is closed")
        if self._started:
            return self
        self.loop = asyncio.get_running_loop()
        self._future_to_make = FutureToMake(self.loop)
        await start_backends(list(self.backends.values()), self.shutdown_timeout)
        if self.progress:
            from ..telemetry.plugin import observe
            from ..telemetry.progress import SessionProgress

            bar = SessionProgress(self.progress)
            if bar.enabled:
                observe(self, bar)
        self._bind_hooks()
        hook = self._host.pm.hook
        self._routing = RoutingTable(self, self.backends, hook.rhapsody_route_task)
        self._started = True
        hook.rhapsody_session_start(session=self)
        return self

    def _bind_hooks(self) -> None:
        """Bind the life-cycle hooks some plugin implements (the others cost nothing); called
        at start and when a plugin registered later wants this session's tasks."""
        hook = self._host.pm.hook

        def implemented(caller: Any) -> Any:
            return caller if caller.get_hookimpls() else None

        self._on_submitted = implemented(hook.rhapsody_task_submitted)
        self._on_state = implemented(hook.rhapsody_task_state_changed)
        self._on_finished = implemented(hook.rhapsody_task_finished)
        self._on_changes = implemented(hook.rhapsody_tasks_changed)
        if self._on_changes is None:
            self._changes = None
        elif self._changes is None:
            self._changes = []

    def _flush_changes(self) -> None:
        changes = self._changes
        if changes:
            states = self._change_states
            self._changes, self._change_states = [], []
            self._call_hook(self._on_changes, tasks=changes, states=states)

    # -- telemetry --------------------------------------------------------------------------------

    async def start_telemetry(
        self,
        resource_poll_interval: float = 5.0,
        checkpoint_interval: float | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        span_processors: Sequence[Any] | None = None,
        metric_readers: Sequence[Any] | None = None,
        resource: Any = None,
    ) -> TelemetryManager:
        """Record this session's events, metrics and spans (before submitting tasks).

        ``checkpoint_path``: a directory for ``{uid}.telemetry.jsonl`` (none: no file);
        ``checkpoint_interval``: seconds between metric snapshots in it; the backends' resources
        are sampled every ``resource_poll_interval`` seconds; ``span_processors`` /
        ``metric_readers`` / ``resource``: OpenTelemetry SDK objects of your own (exporters).
        Stops when the session closes. Needs ``pip install 'rhapsody-core[telemetry]'``.
        """
        from ..telemetry.starting import start_telemetry

        return await start_telemetry(
            self,
            resource_poll_interval=resource_poll_interval,
            checkpoint_interval=checkpoint_interval,
            checkpoint_path=checkpoint_path,
            span_processors=span_processors,
            metric_readers=metric_readers,
            resource=resource,
        )

    def get_telemetry(self) -> TelemetryManager:
        """The telemetry started by :meth:`start_telemetry` (``RuntimeError`` if none was)."""
        telemetry = self._telemetry
        if telemetry is None:
            raise RuntimeError(
                "Telemetry not started. Call `await session.start_telemetry()` first."
            )
        return telemetry

    async def __aenter__(self) -> Session:
        try:
            return await self.start()
        except BaseException:
            # ``async with`` leaves no handle on a session that failed to start: it closes
            # here, and the backends that did start shut down
            await self.close()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- submission -------------------------------------------------------------------------------

    async def submit_tasks(
        self, tasks: Iterable[BaseTask | Mapping[str, Any]]
    ) -> list[asyncio.Future[Any]]:
        """Route and submit ``tasks``; returns one future per task, in order.

        Plain dicts are converted to tasks (and get their ``uid`` written back). Every task is
        validated and routed before any is submitted: a bad task refuses the whole batch. Once
        the batch is accepted every task of it runs, even if the caller is canceled meanwhile.
        A future resolves to its task when DONE and raises the task's error when it FAILED or
        was CANCELED; tasks are awaitable the same way.
        """
        if self._closed:
            raise SessionError(f"session {self.uid} is closed")
        require_list(tasks, "a list of tasks (ComputeTask, AITask or dict)", "Session.submit_tasks")
        if not self._started:
            await self.start()
        batch: list[BaseTask] = []  # filled as uids are claimed
        try:
            await prepare(self, tasks, batch)
            groups = await route(self, batch)
            if self._closed:
                raise SessionError(f"session {self.uid} is closed")
        except BaseException:
            self._claimed.difference_update([t.uid for t in batch])
            if self._sources:
                for task in batch:
                    self._sources.pop(task, None)
            raise
        # Accepted: from here on the batch is registered and submitted as a whole, whatever
        # happens to the caller (a canceled caller must not leave half a batch behind).
        job = asyncio.ensure_future(register_and_submit(self, batch, groups))
        self._background.add(job)
        job.add_done_callback(self._background_done)
        return await asyncio.shield(job)

    # -- state machine (the backends' sink; runs on the event loop) -------------------------------

    def _transition(self, task: BaseTask, state: TaskState) -> bool:
        old = task.state
        if old is _DONE or old is _FAILED or old is _CANCELED:
            return False  # terminal states are final
        if state is _RUNNING:
            if old is _RUNNING:
                return False
            _set(task, "state", state)
            if task.started_at is None:
                _set(task, "started_at", _monotonic() + _WALL_OFFSET)
            if task.timeout is not None:
                self._start_timer(task)
            if self._sources:
                source = self._sources.get(task)
                if source is not None:
                    source["state"] = state.value
            if self._on_state is not None:
                self._call_hook(self._on_state, task=task, old_state=old, new_state=state)
            changes = self._changes
            if changes is not None:  # _changed, inlined: it runs twice per task
                if not changes and self.loop is not None:
                    self.loop.call_soon(self._flush_changes)
                changes.append(task)
                self._change_states.append(state)
            if self._watchers:
                self._notify_watchers(task, state)
            return True
        if state is not _DONE and state is not _FAILED and state is not _CANCELED:
            return False  # NEW/SUBMITTED come from the session only
        _set(task, "state", state)
        if task.ended_at is None:
            _set(task, "ended_at", _monotonic() + _WALL_OFFSET)
        if state is not _DONE and task.exception is None:
            if state is _FAILED:
                task.exception = TaskExecutionError(task.uid, task.stderr, task.exit_code)
            else:
                task.exception = TaskCanceledError(task.uid)
        fut = task._future
        if fut is not None:  # submitted through this session
            self._pending -= 1
            # a future not asked for yet is made resolved later (lazy_futures.py)
            if isinstance(fut, asyncio.Future):
                settle(fut, task)
        if self._waits.open:
            self._waits.ended(self.loop)  # type: ignore[arg-type]
        if self._timers:
            timer = self._timers.pop(task, None)
            if timer is not None:
                timer.cancel()
        if self._sources:
            source = self._sources.pop(task, None)
            if source is not None:
                write_back(task, source)
        if self._on_state is not None:
            self._call_hook(self._on_state, task=task, old_state=old, new_state=state)
        if self._on_finished is not None:
            self._call_hook(self._on_finished, task=task)
        changes = self._changes
        if changes is not None:
            if not changes and self.loop is not None:
                self.loop.call_soon(self._flush_changes)
            changes.append(task)
            self._change_states.append(state)
        if self._watchers:
            self._notify_watchers(task, state)
        return True

    # -- state callbacks of backends (rhapsody-py's register_callback) ---------------------------

    def _watch(self, backend: Backend) -> None:
        """Call ``backend``'s registered callbacks on its tasks' state changes from now on."""
        if backend.state_callbacks:
            self._watchers[backend.name] = backend.state_callbacks

    def _notify_watchers(self, task: BaseTask, state: TaskState) -> None:
        callbacks = self._watchers.get(task.backend or "")
        for callback in callbacks or ():
            try:
                callback(task, state)
            except Exception:  # a callback's bug must not lose a task's state
                log.exception("a state callback of backend %r raised", task.backend)

    def _call_hook(self, hook: Any, **kwargs: Any) -> None:
        try:
            hook(session=self, **kwargs)
        except Exception:  # a plugin's bug must not lose a task's state
            log.exception("a rhapsody plugin hook raised")

    def _start_timer(self, task: BaseTask) -> None:
        assert self.loop is not None and task.timeout is not None
        self._timers[task] = self.loop.call_later(task.timeout, self._expire, task)

    def _expire(self, task: BaseTask) -> None:
        self._timers.pop(task, None)
        if task.done:
            return
        assert task.timeout is not None
        task.exception = TaskTimeoutError(task.uid, task.timeout)
        self._transition(task, _FAILED)
        backend = self.backends.get(task.backend or "")
        if backend is not None:  # stop the work behind the task (kill its processes)
            self._spawn(backend.cancel_tasks([task]))

    def _spawn(self, coro: Any) -> None:
        fut = asyncio.ensure_future(coro)
        self._background.add(fut)
        fut.add_done_callback(self._background_done)

    def _background_done(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("background backend call failed: %s", fut.exception())

    # -- waiting and canceling --------------------------------------------------------------------

    async def wait_tasks(
        self, tasks: Iterable[BaseTask | Mapping[str, Any] | str], timeout: float | None = None
    ) -> list[Any]:
        """Wait until every task ended; never raises for a failed task.

        Raises :class:`asyncio.TimeoutError` when ``timeout`` seconds pass first (the tasks keep
        running). Returns, in order, each task as it was given: the task object, or the dict it
        was submitted as (updated with its state and results, as rhapsody-py returned it); the
        task object for a uid.
        """
        if isinstance(tasks, Iterable) and not isinstance(
            tasks, (list, tuple, BaseTask, Mapping, str, bytes)
        ):
            tasks = list(tasks)  # walked twice below
        found = look_up(self.tasks, self.uid, tasks)
        pending = [t for t in found if not t.done]
        if pending and not await self._waits.wait(pending, timeout):
            still = sum(not t.done for t in pending)
            raise TimeoutError(f"{still} of {len(found)} tasks had not finished after {timeout}s")
        return [
            # `item is task` first: the usual case, without an ABC isinstance per task
            task if item is task or not isinstance(item, MutableMapping) else item
            for item, task in zip(tasks, found, strict=True)
        ]

    async def cancel_tasks(self, tasks: Iterable[BaseTask | Mapping[str, Any] | str]) -> int:
        """Cancel tasks that have not ended; returns how many were canceled."""
        found = [t for t in look_up(self.tasks, self.uid, tasks) if not t.done]
        await self._cancel(found, "canceled by the user")
        return sum(1 for t in found if t.state is _CANCELED)

    async def _cancel(self, tasks: list[BaseTask], reason: str) -> None:
        groups: dict[str, list[BaseTask]] = {}
        for task in tasks:
            groups.setdefault(task.backend or "", []).append(task)
        for name, group in groups.items():
            backend = self.backends.get(name)
            if backend is not None:
                try:
                    await backend.cancel_tasks(group)
                except Exception as exc:  # noqa: BLE001
                    log.error("backend %r failed to cancel tasks: %s", name, exc)
            for task in group:  # whatever the backend did, the task ends CANCELED
                if not task.done:
                    task.exception = TaskCanceledError(task.uid, reason)
                    self._transition(task, _CANCELED)

    # -- shutdown ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """How many submitted tasks have not ended yet."""
        return self._pending

    async def close(self) -> None:
        """Shut down every backend; every task still running ends CANCELED. Idempotent.

        Each backend gets ``shutdown_timeout`` seconds (default 60) to stop; one that takes
        longer is logged and left, and its tasks end CANCELED all the same.
        """
        if self._closed:
            return
        self._closed = True
        await shut_down_backends(self.backends.values(), self.shutdown_timeout)
        for backend in self.backends.values():
            backend._closed = True
        self._cancel_unfinished(self.tasks.values(), "the session was closed")
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._background:
            await asyncio.wait(list(self._background), timeout=self.shutdown_timeout)
        # Tasks registered by a submission that was still running meanwhile.
        self._cancel_unfinished(self.tasks.values(), "the session was closed")
        if self._started:
            self._flush_changes()
            await await_closing_hooks(self._host.pm.hook, self, self.shutdown_timeout)
            self._host.pm.hook.rhapsody_session_close(session=self)

    def _cancel_unfinished(self, tasks: Iterable[BaseTask], reason: str) -> None:
        for task in list(tasks):
            if not task.done and task._future is not None:
                task.exception = TaskCanceledError(task.uid, reason)
                self._transition(task, _CANCELED)

    def __repr__(self) -> str:
        return f"Session(uid={self.uid!r}, backends={list(self.backends)}, tasks={len(self.tasks)})"
