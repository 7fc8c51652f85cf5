"""Waiting on Dragon queues: polls that never block (a blocking get spins), pauses that grow
while nothing comes and shrink as soon as something does."""

from __future__ import annotations

import queue
import threading
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rhapsody_dragon.polling import POLL_MIN, Backoff, get_item


class RecordingQueue:
    """Hands out ``items`` after ``empty_polls`` empty polls each; records how it was asked."""

    def __init__(self, items: list[Any], empty_polls: int) -> None:
        self.items, self.empty_polls, self.calls = list(items), empty_polls, []
        self._left = empty_polls

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self._left:
            self._left -= 1
            raise queue.Empty
        self._left = self.empty_polls
        return self.items.pop(0)


@given(st.integers(min_value=0, max_value=40), st.floats(min_value=0.0002, max_value=10.0))
def test_backoff_doubles_up_to_its_longest_pause_and_resets(pauses: int, longest: float) -> None:
    stopped = threading.Event()
    stopped.set()  # pause() then returns at once: the delays, not the sleeps, are under test
    backoff = Backoff(longest)
    seen = []
    for _ in range(pauses):
        seen.append(backoff.delay)
        backoff.pause(stopped)
    expected = [min(POLL_MIN * 2**i, max(longest, POLL_MIN)) for i in range(pauses)]
    assert all(abs(a - b) < 1e-12 for a, b in zip(seen, expected, strict=True)), (seen, expected)
    backoff.reset()
    assert backoff.delay == POLL_MIN


def test_pause_sleeps_and_grows_and_a_stop_ends_it_early() -> None:
    backoff = Backoff(0.002)
    backoff.pause()
    assert backoff.delay == 2 * POLL_MIN
    for _ in range(10):
        backoff.pause()
    assert backoff.delay == 0.002
    stop = threading.Event()
    stop.set()
    long = Backoff(60.0)
    long.delay = 60.0
    long.pause(stop)  # returns at once: the stop is set


def test_get_item_only_ever_polls_without_blocking() -> None:
    source = RecordingQueue(["a", "b"], empty_polls=3)
    backoff = Backoff(0.001)
    assert [get_item(source, backoff), get_item(source, backoff)] == ["a", "b"]
    assert source.calls and all(call == ((), {"block": False}) for call in source.calls)
    assert len(source.calls) == 8  # three empty polls before each item
    assert backoff.delay == POLL_MIN  # an item came: back to the shortest pause


def test_the_reaper_looks_once_per_interval_not_once_per_started_process(
    monkeypatch: Any,
) -> None:
    """Each look is a global-services round trip under the lock the launchers need to start
    the next process: one per start halved their rate. A fake ``exited`` counts the looks."""
    import time

    from rhapsody_dragon import reaper as reaper_module

    looks: list[list[int]] = []
    monkeypatch.setattr(reaper_module, "exited", lambda puids: looks.append(puids) or [])
    reaper = reaper_module.Reaper()
    try:
        reaper.watch([1], long_lived=True)  # a pool worker: looked at once a second
        time.sleep(0.01)
        started = time.monotonic()
        for puid in range(100, 140):  # 40 task processes started 1 ms apart
            reaper.watch([puid])
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        time.sleep(0.01)
        # the first task's start wakes it to the short interval; later starts do not
        assert len(looks) <= 3 + elapsed / reaper_module._POLL, (len(looks), elapsed)
        assert any(100 in puids for puids in looks)  # the task processes were looked at
    finally:
        reaper.stop()
