"""Backends written for rhapsody-py 0.6, run inside a RHAPSODY session.

:class:`BaseBackend` is rhapsody-py's backend contract, for plugin authors who subclass it:
``submit_tasks(list[dict])`` runs task dicts, and the backend calls the function given to
``register_callback`` with ``(task_dict, state)`` as they progress; ``get_task_states_map()``
says how it spells the states; ``cancel_task(uid)``, ``shutdown()``, ``state()``.

:class:`LegacyBackendAdapter` is the one adapter that makes such a backend a RHAPSODY
:class:`~rhapsody.backends.Backend`: the session hands it tasks, it hands the legacy backend
dicts, and it turns the callbacks back into reports. Every guarantee of the session holds for
these tasks as for any other: exactly one terminal state (a late or repeated callback is
ignored), ``timeout`` (the adapter calls the backend's ``cancel_task``), and ``close()``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..api.errors import BackendError, task_label
from ..api.states import TaskState
from ..api.task import AITask, BaseTask, ComputeTask
from ..backends.base import Backend, StateSink
from .states import StateMapper, TasksMainStates

if TYPE_CHECKING:
    from ..api.session import Session

log = logging.getLogger(__name__)

_RESULT_KEYS = ("stdout", "stderr", "exit_code", "return_value", "exception", "response")
_BY_MAIN = {main: TaskState(main.value) for main in TasksMainStates}
_BY_NAME = {state.value: state for state in TaskState}


class BaseBackend(abc.ABC):
    """rhapsody-py 0.6's backend base class: subclass it to write a backend the rhapsody-py way.

    RHAPSODY runs such a backend through :class:`LegacyBackendAdapter` (a session does it by
    itself when given one). New backends should derive from
    :class:`~rhapsody.backends.ExecutionBackend` instead (docs/writing-a-backend-plugin.md).
    """

    supports_implicit_data_linking: bool = False
    supports_explicit_data_linking: bool = False

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._work_dir: str = os.getcwd()
        self.is_attached: bool = False
        self.attached_to: list[str] = []
        self._callback_func: Callable[[Any, str], None] = lambda task, state: None

    @property
    def name(self) -> str:
        return self._name or type(self).__name__

    def register_callback(self, func: Callable[[Any, str], None]) -> None:
        """Remember the function to call with ``(task, state)`` on every state change."""
        self._callback_func = func

    @abc.abstractmethod
    async def submit_tasks(self, tasks: list[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    async def shutdown(self) -> None: ...

    @abc.abstractmethod
    def state(self) -> Any: ...

    @abc.abstractmethod
    def task_state_cb(self, task: dict[str, Any], state: str) -> None: ...

    @abc.abstractmethod
    def get_task_states_map(self) -> Any: ...

    @abc.abstractmethod
    def build_task(self, task: dict[str, Any]) -> Any: ...

    @abc.abstractmethod
    async def cancel_task(self, uid: str) -> bool: ...

    def link_implicit_data_deps(self, src_task: Any, dst_task: Any) -> None:  # noqa: B027
        """Only called on backends that set ``supports_implicit_data_linking``."""

    def link_explicit_data_deps(  # noqa: B027
        self,
        src_task: Any = None,
        dst_task: Any = None,
        file_name: str | None = None,
        file_path: str | None = None,
    ) -> Any:
        """Only called on backends that set ``supports_explicit_data_linking``."""


def is_legacy_backend(obj: Any) -> bool:
    """Whether ``obj`` (an instance or a class) follows rhapsody-py's backend contract."""
    return not (
        isinstance(obj, Backend) or (isinstance(obj, type) and issubclass(obj, Backend))
    ) and all(callable(getattr(obj, m, None)) for m in ("submit_tasks", "register_callback"))


def legacy_kind(cls: type) -> str:
    """``"inference"`` for a rhapsody-py inference backend, else ``"execution"``."""
    kind = getattr(cls, "kind", None)
    if kind in ("execution", "inference"):
        return str(kind)
    inference = "Inference" in cls.__name__ or ".ai." in f"{cls.__module__}."
    return "inference" if inference else "execution"


class LegacyBackendAdapter(Backend):
    """Runs a rhapsody-py backend (``legacy``) as a RHAPSODY backend.

    Attributes the adapter does not have are looked up on the legacy backend, so its own
    methods stay reachable (``adapter.some_method()``). ``adapter.legacy`` is the backend itself.
    """

    default_name = "legacy"

    def __init__(self, legacy: Any) -> None:
        if not is_legacy_backend(legacy):
            raise BackendError(
                f"expected a backend following rhapsody-py's contract (submit_tasks, "
                f"register_callback...), got {legacy!r}"
            )
        self.legacy = legacy
        super().__init__(str(getattr(legacy, "name", None) or type(legacy).__name__))
        self.kind = legacy_kind(type(legacy))  # type: ignore[misc]
        self.task_types = (AITask,) if self.kind == "inference" else (ComputeTask,)  # type: ignore[misc]
        self._running: dict[str, BaseTask] = {}
        self._mapper: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "legacy":
            raise AttributeError(name)
        return getattr(self.__dict__["legacy"], name)

    def _attach(self, session: Session, sink: StateSink) -> None:
        super()._attach(session, sink)
        legacy = self.legacy
        # rhapsody-py gives an attached backend the session's directory for its output files.
        if hasattr(legacy, "_work_dir"):
            legacy._work_dir = session.task_dir
        if isinstance(getattr(legacy, "attached_to", None), list):
            legacy.attached_to.append(session.uid)
            legacy.is_attached = True

    async def initialize(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        legacy = self.legacy
        if hasattr(type(legacy), "__await__"):
            await legacy  # rhapsody-py backends start up when awaited
        legacy.register_callback(self._on_legacy_state)
        try:
            self._mapper = legacy.get_task_states_map()
        except Exception as exc:  # noqa: BLE001 - no mapper: it spells states like RHAPSODY
            log.debug("backend %r has no task state map (%s); using RHAPSODY's", self.name, exc)
            self._mapper = StateMapper("rhapsody")

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        if self._loop is None:
            await self._ensure_initialized()
        dicts = []
        for task in tasks:
            described = task.to_dict(json_safe=False)
            described["task_type"] = type(task).__name__
            described["state"] = None
            self._running[task.uid] = task
            dicts.append(described)
        try:
            await self.legacy.submit_tasks(dicts)
        except BaseException:
            for task in tasks:
                self._running.pop(task.uid, None)
            raise

    def _on_legacy_state(self, described: Any, state: Any) -> None:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # Results as they are now: the backend's thread may go on writing into the dict.
            snapshot = dict(described) if isinstance(described, dict) else described
            loop.call_soon_threadsafe(self._on_legacy_state, snapshot, state)
            return
        try:
            uid = described["uid"]
        except (KeyError, TypeError):
            log.warning("backend %r reported a state for a task without uid: %r", self.name, state)
            return
        task = self._running.get(uid)
        if task is None:
            return  # ended already (or not ours): the session keeps the first terminal state
        new = self._main_state(state)
        if new is None:
            return  # a state of its own (PENDING...): nothing RHAPSODY tracks
        if new is TaskState.RUNNING:
            self.report(task, new)
            return
        del self._running[uid]
        try:
            for key in _RESULT_KEYS:
                if key in described and hasattr(task, key):
                    setattr(task, key, described[key])
            if new is TaskState.DONE and (
                task.exception is not None or task.exit_code not in (None, 0)
            ):
                new = TaskState.FAILED  # rhapsody-py failed such tasks too
            self.report(task, new)
        except Exception as exc:  # noqa: BLE001 - its results are odd: FAILED, not lost
            if not task.done:
                task.exception = BackendError(
                    f"{task_label(uid)}: backend {self.name!r} reported {state!r} with results "
                    f"that could not be taken: {type(exc).__name__}: {exc}"
                )
                self.report(task, TaskState.FAILED)

    def _main_state(self, state: Any) -> TaskState | None:
        if isinstance(state, TaskState):
            return state
        try:
            return _BY_MAIN[self._mapper.to_main_state(state)]
        except Exception:  # noqa: BLE001 - not in its map: maybe spelled like ours
            value = getattr(state, "value", state)
            return _BY_NAME.get(value) if isinstance(value, str) else None

    def state(self) -> Any:
        """The legacy backend's own ``state()`` (a string, or a coroutine of one)."""
        return self.legacy.state()

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            if self._running.pop(task.uid, None) is None:
                continue
            try:
                await self.legacy.cancel_task(task.uid)
            except Exception as exc:  # noqa: BLE001 - the session cancels the task regardless
                log.warning("backend %r could not cancel %s: %s", self.name, task.uid, exc)

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._running.clear()
        await self.legacy.shutdown()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.legacy!r})"


def adapter_class(legacy_cls: type) -> type[LegacyBackendAdapter]:
    """A :class:`LegacyBackendAdapter` subclass that builds ``legacy_cls(*args, **kwargs)``:
    what the registry holds for a rhapsody-py backend class."""

    def __init__(self: LegacyBackendAdapter, *args: Any, **kwargs: Any) -> None:
        LegacyBackendAdapter.__init__(self, legacy_cls(*args, **kwargs))

    return type(
        legacy_cls.__name__,
        (LegacyBackendAdapter,),
        {
            "__init__": __init__,
            "__doc__": legacy_cls.__doc__,
            "__module__": legacy_cls.__module__,
            "legacy_class": legacy_cls,
            "kind": legacy_kind(legacy_cls),
            "task_types": (AITask,) if legacy_kind(legacy_cls) == "inference" else (ComputeTask,),
        },
    )
