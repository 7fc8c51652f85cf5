"""rhapsody-py's state vocabulary: ``TasksMainStates``, ``BackendMainStates``, ``StateMapper``.

RHAPSODY's own :class:`~rhapsody.api.TaskState` values are the same strings, so a RHAPSODY
backend's mapper is the identity; a rhapsody-py backend registers its own (its terminal states
may be spelled differently), which the adapter uses to read its callbacks.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar


class TasksMainStates(Enum):
    """The task states every rhapsody-py backend maps its own states onto."""

    DONE = "DONE"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    RUNNING = "RUNNING"


class BackendMainStates(Enum):
    """A backend's life: created, running tasks, shut down."""

    INITIALIZED = "INITIALIZED"
    RUNNING = "RUNNING"
    SHUTDOWN = "SHUTDOWN"


def _key(backend: Any) -> str:
    if isinstance(backend, str):
        return backend.lower()
    name = getattr(backend, "__name__", None) or type(backend).__name__
    return str(name).lower()


_DEFAULT_TASK_STATES: dict[TasksMainStates, Any] = {s: s.value for s in TasksMainStates}


class StateMapper:
    """Maps a backend's own task-state values to :class:`TasksMainStates` and back.

    ``StateMapper.register_backend_tasks_states(backend, done_state=..., ...)`` registers a
    backend's spelling (keyed by name, or by the class name of an object);
    ``StateMapper(backend)`` reads it. Backends that never registered get the identity mapping
    (RHAPSODY's own backends).
    """

    _backend_registry: ClassVar[dict[str, dict[Any, Any]]] = {}

    def __init__(self, backend: Any) -> None:
        self.backend_name = _key(backend)
        self.backend_module = None if isinstance(backend, str) else backend
        self._state_map = self._backend_registry.get(self.backend_name, _DEFAULT_TASK_STATES)
        self._reverse_map = {value: main for main, value in self._state_map.items()}

    @classmethod
    def register_backend_tasks_states(
        cls,
        backend: Any,
        done_state: Any,
        failed_state: Any,
        canceled_state: Any,
        running_state: Any,
        **additional_states: Any,
    ) -> None:
        """Register how ``backend`` spells DONE, FAILED, CANCELED and RUNNING."""
        cls._backend_registry[_key(backend)] = {
            TasksMainStates.DONE: done_state,
            TasksMainStates.FAILED: failed_state,
            TasksMainStates.CANCELED: canceled_state,
            TasksMainStates.RUNNING: running_state,
            **{TasksMainStates[k.upper()]: v for k, v in additional_states.items()},
        }

    @classmethod
    def register_backend_tasks_states_with_defaults(cls, backend: Any) -> None:
        """Register ``backend`` as spelling the states like :class:`TasksMainStates`."""
        cls._backend_registry[_key(backend)] = dict(_DEFAULT_TASK_STATES)

    @classmethod
    def register_backend_states(
        cls,
        backend: Any,
        initialized_state: Any,
        running_state: Any,
        shutdown_state: Any,
        **additional_states: Any,
    ) -> None:
        """Register how ``backend`` spells its own life-cycle states."""
        cls._backend_registry[f"{_key(backend)}_backend_states"] = {
            BackendMainStates.INITIALIZED: initialized_state,
            BackendMainStates.RUNNING: running_state,
            BackendMainStates.SHUTDOWN: shutdown_state,
            **{BackendMainStates[k.upper()]: v for k, v in additional_states.items()},
        }

    @classmethod
    def register_backend_states_with_defaults(cls, backend: Any) -> None:
        cls.register_backend_states(backend, "INITIALIZED", "RUNNING", "SHUTDOWN")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._state_map[TasksMainStates[name]]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} has no state {name!r}") from None

    def to_main_state(self, backend_state: Any) -> TasksMainStates:
        """The :class:`TasksMainStates` member a backend state value stands for."""
        try:
            main: TasksMainStates = self._reverse_map[backend_state]
        except (KeyError, TypeError):
            raise ValueError(f"unknown backend state: {backend_state!r}") from None
        return main

    def get_backend_state(self, main_state: TasksMainStates | str) -> Any:
        if isinstance(main_state, str):
            main_state = TasksMainStates[main_state]
        return self._state_map[main_state]

    @property
    def terminal_states(self) -> tuple[Any, ...]:
        """The backend's values for DONE, FAILED and CANCELED."""
        return (self.DONE, self.FAILED, self.CANCELED)


class BackendStateName(str):
    """A backend's life-cycle state (``"RUNNING"``...), usable both ways rhapsody-py code reads
    it: ``backend.state() == "RUNNING"`` (vLLM backends) and ``await backend.state()``
    (execution backends)."""

    __slots__ = ()

    def __await__(self) -> Any:
        if False:  # pragma: no cover - makes this a generator: awaiting completes at once
            yield
        return str(self)
