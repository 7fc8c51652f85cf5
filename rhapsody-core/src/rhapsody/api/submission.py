"""The steps of :meth:`Session.submit_tasks`: build and check the tasks (claiming their uids),
route them, register them (state SUBMITTED, a future each) and hand each backend its group.

Functions of the session rather than methods, so that the session's module holds its state
machine, waiting and shutdown; they read and write the session's own fields.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from .clock import now
from .errors import BackendError, SessionError, task_label
from .lazy_futures import SubmittedFutures
from .states import TaskState
from .task import BaseTask, task_from_dict

if TYPE_CHECKING:
    from ..backends.base import Backend
    from .session import Session

log = logging.getLogger("rhapsody.api.session")

# Tasks handled per step of a batch before yielding to the event loop, so that submitting 100k
# tasks never starves other coroutines.
CHUNK = 2048

_set = object.__setattr__
_NEW, _SUBMITTED, _FAILED = TaskState.NEW, TaskState.SUBMITTED, TaskState.FAILED


async def route(session: Session, batch: list[BaseTask]) -> dict[Backend, list[BaseTask]]:
    routing = session._routing
    assert routing is not None
    groups: dict[Backend, list[BaseTask]] = {}
    route_one = routing.route
    for i, task in enumerate(batch):
        backend = route_one(task)
        group = groups.get(backend)
        if group is None:
            groups[backend] = group = []
        group.append(task)
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
    for backend, group in groups.items():
        if not backend.initialized:  # added after the session started
            await backend._ensure_initialized()
        backend.check_tasks(group)
    return groups


async def register_and_submit(
    session: Session, batch: list[BaseTask], groups: dict[Backend, list[BaseTask]]
) -> list[asyncio.Future[Any]]:
    futures = await register(session, batch, groups)
    for backend, group in groups.items():
        if session._closed:
            break
        backend._used = True
        try:
            await backend.submit_tasks(group)
        except BaseException as exc:  # the tasks fail, the caller is told through them
            log.error("backend %r failed to accept %d tasks: %s", backend.name, len(group), exc)
            error = (
                exc
                if isinstance(exc, BackendError)
                else BackendError(
                    f"backend {backend.name!r} failed to accept the task: "
                    f"{type(exc).__name__}: {exc}"
                )
            )
            for task in group:
                if not task.done:
                    task.exception = error
                    session._transition(task, _FAILED)
            if not isinstance(exc, Exception):
                raise
    if session._closed:  # closed while this batch was being submitted
        session._cancel_unfinished(batch, "the session was closed")
    return futures


async def prepare(
    session: Session, tasks: Iterable[BaseTask | Mapping[str, Any]], batch: list[BaseTask]
) -> None:
    """Build and check the tasks into ``batch``, claiming their uids as they come."""
    known, pending = session.tasks, session._claimed
    for i, item in enumerate(tasks):
        if isinstance(item, BaseTask):
            task = item
            if task._future is not None:
                raise SessionError(f"{task_label(task.uid)} was already submitted")
            if task.state is not _NEW:  # a restored (from_dict, unpickled) task runs afresh
                task._reset_results()
        else:
            task = task_from_dict(item)
            if isinstance(item, MutableMapping):
                # rhapsody-py's contract: the caller's dict is the task, kept up to date.
                item.setdefault("uid", task.uid)
                session._sources[task] = item
        uid = task.uid
        # Checked and claimed with no await in between: two concurrent submissions of the
        # same uid cannot both pass.
        if uid in known or uid in pending:
            raise SessionError(f"duplicate task uid {uid!r}: uids must be unique in a session")
        pending.add(uid)
        batch.append(task)
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)


async def register(
    session: Session, batch: list[BaseTask], groups: dict[Backend, list[BaseTask]]
) -> list[asyncio.Future[Any]]:
    loop = session.loop
    assert loop is not None
    to_make = session._future_to_make
    assert to_make is not None  # set when the session started
    known, claimed = session.tasks, session._claimed
    on_submitted = session._on_submitted
    changes, states = session._changes, session._change_states
    if changes is not None and not changes:
        loop.call_soon(session._flush_changes)
    sources = session._sources
    submitted_at = now()  # one stamp per step of a batch: they are submitted together
    for backend, group in groups.items():
        name = backend.name
        for i, task in enumerate(group):
            # The session's own writes skip the task's field checks (values known valid).
            _set(task, "_future", to_make)  # made when asked for (lazy_futures.py)
            _set(task, "backend", name)
            _set(task, "state", _SUBMITTED)
            _set(task, "submitted_at", submitted_at)
            if sources:
                source = sources.get(task)
                if source is not None:
                    source.update(backend=name, state=_SUBMITTED.value)
            known[task.uid] = task
            claimed.discard(task.uid)
            if on_submitted is not None:
                on_submitted(task=task, backend=backend, session=session)
            if changes is not None:
                changes.append(task)
                states.append(_SUBMITTED)
            if i % CHUNK == CHUNK - 1:
                await asyncio.sleep(0)
                submitted_at = now()
                changes, states = session._changes, session._change_states  # flushed: new lists
                if changes is not None and not changes:
                    loop.call_soon(session._flush_changes)
        session._pending += len(group)
    return SubmittedFutures(batch)  # futures in the caller's order, made when read
