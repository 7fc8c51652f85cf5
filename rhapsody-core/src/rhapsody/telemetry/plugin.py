"""The plugin that gives telemetry (and the progress bar) the session's tasks.

It is registered like any third-party plugin (``rhapsody.plugins.register``), the first time a
session asks for telemetry or progress, and implements two life-cycle hooks: the batched
``rhapsody_tasks_changed`` and ``rhapsody_session_closing`` (which lets telemetry finish its file
before ``Session.close()`` returns). Sessions that observe nothing are skipped at a dict lookup
per event-loop step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..plugins import hookimpl
from ..plugins.manager import get_plugin_host

if TYPE_CHECKING:
    from ..api.session import Session
    from ..api.states import TaskState
    from ..api.task import BaseTask

log = logging.getLogger(__name__)

PLUGIN_NAME = "rhapsody.telemetry"


class SessionObserver(Protocol):
    def on_changes(self, tasks: Sequence[BaseTask], states: Sequence[TaskState]) -> None: ...

    async def stop(self, timeout: float = 60.0) -> None: ...


class ObserversPlugin:
    def __init__(self) -> None:
        self.observers: dict[Session, list[SessionObserver]] = {}

    @hookimpl
    def rhapsody_tasks_changed(
        self, tasks: Sequence[BaseTask], states: Sequence[TaskState], session: Session
    ) -> None:
        for observer in self.observers.get(session, ()):
            try:
                observer.on_changes(tasks, states)
            except Exception:  # one observer's bug must not starve the others
                log.exception("%r failed on task changes", observer)

    @hookimpl
    def rhapsody_session_closing(self, session: Session) -> Awaitable[None] | None:
        observers = self.observers.pop(session, None)
        if not observers:
            return None
        return _stop_all(observers, session.shutdown_timeout)


async def _stop_all(observers: list[SessionObserver], timeout: float) -> None:
    for observer in observers:
        try:
            await observer.stop(timeout)
        except Exception:
            log.exception("%r failed to stop", observer)


def observe(session: Session, observer: SessionObserver) -> None:
    """Give ``observer`` every task change of ``session`` from now on, and stop it at close."""
    pm = get_plugin_host().pm
    plugin: Any = pm.get_plugin(PLUGIN_NAME)
    if plugin is None:
        plugin = ObserversPlugin()
        pm.register(plugin, name=PLUGIN_NAME)
    plugin.observers.setdefault(session, []).append(observer)
    session._bind_hooks()
