"""Entry point ``dragon`` of the ``rhapsody`` group.

Importing it imports nothing of Dragon and does not need its runtime: the backend is declared
by reference (its module is imported when it is first used) and the runtime starts when a
backend is awaited.
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .runtime import runtime_note


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="dragon",
            cls="rhapsody_dragon.backend:DragonExecutionBackendV3",
            kind="execution",
            # rhapsody-py's names: the "dragon_v3" backend, the DragonExecutionBackend class.
            aliases=("dragon_v3", "DragonExecutionBackend"),
            ready=runtime_note,
            requires=("dragon",),
        )
    ]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    if not type(backend).__module__.startswith("rhapsody_dragon."):
        return None
    from .backend import DragonExecutionBackendV3
    from .sampling import DragonNodeSampler

    return [DragonNodeSampler(backend)] if isinstance(backend, DragonExecutionBackendV3) else None
