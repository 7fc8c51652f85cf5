"""The backend's HTTP sessions: idle kept-alive connections are closed by us before the server
closes them (a request sent on a connection the server is closing fails however healthy the
server is)."""

from __future__ import annotations

import asyncio

import pytest

from rhapsody_vllm import http_client


class IdleClosingServer:
    """A minimal HTTP/1.1 server that answers ``{}`` and closes a connection idle for
    ``idle`` seconds (as uvicorn does after 5 s); it records who closed each connection."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.closed_by: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        who = "server"
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle)
                except TimeoutError:
                    break  # idle too long: the server closes it
                except asyncio.IncompleteReadError:
                    who = "client"  # end of input: the client closed it first
                    break
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
        finally:
            self.closed_by.append(who)
            writer.close()


async def test_idle_connections_are_closed_by_us_before_the_server_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the server drops idle connections after 1 s; ours are kept 0.3 s (in real use: 3 s,
    # against uvicorn's 5 s)
    monkeypatch.setattr(http_client, "KEEPALIVE_SECONDS", 0.3)
    server_side = IdleClosingServer(idle=1.0)
    server = await asyncio.start_server(server_side.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/completions"
    http = http_client.new_http_session(4)
    headers = http_client.auth_headers(None)
    try:
        assert await http_client.post_json(http, url, {"prompt": "a"}, headers, 10) == {}
        await asyncio.sleep(0.7)  # idle past our keep-alive, not past the server's
        assert server_side.closed_by == ["client"]  # we let it go, before the server would
        assert await http_client.post_json(http, url, {"prompt": "b"}, headers, 10) == {}
    finally:
        await http.close()
        server.close()
        await server.wait_closed()
    await asyncio.sleep(0.1)
    assert server_side.closed_by[0] == "client" and len(server_side.closed_by) == 2
