"""The one clock task times are read from: wall-clock seconds (``time.time()`` scale) taken from
the monotonic clock, so that differences between two stamps are exact durations even when the
system clock is stepped (NTP) during a run."""

from __future__ import annotations

import time

# Fixed at import: wall time = monotonic time + this offset.
WALL_OFFSET: float = time.time() - time.monotonic()
_monotonic = time.monotonic


def now() -> float:
    """Seconds since the epoch, on the monotonic clock (see the module doc)."""
    return _monotonic() + WALL_OFFSET
