"""Per-thread redirection of ``sys.stdout``/``sys.stderr`` for function tasks with capture_stdio.

``contextlib.redirect_stdout`` is process-wide, so two threads would capture each other's output;
this routes writes by thread instead.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

_local = threading.local()


class _ThreadRoutedStream:
    """Writes go to this thread's capture file when one is set, else to the original stream."""

    def __init__(self, name: str, fallback: IO[str]) -> None:
        self._name = name
        self._fallback = fallback

    def _target(self) -> IO[str]:
        return getattr(_local, self._name, None) or self._fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._fallback, attr)


def _install(name: str) -> None:
    current = getattr(sys, name)
    if not isinstance(current, _ThreadRoutedStream):
        setattr(sys, name, _ThreadRoutedStream(name, current))


@contextlib.contextmanager
def captured(stdout_path: str, stderr_path: str) -> Iterator[None]:
    """Send this thread's ``print`` output to the two files while the block runs."""
    _install("stdout")
    _install("stderr")
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        _local.stdout, _local.stderr = out, err
        try:
            yield
        finally:
            _local.stdout = _local.stderr = None
