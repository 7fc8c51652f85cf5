"""Entry point ``vllm`` of the ``rhapsody`` group: the inference backends of rhapsody-vllm.

Importing it imports neither vLLM, its HTTP client nor Dragon: the backends are declared by
reference (imported when first used) and servers start when a backend is awaited.
"""

from __future__ import annotations

from rhapsody.plugins import BackendSpec, hookimpl


@hookimpl
def rhapsody_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="vllm",
            cls="rhapsody_vllm.backend:VllmInferenceBackend",
            kind="inference",
            requires=("aiohttp",),
        ),
        BackendSpec(
            name="dragon_vllm",
            cls="rhapsody_vllm.dragon_backend:DragonVllmInferenceBackend",
            kind="inference",
            requires=("aiohttp",),
        ),
    ]


@hookimpl
def rhapsody_resource_samplers(backend: object) -> list[object] | None:
    if not type(backend).__module__.startswith("rhapsody_vllm."):
        return None
    from .backend import VllmInferenceBackend
    from .sampling import VllmReplicaSampler

    return [VllmReplicaSampler(backend)] if isinstance(backend, VllmInferenceBackend) else None
