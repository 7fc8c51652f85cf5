"""The inbox through which backends' threads hand task events to the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading

from rhapsody.api import BackendError, ComputeTask, TaskState
from rhapsody.backends.inbox import LoopInbox, failing_with


def push_from_a_thread(inbox: LoopInbox, items: list[tuple]) -> None:
    # all pushed before the loop runs again: one batch, one drain
    thread = threading.Thread(target=lambda: [inbox.push(*item) for item in items])
    thread.start()
    thread.join()


async def test_an_item_whose_handler_raises_strands_none_behind_it(caplog) -> None:
    handled, failed = [], []

    def handler(name: str) -> None:
        if name == "bad":
            raise ValueError("handler bug")
        handled.append(name)

    inbox = LoopInbox(asyncio.get_running_loop(), handler, lambda *a: failed.append(a))
    push_from_a_thread(inbox, [("a",), ("bad",), ("b",), ("c",)])
    for _ in range(100):
        if len(handled) == 3:
            break
        await asyncio.sleep(0.01)
    assert handled == ["a", "b", "c"]
    assert [(name, type(exc)) for name, exc in failed] == [("bad", ValueError)]
    assert "handler bug" in caplog.text


async def test_an_on_error_that_raises_too_is_logged_and_the_rest_handled(caplog) -> None:
    caplog.set_level(logging.ERROR)
    handled = []

    def handler(name: str) -> None:
        if name == "bad":
            raise ValueError("handler bug")
        handled.append(name)

    def on_error(name: str, exc: BaseException) -> None:
        raise RuntimeError("on_error bug")

    inbox = LoopInbox(asyncio.get_running_loop(), handler, on_error)
    push_from_a_thread(inbox, [("bad",), ("a",)])
    for _ in range(100):
        if handled:
            break
        await asyncio.sleep(0.01)
    assert handled == ["a"] and "on_error bug" in caplog.text


def test_failing_with_ends_a_running_task_failed_and_leaves_an_ended_one() -> None:
    reported = []

    def report(task: ComputeTask, state: TaskState) -> None:
        reported.append((task.uid, state))

    fail = failing_with(report)
    running = ComputeTask(executable="true", uid="t.running")
    fail(running, KeyError("gone"))
    assert reported == [("t.running", TaskState.FAILED)]
    assert isinstance(running.exception, BackendError)
    assert "t.running" in str(running.exception) and "KeyError" in str(running.exception)

    ended = ComputeTask(executable="true", uid="t.ended")
    ended.state = TaskState.DONE
    fail(ended, KeyError("gone"))
    assert len(reported) == 1 and ended.exception is None
