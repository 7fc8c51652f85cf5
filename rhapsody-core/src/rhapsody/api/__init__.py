"""The task API: :class:`Session`, :class:`ComputeTask`, :class:`AITask`, states and errors."""

from .errors import (
    BackendConfigurationError,
    BackendError,
    ResourceError,
    RhapsodyError,
    SessionError,
    TaskCanceledError,
    TaskExecutionError,
    TaskTimeoutError,
    TaskValidationError,
)
from .session import Session
from .states import TERMINAL_STATES, TaskState
from .task import AITask, BaseTask, ComputeTask, task_from_dict

__all__ = [
    "TERMINAL_STATES",
    "AITask",
    "BackendConfigurationError",
    "BackendError",
    "BaseTask",
    "ComputeTask",
    "ResourceError",
    "RhapsodyError",
    "Session",
    "SessionError",
    "TaskCanceledError",
    "TaskExecutionError",
    "TaskState",
    "TaskTimeoutError",
    "TaskValidationError",
    "task_from_dict",
]
