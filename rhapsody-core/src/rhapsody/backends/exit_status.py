"""The one wording of how a process ended, used by every backend's error messages."""

from __future__ import annotations

import signal


def describe_exit(code: int | None) -> str:
    """``"exited with code 3"``, ``"was killed by signal 9 (SIGKILL)"``, or, without a code,
    ``"ended without an exit code"``. Negative codes are signals, as ``subprocess`` reports them."""
    if code is None:
        return "ended without an exit code"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"was killed by signal {-code}"
        return f"was killed by signal {-code} ({name})"
    return f"exited with code {code}"


def os_error_text(exc: OSError) -> str:
    """``"No such file or directory (errno 2)"``: an OSError without the file name that the
    message around it already gives."""
    if exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})" if exc.errno else exc.strerror
    return str(exc)
