"""RHAPSODY telemetry: events, metrics, spans and resource samples of a session.

Usage (rhapsody-py 0.6's API)::

    session = Session(backends=[backend])
    telemetry = await session.start_telemetry(checkpoint_path="./telemetry/")
    telemetry.subscribe(lambda event: print(event.event_type))
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    print(telemetry.summary())

Needs the OpenTelemetry SDK: ``pip install 'rhapsody-core[telemetry]'``. Importing this package
does not import it.
"""

from typing import TYPE_CHECKING

from ..plugins.lazy_names import lazy_exports
from .events import (
    BaseEvent,
    ResourceUpdate,
    SessionEnded,
    SessionStarted,
    TaskCanceled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskSubmitted,
    define_event,
    make_event,
)

if TYPE_CHECKING:
    from .interfaces import TelemetryReader, TelemetrySubscriber
    from .manager import TelemetryManager
    from .otel import TelemetryNotInstalledError
    from .sampling import LocalNodeSampler, ResourceSample, ResourceSampler

# imported on first use: the checkpoint writer's process imports this package, and needs none
# of them (nor asyncio and the task API, which the manager imports)
_LAZY = {
    "TelemetryReader": ".interfaces",
    "TelemetrySubscriber": ".interfaces",
    "TelemetryManager": ".manager",
    "TelemetryNotInstalledError": ".otel",
    "LocalNodeSampler": ".sampling",
    "ResourceSample": ".sampling",
    "ResourceSampler": ".sampling",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "BaseEvent",
    "LocalNodeSampler",
    "ResourceSample",
    "ResourceSampler",
    "ResourceUpdate",
    "SessionEnded",
    "SessionStarted",
    "TaskCanceled",
    "TaskCompleted",
    "TaskCreated",
    "TaskFailed",
    "TaskQueued",
    "TaskStarted",
    "TaskSubmitted",
    "TelemetryManager",
    "TelemetryNotInstalledError",
    "TelemetryReader",
    "TelemetrySubscriber",
    "define_event",
    "make_event",
]
