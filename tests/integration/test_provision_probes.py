"""Readiness probes against real listeners on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pointsman.upstream.providers.base import free_port, http_probe, tcp_probe

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


def answer(status: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return handler


async def test_tcp_probe(serve: Callable[[Handler], Awaitable[int]]) -> None:
    assert not await tcp_probe("127.0.0.1", free_port(), 0.5)  # nobody listens
    holding = await serve(hold)
    assert await tcp_probe("127.0.0.1", holding, 0.5)
    assert await tcp_probe("127.0.0.1", holding, 0.5, settle=0.05)


async def test_tcp_probe_settle_sees_a_forwarder_hanging_up(
        serve: Callable[[Handler], Awaitable[int]]) -> None:
    forwarder = await serve(hang_up)  # accepts, then closes: nothing behind it yet
    assert await tcp_probe("127.0.0.1", forwarder, 0.5)
    assert not await tcp_probe("127.0.0.1", forwarder, 0.5, settle=0.1)


async def test_http_probe_wants_2xx(serve: Callable[[Handler], Awaitable[int]]) -> None:
    assert await http_probe("127.0.0.1", await serve(answer(b"204 No Content")), "/h", 0.5)
    assert not await http_probe("127.0.0.1", await serve(answer(b"503 Busy")), "/h", 0.5)
    assert not await http_probe("127.0.0.1", await serve(hang_up), "/h", 0.5)
    assert not await http_probe("127.0.0.1", await serve(hold), "/h", 0.2)  # no answer in time
