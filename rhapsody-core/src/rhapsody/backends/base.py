"""Base classes every backend derives from, built-in or third-party.

The contract, in short (see docs/writing-a-backend-plugin.md):

* construction takes only configuration and never blocks; ``await backend`` (or
  ``async with backend``) runs :meth:`Backend.initialize` once;
* :meth:`Backend.check_tasks` rejects tasks the backend can never run, before anything runs;
* :meth:`Backend.submit_tasks` starts the tasks; the backend writes results on each task and calls
  :meth:`Backend.report` with RUNNING, then exactly one of DONE / FAILED / CANCELED;
* :meth:`Backend.cancel_tasks` stops work and :meth:`Backend.shutdown` releases everything.

``report`` must be called on the event loop thread; use :meth:`Backend.report_threadsafe` from
other threads.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..api.errors import BackendConfigurationError, ResourceError, task_label
from ..api.states import TERMINAL_STATES, TaskState
from ..api.task import AITask, BaseTask, ComputeTask
from ..api.task_fields import EMPTY_MAPPING
from ..compat.backend_methods import RhapsodyPyBackendMethods, StateCallback
from ..resources.fit import check_request
from ..resources.inventory import NodeResources
from ..resources.request import ResourceRequest

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..api.session import Session

StateSink = Callable[[BaseTask, TaskState], bool]


class Backend(RhapsodyPyBackendMethods, abc.ABC):
    """A place where tasks run. Subclass :class:`ExecutionBackend` or :class:`InferenceBackend`.

    Every backend also answers rhapsody-py's backend methods (``register_callback``,
    ``state()``, ``cancel_task(uid)``...; see :mod:`rhapsody.compat.backend_methods`).
    """

    kind: ClassVar[str]
    task_types: ClassVar[tuple[type[BaseTask], ...]]
    default_name: ClassVar[str] = "backend"
    #: Whether the ranks of one job may run on several nodes (else one node holds them all).
    ranks_span_nodes: ClassVar[bool] = False

    def __init__(self, name: str | None = None) -> None:
        if name is None:
            name = self.default_name
        if type(name) is not str or not name:
            raise BackendConfigurationError(type(self).__name__, "name", "a non-empty string", name)
        self.name = name
        self.session: Session | None = None
        self._sink: StateSink = self._report_detached
        self.state_callbacks: list[StateCallback] = []
        self._used = False  # tasks were submitted (for state())
        self._initialized = False
        self._init_task: asyncio.Future[None] | None = None
        self._closed = False

    # -- initialisation ---------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        return self._ensure_initialized().__await__()

    async def _ensure_initialized(self) -> Backend:
        if not self._initialized:
            if self._init_task is None:
                self._init_task = asyncio.ensure_future(self.initialize())
            try:
                await asyncio.shield(self._init_task)
            except BaseException:
                self._init_task = None  # let a later await try again
                raise
            self._initialized = True
        return self

    @property
    def initialized(self) -> bool:
        """True once :meth:`initialize` completed."""
        return self._initialized

    async def initialize(self) -> None:
        """Start whatever the backend needs (pools, clusters, servers). Runs once."""

    async def cancel_initialize(self) -> None:
        """Stop an :meth:`initialize` that is still running (for a shutdown during start-up);
        returns once it has ended. Nothing happens when none is running."""
        starting = self._init_task
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)

    async def __aenter__(self) -> Backend:
        return await self._ensure_initialized()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()
        self._closed = True

    # -- the task contract ------------------------------------------------------------------------

    def accepts(self, task: BaseTask) -> bool:
        """Whether this backend can run this kind of task (used by routing)."""
        return isinstance(task, self.task_types)

    def check_tasks(self, tasks: Sequence[BaseTask]) -> None:
        """Raise :class:`~rhapsody.api.TaskValidationError` for a task this backend cannot run.

        Called for a whole batch before any task of it is submitted; by default it passes each
        task that has ``task_backend_specific_kwargs`` to :meth:`check_options` and each task
        with a resource request to :meth:`check_resources`.
        """
        check = self.check_options
        # Tasks asking alike (the same interned request object) and of the same kind fit
        # alike: checked once per batch. The dict keeps each request alive, so ids stay unique.
        checked: dict[tuple[int, bool], ResourceRequest] = {}
        for task in tasks:
            options = task.task_backend_specific_kwargs
            if options is not EMPTY_MAPPING and options:  # identity first: no __len__ call
                check(task)
                request = task.resources
                if request is not None:
                    self.check_resources(task, request)  # may depend on the options
                continue
            request = task.resources
            if request is not None:
                key = (id(request), getattr(task, "function", None) is None)
                if key not in checked:
                    self.check_resources(task, request)
                    checked[key] = request

    def check_options(self, task: BaseTask) -> None:
        """Reject ``task_backend_specific_kwargs`` this backend does not understand."""

    def resource_nodes(self) -> Sequence[NodeResources] | None:
        """What each node of this backend offers tasks (after :meth:`initialize`), or None when
        the backend does not honour resource requests (tasks with one are then refused)."""
        return None

    def check_resources(self, task: BaseTask, request: ResourceRequest) -> None:
        """Raise :class:`~rhapsody.api.ResourceError` when ``request`` can never run here.

        By default: refused when :meth:`resource_nodes` is None, or when no node (or, with
        :attr:`ranks_span_nodes`, no set of nodes) can ever hold the job. Override to refuse
        more (call this one too).
        """
        nodes = self.resource_nodes()
        if nodes is None:
            raise ResourceError(
                f"{task_label(task.uid)} asks for {request.describe()}, but backend "
                f"{self.name!r} ({type(self).__name__}) does not honour resource requests: "
                "submit it to one that does (concurrent, dask, dragon) or leave ranks, "
                "cores_per_rank, gpus_per_rank and mem_per_rank unset"
            )
        check_request(self.name, task.uid, request, nodes, spans_nodes=self.ranks_span_nodes)

    @abc.abstractmethod
    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        """Start running ``tasks``; report their states as they progress."""

    @abc.abstractmethod
    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        """Stop ``tasks`` (kill their processes) and report CANCELED for those not yet finished."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop every task and release every resource. Idempotent."""

    # -- reporting --------------------------------------------------------------------------------

    def report(self, task: BaseTask, state: TaskState) -> bool:
        """Record a state change of ``task``; returns False when the task already ended.

        Once the backend belongs to a session this is the session's own state-machine entry
        point (no extra call on the hot path), unless a subclass overrides it.
        """
        return self._sink(task, state)

    def _report_detached(self, task: BaseTask, state: TaskState) -> bool:
        # A backend used outside a session still records states (terminal ones are final) and
        # calls its registered callbacks.
        if task.state in TERMINAL_STATES or task.state is state:
            return False
        task.state = state
        for callback in self.state_callbacks:
            try:
                callback(task, state)
            except Exception:  # a callback's bug must not lose this change for the others
                log.exception("a state callback of backend %r raised", self.name)
        return True

    def report_threadsafe(self, task: BaseTask, state: TaskState) -> None:
        """:meth:`report` from a thread other than the event loop's."""
        session = self.session
        if session is None or session.loop is None:
            raise RuntimeError(f"backend {self.name!r} is not attached to a running session")
        session.loop.call_soon_threadsafe(self.report, task, state)

    def _attach(self, session: Session, sink: StateSink) -> None:
        self.session, self._sink = session, sink
        if type(self).report is Backend.report:
            self.report = sink  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ExecutionBackend(Backend):
    """A backend that runs :class:`~rhapsody.api.ComputeTask` (executables and functions)."""

    kind: ClassVar[str] = "execution"
    task_types: ClassVar[tuple[type[BaseTask], ...]] = (ComputeTask,)


class InferenceBackend(Backend):
    """A backend that answers :class:`~rhapsody.api.AITask` (LLM inference requests)."""

    kind: ClassVar[str] = "inference"
    task_types: ClassVar[tuple[type[BaseTask], ...]] = (AITask,)


def __getattr__(name: str) -> Any:
    # rhapsody-py plugins import their base class from here: `from rhapsody.backends.base
    # import BaseBackend` (imported on first use: it builds on this module).
    if name == "BaseBackend":
        from ..compat.legacy_backend import BaseBackend

        return BaseBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
