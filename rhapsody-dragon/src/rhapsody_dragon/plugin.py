"""Entry point ``dragon`` of the ``rhapsody`` group.

Importing it does not start or need the Dragon runtime: that happens when a backend is awaited.
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .backend import DragonExecutionBackendV3
from .runtime import runtime_note


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="dragon",
            cls=DragonExecutionBackendV3,
            kind="execution",
            # rhapsody-py's names: the "dragon_v3" backend, the DragonExecutionBackend class.
            aliases=("dragon_v3", "DragonExecutionBackend"),
            ready=runtime_note,
        )
    ]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    if not isinstance(backend, DragonExecutionBackendV3):
        return None
    from .sampling import DragonNodeSampler

    return [DragonNodeSampler(backend)]
