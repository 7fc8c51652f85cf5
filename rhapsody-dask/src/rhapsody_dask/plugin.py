"""Entry point ``dask`` of the ``rhapsody`` group."""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .backend import DaskExecutionBackend


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [BackendSpec(name="dask", cls=DaskExecutionBackend, kind="execution")]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    if not isinstance(backend, DaskExecutionBackend):
        return None
    from .sampling import DaskWorkerSampler

    return [DaskWorkerSampler(backend)]
