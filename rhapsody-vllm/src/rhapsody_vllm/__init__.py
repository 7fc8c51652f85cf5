"""rhapsody-vllm: managed vLLM inference services (and existing OpenAI-compatible endpoints)
for RHAPSODY's AITasks. The backends are also reachable as
``rhapsody.backends.inference.VllmInferenceBackend`` / ``DragonVllmInferenceBackend``."""

from __future__ import annotations

from .backend import VllmInferenceBackend
from .config import VllmModelConfig
from .dragon_backend import DragonVllmInferenceBackend
from .http_client import InferenceRequestError, InferenceTimeoutError

__all__ = [
    "DragonVllmInferenceBackend",
    "InferenceRequestError",
    "InferenceTimeoutError",
    "VllmInferenceBackend",
    "VllmModelConfig",
]
