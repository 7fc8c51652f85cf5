"""rhapsody-py's two thin wrappers over a :class:`~rhapsody.telemetry.TelemetryManager`."""

from .reader import TelemetryReader
from .subscriber import TelemetrySubscriber

__all__ = ["TelemetryReader", "TelemetrySubscriber"]
