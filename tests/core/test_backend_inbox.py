"""The inbox through which backends' threads hand task events to the event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

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


# -- fixed-width inboxes: values queued flat, no tuple per item --------------------------------


async def test_a_fixed_width_inbox_keeps_each_threads_items_whole() -> None:
    # several threads push at once: every handled pair must be one thread's own pair
    handled: list[tuple[int, int]] = []
    inbox = LoopInbox(asyncio.get_running_loop(), lambda a, b: handled.append((a, b)), width=2)
    threads, per_thread = 4, 5000

    def pushes(k: int) -> None:
        for i in range(per_thread):
            inbox.push(k * per_thread + i, -(k * per_thread + i))

    workers = [threading.Thread(target=pushes, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for _ in range(1000):
        if len(handled) == threads * per_thread:
            break
        await asyncio.sleep(0.01)
    for worker in workers:
        worker.join()
    assert len(handled) == threads * per_thread
    assert all(b == -a for a, b in handled)
    # each thread's items in the order it pushed them
    for k in range(threads):
        mine = [a for a, _ in handled if a // per_thread == k]
        assert mine == sorted(mine)


async def test_a_fixed_width_inbox_queues_no_container_per_item() -> None:
    # Tuples waiting in the queue outlive young collections and make the cyclic collector walk,
    # promote and fully collect them; values queued flat add no tracked object at all.
    tasks = [ComputeTask(executable="true") for _ in range(2000)]
    for width, extra in ((None, len(tasks)), (2, 0)):
        inbox = LoopInbox(asyncio.get_running_loop(), lambda *item: None, width=width)
        gc.collect()
        before = len(gc.get_objects())
        for task in tasks:  # not yielding to the loop: all of them wait in the queue
            inbox.push(task, TaskState.DONE)
        added = len(gc.get_objects()) - before
        assert extra <= added <= extra + 50, (width, added)
        await asyncio.sleep(0)  # drained


@pytest.mark.parametrize("width", [1, 3])
async def test_a_fixed_width_inbox_hands_whole_items_to_handler_and_on_error(width) -> None:
    handled, failed = [], []

    def handler(*item) -> None:
        if item[0] == "bad":
            raise ValueError("handler bug")
        handled.append(item)

    inbox = LoopInbox(asyncio.get_running_loop(), handler, lambda *a: failed.append(a), width=width)
    items = [tuple(f"{name}{i}" if i else name for i in range(width)) for name in "a bad b".split()]
    push_from_a_thread(inbox, items)
    for _ in range(100):
        if len(handled) == 2:
            break
        await asyncio.sleep(0.01)
    assert handled == [items[0], items[2]]
    assert [(name, type(exc)) for name, exc in failed] == [("bad", ValueError)]


async def test_a_push_of_the_wrong_width_is_refused_and_queues_nothing() -> None:
    handled = []
    inbox = LoopInbox(asyncio.get_running_loop(), lambda a, b: handled.append((a, b)), width=2)
    with pytest.raises(TypeError, match=r"expected 2 values \(the inbox's width\), got 3"):
        inbox.push("a", "b", "c")
    inbox.push("x", "y")
    await asyncio.sleep(0)
    assert handled == [("x", "y")]


@pytest.mark.parametrize("width", [0, -1, 2.0, True, "2"])
def test_a_width_that_is_not_a_positive_integer_is_refused(width) -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match=r"width: expected an integer >= 1 or None, got"):
            LoopInbox(loop, print, width=width)
    finally:
        loop.close()
