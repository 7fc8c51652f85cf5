"""Every request has a bound: an endpoint that accepts connections and never answers fails the
task (no task ``timeout`` needed), and endpoint-mode start-up errors say why. Real HTTP servers
on loopback (aiohttp), standing in for a hung inference server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from rhapsody.api import AITask, BackendError, Session, TaskState
from rhapsody_vllm import InferenceTimeoutError, VllmInferenceBackend

pytestmark = pytest.mark.timeout(60)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1"


@pytest_asyncio.fixture
async def hung_server() -> AsyncIterator[str]:
    """Lists a model, then never answers a completion."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "hung-model"}]})

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", never)
    app.router.add_post("/v1/chat/completions", never)
    runner, url = await _serve(app)
    yield url
    await runner.cleanup()


@pytest_asyncio.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts TCP connections and says nothing at all."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_request_that_is_never_answered_fails_its_task(hung_server):
    backend = VllmInferenceBackend(endpoint=hung_server, request_timeout=1)
    async with Session(backends=[backend]) as session:
        tasks = [AITask(prompt="hello"), AITask(prompt="hi", system_prompt="be brief")]
        start = time.monotonic()
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=30)
    assert time.monotonic() - start < 15
    for task in tasks:
        assert task.state is TaskState.FAILED
        assert isinstance(task.exception, InferenceTimeoutError)
        assert "did not answer within 1s" in str(task.exception)


def test_the_default_request_timeout_is_bounded():
    backend = VllmInferenceBackend(endpoint="http://127.0.0.1:9/v1")
    assert backend._request_timeout is not None and backend._request_timeout <= 3600
    with pytest.raises(BackendError, match="request_timeout"):
        VllmInferenceBackend(endpoint="http://127.0.0.1:9/v1", request_timeout=-1)


async def test_endpoint_start_up_says_why_it_failed(silent_server):
    backend = VllmInferenceBackend(endpoint=silent_server, request_timeout=1)
    with pytest.raises(BackendError) as info:
        await backend
    message = str(info.value)
    assert "cannot be reached" in message
    assert "timed out" in message and not message.rstrip().endswith(":")
    await backend.shutdown()
