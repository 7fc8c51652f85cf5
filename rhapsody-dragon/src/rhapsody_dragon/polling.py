"""Waiting on a Dragon queue without spinning.

A blocking ``get`` on a Dragon queue waits in Dragon's adaptive mode, which spins: measured on
2 cores, a 10 ms wait cost 9 ms of CPU, and an idle session kept 87% of a core busy in the driving
process and about 30% in each pool worker. Waiters here poll without blocking (an empty poll
costs ~15 µs) and sleep in between, the sleep doubling from :data:`POLL_MIN` to a
longest pause while nothing comes: a busy queue is read at once, an idle one costs a few
percent of a core (measured: 2-5%), and a first item after a quiet spell waits at most that pause.
A process killed while it sleeps here is not inside a channel operation either (one killed
inside one can leave a lock held that the node's runtime then waits on).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

POLL_MIN = 0.0002  # seconds
POLL_MAX = 0.005  # the driving process's reader: the latency a result can get after a lull
WORKER_POLL_MAX = 0.02  # an idle pool worker: 2-3% of a core each (5% at POLL_MAX)


class Backoff:
    """The pause before the next poll: short while items come, growing while none does."""

    __slots__ = ("delay", "longest")

    def __init__(self, longest: float = POLL_MAX) -> None:
        self.delay, self.longest = POLL_MIN, longest

    def reset(self) -> None:
        self.delay = POLL_MIN

    def pause(self, stop: threading.Event | None = None) -> None:
        """Sleep (without spinning); returns early when ``stop`` is set."""
        if stop is None:
            time.sleep(self.delay)
        else:
            stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.longest)


def get_item(source: Any, backoff: Backoff) -> Any:
    """The next item of Dragon queue ``source``: waits for one, polling (see the module)."""
    while True:
        try:
            item = source.get(block=False)
        except queue.Empty:
            backoff.pause()
            continue
        backoff.reset()
        return item
