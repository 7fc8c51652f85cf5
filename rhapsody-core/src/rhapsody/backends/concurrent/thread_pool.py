"""A lean thread pool for function tasks: a queue of tasks and N worker threads.

``ThreadPoolExecutor.submit`` allocates a Future, a Condition and a work item per call (about
1.4 KB); here a queued task costs one queue slot. Used when no ``executor=`` is given.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

log = logging.getLogger(__name__)


def default_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default


class TaskThreadPool:
    """Runs ``run(item)`` for every submitted item on ``max_workers`` daemon threads."""

    def __init__(self, run: Callable[[Any], None], max_workers: int, name: str) -> None:
        self._run = run
        self.max_workers = max_workers
        self._name = name
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.closed = False

    def submit(self, item: Any) -> None:
        if self.closed:
            raise RuntimeError("cannot submit after shutdown")
        self._queue.put(item)
        if not self._threads:
            self._start_threads()

    def _start_threads(self) -> None:
        with self._lock:
            for i in range(self.max_workers - len(self._threads)):
                thread = threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        get, run = self._queue.get, self._run
        while True:
            item = get()
            if item is None:
                return
            if not self.closed:  # after shutdown, queued work is dropped
                try:
                    run(item)
                except Exception:  # ``run`` ends its own items: a bug in it must not end the
                    log.exception("%s: running %r failed", self._name, item)  # thread too

    def shutdown(self) -> None:
        """Drop queued work and stop the threads once their current call returns."""
        self.closed = True
        for _ in self._threads:
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
