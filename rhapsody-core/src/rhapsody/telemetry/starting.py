"""``session.start_telemetry()``: check the request, find the backends' samplers, start."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api.errors import SessionError
from .manager import TelemetryManager
from .plugin import observe

if TYPE_CHECKING:
    from ..api.session import Session
    from .sampling import ResourceSampler

log = logging.getLogger(__name__)


async def start_telemetry(
    session: Session,
    resource_poll_interval: float = 5.0,
    checkpoint_interval: float | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    span_processors: Sequence[Any] | None = None,
    metric_readers: Sequence[Any] | None = None,
    resource: Any = None,
) -> TelemetryManager:
    if session.closed:
        raise SessionError(f"start_telemetry: session {session.uid} is closed")
    if session.tasks:
        raise SessionError(
            f"start_telemetry: expected a session with no tasks yet, got {len(session.tasks)} "
            "submitted: start telemetry before submitting tasks"
        )
    if session._telemetry is not None:
        raise SessionError(f"start_telemetry: telemetry of session {session.uid} already started")
    manager = TelemetryManager(
        session_id=session.uid,
        checkpoint_interval=checkpoint_interval,
        checkpoint_path=checkpoint_path,
        span_processors=span_processors,
        metric_readers=metric_readers,
        resource=resource,
        resource_poll_interval=resource_poll_interval,
    )
    manager._session = session
    await manager.start(samplers_of(session))
    observe(session, manager)
    session._telemetry = manager  # get_telemetry(), also after close
    return manager


def samplers_of(session: Session) -> list[tuple[str, ResourceSampler]]:
    """Each backend's samplers, from the plugins; one that fails is skipped with its reason."""
    hook = session._host.pm.hook
    found: list[tuple[str, ResourceSampler]] = []
    for name, backend in session.backends.items():
        try:
            results = hook.rhapsody_resource_samplers(backend=backend)
        except Exception as exc:  # noqa: BLE001 - a missing optional dependency, say
            log.warning("no resource samples for backend %r: %s", name, exc)
            continue
        for samplers in results:
            found.extend((name, s) for s in samplers or ())
    return found
