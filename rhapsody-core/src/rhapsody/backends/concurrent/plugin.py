"""Registers the concurrent backend through the ``rhapsody`` entry-point group, like any plugin."""

from __future__ import annotations

from ...plugins.markers import hookimpl
from ...plugins.registry import BackendSpec

# By reference: the backend's module (and with it the task API) is imported on first use.
_BACKEND = "rhapsody.backends.concurrent.backend:ConcurrentExecutionBackend"


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [BackendSpec(name="concurrent", cls=_BACKEND, kind="execution")]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    """Telemetry's view of a concurrent backend: this node (its workers are local)."""
    from .backend import ConcurrentExecutionBackend

    if not isinstance(backend, ConcurrentExecutionBackend):
        return None
    from ...telemetry.sampling import LocalNodeSampler

    return [LocalNodeSampler()]
