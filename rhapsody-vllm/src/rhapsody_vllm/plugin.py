"""Entry point ``vllm`` of the ``rhapsody`` group: the inference backends of rhapsody-vllm.

Importing it needs neither vLLM nor Dragon: servers start when a backend is awaited.
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl

from .backend import VllmInferenceBackend
from .dragon_backend import DragonVllmInferenceBackend


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(name="vllm", cls=VllmInferenceBackend, kind="inference"),
        BackendSpec(name="dragon_vllm", cls=DragonVllmInferenceBackend, kind="inference"),
    ]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    if not isinstance(backend, VllmInferenceBackend):
        return None
    from .sampling import VllmReplicaSampler

    return [VllmReplicaSampler(backend)]
