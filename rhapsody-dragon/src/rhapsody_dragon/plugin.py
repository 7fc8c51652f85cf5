"""Entry point ``dragon`` of the ``rhapsody`` group.

Importing it does not start or need the Dragon runtime: that happens when a backend is awaited.
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .backend import DragonExecutionBackend, DragonExecutionBackendV3


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(name="dragon", cls=DragonExecutionBackendV3, kind="execution"),
        BackendSpec(name="dragon_alias", cls=DragonExecutionBackend, kind="execution"),
    ]
