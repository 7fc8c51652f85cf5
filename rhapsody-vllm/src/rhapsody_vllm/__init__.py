"""rhapsody-vllm: managed vLLM inference services (and existing OpenAI-compatible endpoints)
for RHAPSODY's AITasks. The backends are also reachable as
``rhapsody.backends.inference.VllmInferenceBackend`` / ``DragonVllmInferenceBackend``.

Names are imported on first use: ``rhapsody_vllm`` alone (as discovery imports it) does not
import the HTTP client, vLLM or Dragon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rhapsody.plugins.lazy_names import lazy_names

if TYPE_CHECKING:
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

__getattr__ = lazy_names(
    __name__,
    {
        "DragonVllmInferenceBackend": ".dragon_backend",
        "InferenceRequestError": ".http_client",
        "InferenceTimeoutError": ".http_client",
        "VllmInferenceBackend": ".backend",
        "VllmModelConfig": ".config",
    },
)
