"""Hook specifications of RHAPSODY, grouped by life cycle.

A plugin is any module or object with functions named after these specs and decorated with
``@rhapsody.plugins.hookimpl``. Plugins are found through the ``rhapsody`` entry-point group (the
built-in concurrent backend registers itself the same way) or registered at run time with
:func:`rhapsody.plugins.register`.

Every hook argument is optional in an implementation: pluggy passes only the ones it names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from ..api.session import Session
    from ..api.states import TaskState
    from ..api.task import BaseTask
    from ..backends.base import Backend
    from ..telemetry.sampling import ResourceSampler
    from .registry import BackendSpec


# -- Registration ---------------------------------------------------------------------------------


@hookspec
def rhapsody_register_backends() -> Sequence[BackendSpec] | BackendSpec:
    """Return the backends this plugin provides, as :class:`~rhapsody.plugins.BackendSpec`.

    Each spec names the backend (``"dask"``), its class, and its kind (``"execution"`` or
    ``"inference"``). The distribution and version are filled in from the entry point. Called
    once per plugin at discovery; a plugin that fails here is marked unavailable with the reason.
    """
    raise NotImplementedError


# -- Routing --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def rhapsody_route_task(
    task: BaseTask, backends: Sequence[Backend], session: Session
) -> str | None:
    """Choose the backend for a task submitted without ``backend=``.

    ``backends`` are the session's backends that accept this task, in registration order (never
    empty). Return the chosen backend's name, or ``None`` to let the next implementation decide.
    The built-in rule (registered last, so plugins go first) picks the first of ``backends``.
    """


# -- Task life cycle (called on the event loop; only when some plugin implements them) ------------


@hookspec
def rhapsody_task_submitted(task: BaseTask, backend: Backend, session: Session) -> None:
    """A task was routed to ``backend`` and is about to be handed to it."""


@hookspec
def rhapsody_task_state_changed(
    task: BaseTask, old_state: TaskState, new_state: TaskState, session: Session
) -> None:
    """A task moved from ``old_state`` to ``new_state`` (results are already on the task).

    Called for RUNNING and for the terminal state; submission has its own hook.
    """


@hookspec
def rhapsody_task_finished(task: BaseTask, session: Session) -> None:
    """A task reached its one terminal state (DONE, FAILED or CANCELED)."""


@hookspec
def rhapsody_tasks_changed(
    tasks: Sequence[BaseTask], states: Sequence[TaskState], session: Session
) -> None:
    """``tasks[i]`` entered ``states[i]`` (SUBMITTED, RUNNING, DONE, FAILED, CANCELED), in order.

    The cheap way to observe every task: the session collects the changes and calls this once
    per event-loop step with all of them (once more at close, before
    :func:`rhapsody_session_closing`), so an observer costs two list appends per transition
    instead of a hook call. Read times and places from the task (``submitted_at``,
    ``started_at``, ``ended_at``, ``host``, ``worker``); the task may have moved on since.
    The lists are the observer's to read during the call (iterate ``zip(tasks, states)``).
    """


@hookspec
def rhapsody_resource_samplers(backend: Backend) -> Sequence[ResourceSampler] | None:
    """Return the resource samplers of ``backend`` if this plugin provides that backend.

    Called when telemetry starts, once per backend of the session; each sampler is polled every
    ``resource_poll_interval`` seconds (see :class:`rhapsody.telemetry.sampling.ResourceSampler`).
    """


# -- Session life cycle ---------------------------------------------------------------------------


@hookspec
def rhapsody_session_start(session: Session) -> None:
    """A session started: its backends are initialised and it accepts tasks."""


@hookspec
def rhapsody_session_closing(session: Session) -> Awaitable[None] | None:
    """A session is closing: every task is terminal, the backends are shut down.

    Return an awaitable to finish work before :meth:`Session.close` returns (flush a file,
    drain subscribers); the session awaits them together, bounded by its ``shutdown_timeout``.
    """


@hookspec
def rhapsody_session_close(session: Session) -> None:
    """A session closed: its backends are shut down and every task is terminal."""
