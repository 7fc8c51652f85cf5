"""Entry point ``example`` of the ``rhapsody`` group."""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .backends import EchoInferenceBackend, InlineExecutionBackend


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(name="inline", cls=InlineExecutionBackend, kind="execution"),
        BackendSpec(name="echo", cls=EchoInferenceBackend, kind="inference"),
    ]
