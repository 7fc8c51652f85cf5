"""A task's future is made when someone asks for it: the list submit_tasks returns behaves as a
list of futures in every way, a future asked for before or after its task ended resolves the
same, and a workflow that never asks makes none."""

from __future__ import annotations

import asyncio
import copy
import gc
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, Session, TaskState
from rhapsody.api.errors import TaskCanceledError, TaskExecutionError
from rhapsody.api.lazy_futures import FutureToMake, SubmittedFutures
from rhapsody.backends import ConcurrentExecutionBackend

from .fakes import ManualBackend


def noop() -> None:
    return None


def boom() -> None:
    raise ValueError("boom")


async def test_a_workflow_that_never_asks_makes_no_future() -> None:
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=noop) for _ in range(200)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        assert all(t.state is TaskState.DONE for t in tasks)
        assert all(type(t._future) is FutureToMake for t in tasks)
        assert session._pending == 0


@pytest.mark.parametrize("ask", ["before", "after"])
async def test_a_future_resolves_alike_asked_for_before_or_after_its_task_ended(ask: str) -> None:
    backend = ManualBackend()
    async with Session(backends=[backend]) as session:
        done, failed, canceled, bad_exit = (ComputeTask(function=noop) for _ in range(4))
        futures = await session.submit_tasks([done, failed, canceled, bad_exit])
        if ask == "before":
            assert not any(f.done() for f in futures)
        failed.exception = ValueError("boom")
        bad_exit.exit_code = 3
        for task, state in [
            (done, TaskState.DONE),
            (failed, TaskState.FAILED),
            (canceled, TaskState.CANCELED),
            (bad_exit, TaskState.FAILED),
        ]:
            backend.report(task, TaskState.RUNNING)
            backend.report(task, state)
        if ask == "after":
            assert all(type(t._future) is FutureToMake for t in (done, failed, canceled))
        assert await futures[0] is done and await done is done
        with pytest.raises(ValueError, match="boom"):
            await futures[1]
        with pytest.raises(TaskCanceledError):
            await canceled
        with pytest.raises(TaskExecutionError):
            await futures[3]
        assert [f.done() for f in futures] == [True] * 4
        assert [t.future for t in (done, failed, canceled, bad_exit)] == futures


async def test_a_failed_tasks_future_made_late_and_never_awaited_is_quiet() -> None:
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        task = ComputeTask(function=boom)
        futures = await session.submit_tasks([task])
        await session.wait_tasks([task])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.get_running_loop().set_exception_handler(
                lambda _loop, context: caught.append(context)  # type: ignore[arg-type]
            )
            assert futures[0].done()
            del futures
            gc.collect()
            await asyncio.sleep(0)
        assert caught == []


async def test_the_returned_list_is_a_list_of_the_tasks_futures() -> None:
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=noop) for _ in range(5)]
        futures = await session.submit_tasks(tasks)
        assert isinstance(futures, list) and len(futures) == 5 and futures
        assert await asyncio.gather(*futures) == tasks
        done, pending = await asyncio.wait(futures)
        assert done == {t.future for t in tasks} and not pending
        assert futures == [t.future for t in tasks] and [t.future for t in tasks] == futures
        assert [*[], *futures] == futures and [] + futures == futures + []  # noqa: RUF005
        assert copy.copy(futures) == futures and type(copy.copy(futures)) is list
        assert "Future" in repr(futures)


OPERATIONS: dict[str, Callable[[list[Any]], Any]] = {
    "len": len,
    "bool": bool,
    "list": list,
    "reversed": lambda f: list(reversed(f)),
    "index 0": lambda f: f[0],
    "index -1": lambda f: f[-1],
    "slice": lambda f: f[1:3],
    "contains": lambda f: f[0] in f,
    "index()": lambda f: f.index(f[-1]),
    "count": lambda f: f.count(f[0]),
    "add": lambda f: f + [None],  # noqa: RUF005 - concatenation is what is tested
    "radd": lambda f: [None] + f,  # noqa: RUF005
    "mul": lambda f: f * 2,
    "rmul": lambda f: 2 * f,
    "eq list": lambda f: f == [x for x in f],
    "list eq": lambda f: [x for x in f] == f,
    "ne": lambda f: f != [],
    "copy": lambda f: f.copy(),
    "tuple": tuple,
    "unpack": lambda f: [*f],
    "zip": lambda f: list(zip(f, range(len(f)), strict=True)),
    "set": lambda f: len(set(f)),
    "append": lambda f: (f.append(None), list(f))[1],
    "extend": lambda f: (f.extend([None]), list(f))[1],
    "iadd": lambda f: list(f.__iadd__([None])),
    "insert": lambda f: (f.insert(0, None), list(f))[1],
    "pop": lambda f: (f.pop(), list(f)),
    "remove": lambda f: (f.remove(f[0]), list(f))[1],
    "reverse": lambda f: (f.reverse(), list(f))[1],
    "setitem": lambda f: (f.__setitem__(0, None), list(f))[1],
    "delitem": lambda f: (f.__delitem__(0), list(f))[1],
    "clear": lambda f: (f.clear(), list(f))[1],
    "sort": lambda f: (f.sort(key=id), list(f))[1],
}


def outcome(op: str, futures: list[Any]) -> tuple[str, Any]:
    """What ``op`` gives, or the type of error it raises (on an emptied list, say)."""
    try:
        return "gave", OPERATIONS[op](futures)
    except Exception as exc:  # compared between the two lists
        return "raised", type(exc)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 6),
    ops=st.lists(st.sampled_from(sorted(OPERATIONS)), min_size=1, max_size=4),
)
def test_the_returned_list_behaves_as_a_plain_list_whatever_is_done_with_it(
    n: int, ops: list[str]
) -> None:
    async def scenario() -> None:
        async with Session(backends=[ManualBackend()]) as session:
            tasks = [ComputeTask(function=noop) for _ in range(n)]
            lazy = await session.submit_tasks(tasks)
            assert isinstance(lazy, SubmittedFutures)
            plain = [t.future for t in tasks]  # what the lazy list must equal, op for op
            for op in ops:
                assert outcome(op, lazy) == outcome(op, plain), op
                assert list(lazy) == plain, op

    asyncio.run(scenario())


async def test_two_unread_lists_compare_by_their_futures() -> None:
    async with Session(backends=[ManualBackend()]) as session:
        tasks = [ComputeTask(function=noop) for _ in range(3)]
        first = await session.submit_tasks(tasks)
        second = SubmittedFutures(tasks)
        assert first == second and not first != second
        assert first + second == [t.future for t in tasks] * 2


async def test_a_future_asked_for_from_another_thread_resolves_on_the_loop() -> None:
    backend = ManualBackend()
    async with Session(backends=[backend]) as session:
        early, late = ComputeTask(function=noop), ComputeTask(function=noop)
        await session.submit_tasks([early, late])
        early_future = await asyncio.to_thread(lambda: early.future)
        for task in (early, late):
            backend.report(task, TaskState.RUNNING)
            backend.report(task, TaskState.DONE)
        late_future = await asyncio.to_thread(lambda: late.future)
        assert early_future is not None and late_future is not None
        assert await asyncio.wait_for(early_future, 5) is early
        assert await asyncio.wait_for(late_future, 5) is late  # settled via the loop
