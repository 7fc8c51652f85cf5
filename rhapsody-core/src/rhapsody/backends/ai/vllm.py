"""rhapsody-py's module path of the vLLM backends (provided by the rhapsody-vllm distribution:
importing this module without it raises an ImportError that says what to install)."""

from ..lookup import backend_class

DragonVllmInferenceBackend = backend_class(
    "DragonVllmInferenceBackend", "inference", __name__, importing=True
)
VllmInferenceBackend = backend_class("VllmInferenceBackend", "inference", __name__, importing=True)

__all__ = ["DragonVllmInferenceBackend", "VllmInferenceBackend"]
