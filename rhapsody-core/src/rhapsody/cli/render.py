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
    """A one-line progress bar, drawn only when ``stream`` is a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.counts: dict[str, int] = {}
        self._done = 0
        self._last_draw = 0.0

    def update(self, state: str) -> None:
        self._done += 1
        self.counts[state] = self.counts.get(state, 0) + 1
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.05 or self._done == self.total):
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        filled = int(self.width * self._done / max(self.total, 1))
        detail = " ".join(f"{k.lower()} {v}" for k, v in sorted(self.counts.items()))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self._done}/{self.total} {detail}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
