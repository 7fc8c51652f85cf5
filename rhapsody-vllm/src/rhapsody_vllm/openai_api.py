"""AITask <-> OpenAI-compatible request bodies and responses (``/v1/completions``,
``/v1/chat/completions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rhapsody.api import AITask, BackendError, TaskValidationError

COMPLETIONS = "/completions"
CHAT = "/chat/completions"


def sampling(task: AITask) -> dict[str, Any]:
    """The task's sampling parameters, only those it sets (the server's defaults otherwise)."""
    body: dict[str, Any] = {}
    if task.temperature is not None:
        body["temperature"] = task.temperature
    if task.max_tokens is not None:
        body["max_tokens"] = task.max_tokens
    if task.top_p is not None:
        body["top_p"] = task.top_p
    if task.top_k is not None:
        body["top_k"] = task.top_k  # a vLLM extension of the OpenAI API
    if task.stop_sequences is not None:
        body["stop"] = list(task.stop_sequences)
    extra = task.task_backend_specific_kwargs.get("extra_body")
    if extra:
        body.update(extra)
    return body


def check_options(task: AITask) -> None:
    """Only ``extra_body`` (a dict merged into the request body) is understood."""
    for key, value in task.task_backend_specific_kwargs.items():
        if key != "extra_body":
            raise TaskValidationError(
                f"task_backend_specific_kwargs[{key!r}]",
                "only 'extra_body' (a dict merged into the request)",
                value,
                owner="AITask",
            )
        if not isinstance(value, Mapping) or not all(type(k) is str for k in value):
            raise TaskValidationError(
                "task_backend_specific_kwargs['extra_body']",
                "a dict with str keys",
                value,
                owner="AITask",
            )


def completion_body(task: AITask, model: str) -> dict[str, Any]:
    """One ``/v1/completions`` request; a list of prompts goes in one request."""
    prompt = task.prompt if isinstance(task.prompt, str) else list(task.prompt)
    return {"model": model, "prompt": prompt, **sampling(task)}


def chat_bodies(task: AITask, model: str) -> list[dict[str, Any]]:
    """One ``/v1/chat/completions`` request per prompt (the chat API takes one conversation)."""
    prompts = [task.prompt] if isinstance(task.prompt, str) else list(task.prompt)
    params = sampling(task)
    return [
        {
            "model": model,
            "messages": [
                {"role": "system", "content": task.system_prompt},
                {"role": "user", "content": prompt},
            ],
            **params,
        }
        for prompt in prompts
    ]


def completion_texts(data: Mapping[str, Any], expected: int) -> list[str]:
    """The generated texts of a completions response, in prompt order."""
    choices = _choices(data, expected)
    return [str(c.get("text", "")) for c in sorted(choices, key=lambda c: int(c.get("index", 0)))]


def chat_text(data: Mapping[str, Any]) -> str:
    """The assistant's answer in a chat completions response."""
    message = _choices(data, 1)[0].get("message") or {}
    return str(message.get("content") or "")


def add_usage(total: dict[str, int], data: Mapping[str, Any]) -> None:
    """Add a response's token counts (prompt, completion, total) to ``total``."""
    for key, value in (data.get("usage") or {}).items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def _choices(data: Mapping[str, Any], expected: int) -> list[Mapping[str, Any]]:
    choices = data.get("choices") if isinstance(data, Mapping) else None
    if not isinstance(choices, list) or len(choices) != expected:
        raise BackendError(
            f"unexpected response from the inference server: expected {expected} choice(s), "
            f"got {str(data)[:300]}"
        )
    return choices
