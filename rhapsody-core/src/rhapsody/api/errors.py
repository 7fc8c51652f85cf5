"""The exception hierarchy: every error RHAPSODY raises derives from :class:`RhapsodyError`."""

from __future__ import annotations

from typing import Any


class RhapsodyError(Exception):
    """Root of every error raised by RHAPSODY."""


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
        tail = (stderr or "").strip()[-2000:]
        super().__init__(f"task {uid} {detail}" + (f"; stderr:\n{tail}" if tail else ""))


class TaskTimeoutError(RhapsodyError, TimeoutError):
    """A task ran longer than its ``timeout``; its work was stopped and the task FAILED."""

    def __init__(self, uid: str, timeout: float) -> None:
        self.uid, self.timeout = uid, timeout
        super().__init__(f"task {uid} exceeded its timeout of {timeout}s")


class TaskCanceledError(RhapsodyError):
    """Raised when awaiting a task that ended CANCELED (by the user or a session shutdown)."""

    def __init__(self, uid: str, reason: str = "canceled") -> None:
        self.uid, self.reason = uid, reason
        super().__init__(f"task {uid} was canceled: {reason}")


class SessionError(RhapsodyError):
    """The session was used wrongly: unknown backend, duplicate uid, use after close..."""


class ResourceError(RhapsodyError):
    """A task asked for resources that its backend can never provide."""


__all__ = [
    "BackendConfigurationError",
    "BackendError",
    "ResourceError",
    "RhapsodyError",
    "SessionError",
    "TaskCanceledError",
    "TaskExecutionError",
    "TaskTimeoutError",
    "TaskValidationError",
]
