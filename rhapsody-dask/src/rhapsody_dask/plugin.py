"""Entry point ``dask`` of the ``rhapsody`` group.

Importing it imports nothing of Dask: the backend is declared by reference and its module is
imported when the backend is first used (discovery stays fast).
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="dask",
            cls="rhapsody_dask.backend:DaskExecutionBackend",
            kind="execution",
            requires=("distributed",),
        )
    ]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    # A session's backends are already imported: this module's is, only if one is ours.
    if not type(backend).__module__.startswith("rhapsody_dask."):
        return None
    from .backend import DaskExecutionBackend
    from .sampling import DaskWorkerSampler

    return [DaskWorkerSampler(backend)] if isinstance(backend, DaskExecutionBackend) else None
