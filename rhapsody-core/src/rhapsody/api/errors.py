"""The exception hierarchy: every error RHAPSODY raises derives from :class:`RhapsodyError`."""

from __future__ import annotations

from typing import Any


def task_label(uid: object) -> str:
    """How messages name a task: ``task.000202`` as is, ``sim-3`` as ``task 'sim-3'``."""
    return uid if isinstance(uid, str) and uid.startswith("task") else f"task {uid!r}"


def stderr_excerpt(stderr: str | None, limit: int = 2000) -> str:
    """``"; stderr: oops"`` for one line, the lines indented below for several, ``""`` for none."""
    text = (stderr or "").strip()[-limit:]
    if not text:
        return ""
    if "\n" not in text:
        return f"; stderr: {text}"
    return "; stderr:\n" + "\n".join(f"  {line}" for line in text.splitlines())


class RhapsodyError(Exception):
    """Root of every error raised by RHAPSODY.

    Every RHAPSODY error pickles (to travel between processes, or in a checkpointed task).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors whose __init__ takes other arguments than their message are rebuilt from
        # their attributes, not by calling __init__ with the message.
        return (_rebuild_error, (type(self), self.args, dict(vars(self))))


def _rebuild_error(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    vars(error).update(state)
    return error


class BackendError(RhapsodyError):
    """A backend failed: it could not start, lost a worker, or was used wrongly."""


class BackendConfigurationError(BackendError, TypeError, ValueError):
    """A backend was constructed with an invalid argument (raised before anything starts)."""

    def __init__(self, backend: str, field: str, expected: str, got: Any) -> None:
        self.backend, self.field, self.expected, self.got = backend, field, expected, got
        super().__init__(f"{backend}.{field}: expected {expected}, got {got!r}")


class TaskValidationError(RhapsodyError, TypeError, ValueError):
    """A task description is invalid; raised at construction or submission, before anything runs.

    ``field`` names the offending field, ``expected`` what was expected and ``got`` the value.
    """

    def __init__(self, field: str, expected: str, got: Any, *, owner: str = "task") -> None:
        self.field, self.expected, self.got = field, expected, got
        super().__init__(f"{owner}.{field}: expected {expected}, got {got!r}")


class TaskExecutionError(RhapsodyError):
    """An executable task exited unsuccessfully (or could not be started)."""

    def __init__(
        self, uid: str, stderr: str | None, exit_code: int | None, message: str = ""
    ) -> None:
        self.uid, self.stderr, self.exit_code = uid, stderr, exit_code
        detail = message or f"exited with code {exit_code}"
        super().__init__(f"{task_label(uid)} {detail}{stderr_excerpt(stderr)}")


class TaskTimeoutError(RhapsodyError, TimeoutError):
    """A task ran longer than its ``timeout``; its work was stopped and the task FAILED."""

    def __init__(self, uid: str, timeout: float) -> None:
        self.uid, self.timeout = uid, timeout
        super().__init__(f"{task_label(uid)} exceeded its timeout of {timeout}s")


class TaskCanceledError(RhapsodyError):
    """Raised when awaiting a task that ended CANCELED (by the user or a session shutdown)."""

    def __init__(self, uid: str, reason: str = "canceled") -> None:
        self.uid, self.reason = uid, reason
        super().__init__(f"{task_label(uid)} was canceled: {reason}")


class SessionError(RhapsodyError):
    """The session was used wrongly: unknown backend, duplicate uid, use after close..."""


class TaskNotSubmittedError(SessionError, RuntimeError):
    """A task was awaited before it was submitted (a ``RuntimeError``, as in rhapsody-py)."""


class ResourceError(RhapsodyError):
    """A task asked for resources that its backend can never provide."""


class RemoteTaskError(RuntimeError):
    """A task's exception that could not travel back as itself (it does not pickle)."""

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.traceback_text = type_name, message, traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text))


__all__ = [
    "BackendConfigurationError",
    "BackendError",
    "RemoteTaskError",
    "ResourceError",
    "RhapsodyError",
    "SessionError",
    "TaskCanceledError",
    "TaskExecutionError",
    "TaskNotSubmittedError",
    "TaskTimeoutError",
    "TaskValidationError",
]
