"""Plain-text tables and a progress bar for the command line (no dependency)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned text table."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class ProgressBar:
    """A one-line progress bar with rate and ETA, drawn only when ``stream`` is a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.counts: dict[str, int] = {}
        self._done = 0
        self._started = time.monotonic()
        self._last_draw = 0.0

    def update(self, state: str) -> None:
        self._done += 1
        self.counts[state] = self.counts.get(state, 0) + 1
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.05 or self._done == self.total):
            self._last_draw = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The bar as drawn: ``[###---] 12/40 done 11 failed 1  35.2/s  ETA 0.8s``."""
        elapsed = max((now if now is not None else time.monotonic()) - self._started, 1e-9)
        filled = int(self.width * self._done / max(self.total, 1))
        detail = " ".join(f"{k.lower()} {v}" for k, v in sorted(self.counts.items()))
        rate = self._done / elapsed
        left = self.total - self._done
        eta = (
            f"ETA {format_seconds(left / rate)}"
            if left and rate > 0
            else f"in {format_seconds(elapsed)}"
        )
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {self._done}/{self.total} {detail}  {rate:.1f}/s  {eta}"

    def close(self) -> None:
        if self.enabled:
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
