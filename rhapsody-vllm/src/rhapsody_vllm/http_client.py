"""JSON over HTTP to an OpenAI-compatible server (aiohttp), with errors sorted into the two
kinds the backend treats differently: the server answered with an error (the task fails with
its message), or the server could not be reached (the request may be retried elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from rhapsody.api import BackendError


class InferenceRequestError(BackendError):
    """The inference server answered a request with an HTTP error; ``message`` is its own."""

    def __init__(self, url: str, status: int, message: str) -> None:
        self.url, self.status, self.message = url, status, message
        super().__init__(f"inference server {url} answered HTTP {status}: {message}")


class ServerUnreachable(Exception):
    """The connection failed or broke before a complete answer (the server may have died)."""


class InferenceTimeoutError(BackendError, TimeoutError):
    """The inference server did not answer a request within the backend's request timeout."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        super().__init__(
            f"inference server {url} did not answer within {timeout:g}s (the backend's "
            "request_timeout)"
        )


def describe(exc: BaseException) -> str:
    """An error's message, or its type when it has none (a timeout's is empty)."""
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "no answer in time (timed out)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


KEEPALIVE_SECONDS = 3.0  # below servers' usual idle timeouts (uvicorn's default: 5 s)


def new_http_session(max_connections: int, fresh: bool = False) -> aiohttp.ClientSession:
    """Requests share keep-alive connections; ``fresh``: each its own new connection, closed
    after it (for retries and health checks: a kept connection a server has dropped, or one to
    a server since restarted on the same port, fails a request however healthy the server is)."""
    if fresh:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, force_close=True)
    else:
        # Idle connections closed here before the server closes them (vLLM's uvicorn: after 5 s
        # idle): a request sent on a connection the server is closing at that moment fails
        # with "Server disconnected" (and takes a retry) however healthy the server is.
        connector = aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
        )
    # No overall timeout: a generation may take long; tasks have their own ``timeout``.
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), raise_for_status=False
    )


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


async def post_json(
    http: aiohttp.ClientSession,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    timeout: float | None = None,
) -> Any:
    """POST ``body`` as JSON and return the decoded answer; :class:`InferenceTimeoutError` when
    no complete answer came within ``timeout`` seconds (None: wait as long as it takes)."""
    try:
        async with http.post(
            url,
            data=json.dumps(body),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except TimeoutError as exc:
        raise InferenceTimeoutError(url, timeout or 0.0) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise ServerUnreachable(f"{url}: {describe(exc)}") from exc
    if status >= 400:
        raise InferenceRequestError(url, status, _server_message(raw))
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BackendError(f"inference server {url} sent invalid JSON: {raw[:200]!r}") from exc


async def get_json(
    http: aiohttp.ClientSession, url: str, headers: Mapping[str, str], timeout: float = 10.0
) -> Any:
    try:
        async with http.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServerUnreachable(f"{url}: {describe(exc)}") from exc
    if status >= 400:
        raise InferenceRequestError(url, status, _server_message(raw))
    return json.loads(raw)


async def is_healthy(http: aiohttp.ClientSession, root: str, timeout: float = 5.0) -> bool:
    """True when ``root/health`` answers 200 within ``timeout`` seconds."""
    try:
        async with http.get(f"{root}/health", timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _server_message(raw: bytes) -> str:
    text = raw.decode(errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:2000] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return text.strip()[:2000]
