"""``Session(progress=True)``: a live bar of done / failed / running tasks, rate and ETA.

Drawn on stderr when it is a terminal, as an updating widget in Jupyter, and not at all
otherwise (library use, logs, CI) unless ``progress="always"``, which prints a plain line at
most once a second. It observes the session like telemetry does (``rhapsody_tasks_changed``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..api.states import TaskState

if TYPE_CHECKING:
    from ..api.task import BaseTask

MODES = (True, False, "always")
_RUNNING, _SUBMITTED = TaskState.RUNNING, TaskState.SUBMITTED


def in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class SessionProgress:
    """Counts the session's tasks by state and redraws at most ``every`` seconds."""

    def __init__(self, mode: bool | str = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.counts = {"submitted": 0, "running": 0, "done": 0, "failed": 0, "canceled": 0}
        self._started = time.monotonic()
        self._last = 0.0
        self._jupyter: Any = None
        isatty = getattr(self.stream, "isatty", lambda: False)()
        if mode == "always":
            self.style = "tty" if isatty else "lines"
        elif isatty:
            self.style = "tty"
        elif in_jupyter():
            self.style = "jupyter"
        else:
            self.style = "off"
        self.every = 1.0 if self.style == "lines" else 0.1

    @property
    def enabled(self) -> bool:
        return self.style != "off"

    def on_changes(self, tasks: Sequence[BaseTask], states: Sequence[TaskState]) -> None:
        counts = self.counts
        for state in states:
            if state is _SUBMITTED:
                counts["submitted"] += 1
            elif state is _RUNNING:
                counts["running"] += 1
            else:
                counts[state.value.lower()] += 1
        now = time.monotonic()
        if self.style != "off" and now - self._last >= self.every:
            self._last = now
            self.draw(now)

    def line(self, now: float | None = None, width: int = 30) -> str:
        c = self.counts
        ended = c["done"] + c["failed"] + c["canceled"]
        total = c["submitted"]
        running = max(c["running"] - ended, 0)  # started and not ended (most ended tasks ran)
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        rate = ended / elapsed
        filled = int(width * ended / total) if total else 0
        left = total - ended
        eta = (
            f"ETA {format_seconds(left / rate)}"
            if left and rate > 0
            else f"in {format_seconds(elapsed)}"
        )
        return (
            f"[{'#' * filled}{'-' * (width - filled)}] {ended}/{total} done {c['done']} "
            f"failed {c['failed']} canceled {c['canceled']} running {running}  "
            f"{rate:.1f}/s  {eta}"
        )

    def draw(self, now: float | None = None) -> None:
        text = self.line(now)
        if self.style == "tty":
            self.stream.write("\r" + text)
            self.stream.flush()
        elif self.style == "lines":
            self.stream.write(text + "\n")
            self.stream.flush()
        elif self.style == "jupyter":
            from IPython.display import display  # type: ignore[import-not-found]

            if self._jupyter is None:
                self._jupyter = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self._jupyter.update({"text/plain": text}, raw=True)

    async def stop(self, timeout: float = 60.0) -> None:
        if self.style == "off":
            return
        self.draw()
        if self.style == "tty":
            self.stream.write("\n")
            self.stream.flush()


def format_seconds(seconds: float) -> str:
    """``0.8s``, ``42s``, ``3m05s``, ``2h01m``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
