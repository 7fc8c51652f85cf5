"""A submitted task's future, made when someone asks for it.

Most workflows never look at the futures ``submit_tasks`` returns: they wait with
``wait_tasks`` or await the tasks. Yet an asyncio future per task cost a fifth of the session's
CPU per no-op task, most of it in the garbage collector walking 100k young futures (they are
containers that live as long as the task). So a submitted task holds a :class:`FutureToMake`
until its future is asked for (``task.future``, awaiting the task, or reading the list
``submit_tasks`` returned); a future made after the task ended is made already resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

from .states import TERMINAL_STATES, TaskState

if TYPE_CHECKING:
    from .task import BaseTask

_set = object.__setattr__


class FutureToMake:
    """Held in a submitted task's future slot until the future is asked for (one per session)."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __repr__(self) -> str:
        return "FutureToMake()"


def make_future(task: BaseTask, to_make: FutureToMake) -> asyncio.Future[Any]:
    """Make ``task``'s future (resolved already if the task ended) and keep it on the task."""
    loop = to_make.loop
    fut: asyncio.Future[Any] = loop.create_future()
    # Kept on the task before its state is read: the session's state machine writes the state
    # before it reads the future, so whichever of the two comes second resolves it.
    _set(task, "_future", fut)
    if task.state in TERMINAL_STATES:
        if asyncio._get_running_loop() is loop:
            settle(fut, task)
        else:  # asked from another thread: resolved on the loop's, where futures are handled
            loop.call_soon_threadsafe(settle, fut, task)
    return fut


def settle(fut: asyncio.Future[Any], task: BaseTask) -> None:
    """Resolve ``fut`` from its ended ``task``: the task when DONE, else the task's error (the
    session's state machine records one on every task it ends FAILED or CANCELED)."""
    if fut.done():
        return
    if task.state is TaskState.DONE:
        fut.set_result(task)
    else:
        fut.set_exception(task.exception or RuntimeError(f"task {task.uid} {task.state.value}"))
        fut.exception()  # the task records the error; no "never retrieved" noise


def _filled(method: Callable[..., Any]) -> Callable[..., Any]:
    """``list``'s ``method``, run once the list holds its futures."""

    def run(self: SubmittedFutures, *args: Any, **kwargs: Any) -> Any:
        if self._tasks is not None:
            self._fill()
        for arg in args:  # list's C code reads another such list's items directly too
            if type(arg) is SubmittedFutures and arg._tasks is not None:
                arg._fill()
        return method(self, *args, **kwargs)

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


class SubmittedFutures(list):  # type: ignore[type-arg]
    """The list of futures ``submit_tasks`` returns, one per task in order.

    A real ``list`` (``isinstance(futures, list)``, indexing, iteration, ``asyncio.gather(*...)``
    all work); its futures are made when the list is first read, so a caller who never reads it
    pays for none.
    """

    _tasks: list[BaseTask] | None = None  # until filled (None after a copy rebuilt it too)

    def __init__(self, tasks: list[BaseTask]) -> None:
        super().__init__()
        self._tasks = tasks

    def _fill(self) -> None:
        tasks, self._tasks = self._tasks, None
        assert tasks is not None
        list.extend(self, [t.future for t in tasks])

    def __len__(self) -> int:
        tasks = self._tasks
        return len(tasks) if tasks is not None else list.__len__(self)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        if self._tasks is not None:
            self._fill()
        return list.__iter__(self)

    @overload
    def __getitem__(self, index: SupportsIndex) -> asyncio.Future[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[asyncio.Future[Any]]: ...
    def __getitem__(self, index: Any) -> Any:
        if self._tasks is not None:
            self._fill()
        return list.__getitem__(self, index)

    def __radd__(self, other: Iterable[Any]) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        return other + list(self)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (list, (list(self),))

    def copy(self) -> list[asyncio.Future[Any]]:
        return list(self)


# Every other method of list reads or writes its items: each fills the list first.
for _name in (
    "__add__", "__contains__", "__delitem__", "__eq__", "__ge__", "__gt__", "__iadd__",
    "__imul__", "__le__", "__lt__", "__mul__", "__ne__", "__repr__", "__reversed__", "__rmul__",
    "__setitem__", "__sizeof__", "append", "clear", "count", "extend", "index", "insert", "pop",
    "remove", "reverse", "sort",
):  # fmt: skip
    setattr(SubmittedFutures, _name, _filled(getattr(list, _name)))
del _name
