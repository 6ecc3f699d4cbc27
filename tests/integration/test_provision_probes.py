"""Readiness probes against real listeners on 127.0.0.1, and announce readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from provision_support import PrintEvents, provision_config, unique_instance

from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.providers.base import (
    free_port,
    http_probe,
    service_instance_id,
    tcp_probe,
)
from pointsman.upstream.provision import Phase

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


def announce_pool(command: list[str], **pool: object) -> ProvisionPool:
    config = provision_config({"kind": "process", "command": command, "grace": 0.5},
                              probe={"kind": "announce", "interval": 0.02}, **pool)
    return ProvisionPool("svc", config, instance=unique_instance(), events=PrintEvents())


async def test_announce_readiness_waits_for_the_announcement() -> None:
    """Ready only once ``announced`` names the backend's instance id (a gateway's call)."""
    pool = announce_pool(["sleep", "30"], warm=1, start_timeout=10.0)
    await pool.open()
    try:
        await pool.wait_until(lambda p: p.count(Phase.STARTING) == 1, 5)
        await asyncio.sleep(0.2)
        assert pool.count(Phase.READY) == 0  # running, but it said nothing yet
        pool.announced("some-other-instance")
        await asyncio.sleep(0.1)
        assert pool.count(Phase.READY) == 0
        backend_id = next(iter(pool.machine.backends))
        pool.announced(service_instance_id(backend_id))
        await pool.wait_until(lambda p: p.count(Phase.READY) == 1, 5)
        lease = await pool.acquire(timeout=0)
        assert lease.instance_id == service_instance_id(backend_id)
        lease.release()
    finally:
        await pool.close()


async def test_announce_readiness_fails_when_the_process_exits_or_stays_silent() -> None:
    exits = announce_pool(["sh", "-c", "exit 3"], warm=1, start_timeout=10.0)
    silent = announce_pool(["sleep", "30"], warm=1, start_timeout=0.3)
    await exits.open()
    await silent.open()
    try:
        await exits.wait_until(lambda p: p.machine.counters.failures.get("exited", 0) >= 1, 5)
        await silent.wait_until(
            lambda p: p.machine.counters.failures.get("probe_timeout", 0) >= 1, 5)
    finally:
        await exits.close()
        await silent.close()
