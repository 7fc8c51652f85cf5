"""The rhapsody-py backend methods every RHAPSODY backend answers too.

rhapsody-py code (and workflow engines built on it, such as AsyncFlow) talks to a backend through
``register_callback``, ``get_task_states_map``, ``state()``, ``cancel_task(uid)`` and
``build_task``. :class:`~rhapsody.backends.Backend` inherits these from
:class:`RhapsodyPyBackendMethods`; none of them costs anything on the task path unless used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..api.errors import BackendError, TaskValidationError
from ..api.states import TaskState
from ..api.task import BaseTask, task_from_dict
from .states import BackendMainStates, BackendStateName, StateMapper

if TYPE_CHECKING:
    from ..api.session import Session

StateCallback = Callable[[BaseTask, TaskState], object]


class RhapsodyPyBackendMethods:
    """Mixed into :class:`~rhapsody.backends.Backend`."""

    # rhapsody-py's data-linking capabilities: RHAPSODY backends share a file system.
    supports_implicit_data_linking: bool = False
    supports_explicit_data_linking: bool = False

    name: str
    session: Session | None
    state_callbacks: list[StateCallback]
    _closed: bool
    _used: bool

    def register_callback(self, func: StateCallback) -> None:
        """Call ``func(task, state)`` on every state change (RUNNING, then DONE, FAILED or
        CANCELED) of this backend's tasks, in or out of a session.

        Several callbacks may be registered; each is called in order, on the event loop. A
        callback that raises is logged and does not affect the task.
        """
        if not callable(func):
            raise TaskValidationError(
                "func", "a callable taking (task, state)", func, owner="register_callback"
            )
        self.state_callbacks.append(func)
        if self.session is not None:
            self.session._watch(self)  # type: ignore[arg-type]

    def get_task_states_map(self) -> StateMapper:
        """The mapper of this backend's task states (RHAPSODY's: the identity)."""
        return StateMapper(self)

    def state(self) -> BackendStateName:
        """``"INITIALIZED"``, ``"RUNNING"`` (tasks were submitted) or ``"SHUTDOWN"``; a string
        that may also be awaited, as rhapsody-py's execution backends' ``state()`` was."""
        if self._closed:
            return BackendStateName(BackendMainStates.SHUTDOWN.value)
        if self._used:
            return BackendStateName(BackendMainStates.RUNNING.value)
        return BackendStateName(BackendMainStates.INITIALIZED.value)

    async def cancel_task(self, uid: str) -> bool:
        """Cancel this backend's task ``uid``; True when it was running and is now CANCELED."""
        session = self.session
        if session is None:
            raise BackendError(
                f"backend {self.name!r}: cancel_task(uid) finds tasks through the session the "
                "backend belongs to; outside a session use cancel_tasks([task])"
            )
        task = session.tasks.get(uid)
        if task is None or task.backend != self.name or task.done:
            return False
        return await session.cancel_tasks([task]) == 1

    def build_task(self, task: BaseTask | Mapping[str, Any], *_: Any, **__: Any) -> BaseTask:
        """The task (built from a dict if need be), checked as this backend would check it."""
        built = task if isinstance(task, BaseTask) else task_from_dict(task)
        self.check_tasks([built])
        return built

    def check_tasks(self, tasks: Any) -> None:  # pragma: no cover - Backend defines it
        raise NotImplementedError

    def task_state_cb(self, task: Any = None, state: Any = None) -> None:
        """rhapsody-py's internal state hook; RHAPSODY backends report through ``report``."""

    def link_implicit_data_deps(self, src_task: Any, dst_task: Any) -> None:
        """Nothing to link: RHAPSODY's backends share a file system between tasks."""

    def link_explicit_data_deps(
        self,
        src_task: Any = None,
        dst_task: Any = None,
        file_name: str | None = None,
        file_path: str | None = None,
    ) -> None:
        """Nothing to link: RHAPSODY's backends share a file system between tasks."""

    @property
    def is_attached(self) -> bool:
        """True while the backend belongs to a session."""
        return self.session is not None

    @property
    def attached_to(self) -> list[str]:
        """The uid of the session the backend belongs to (a list, as in rhapsody-py)."""
        return [self.session.uid] if self.session is not None else []
