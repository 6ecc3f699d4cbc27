"""``NatsRegistry.start``: subscribed on return, or back within its bound without NATS.

In-process against a real nats-server (and a refused and a silent port), so
the timings are the registry's own, without an interpreter start around them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from harness import NatsServer
from pointsman.config import NatsConfig, RegistryConfig
from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.nats_registry import CONNECT_TIMEOUT, READY_WAIT, NatsRegistry
from pointsman.discovery.registry import Registry

BODY = json.dumps({"host": "127.0.0.1", "port": 9001, "uris": ["a.example.com"]}).encode()


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def event(self, level: str, name: str, **fields: Any) -> None:
        self.seen.append((level, name, fields))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.seen]


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


async def registry_on(servers: list[str], events: Events) -> tuple[NatsRegistry, Registry]:
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30,
                            publish_delay=0.001)
    driver.start()
    return NatsRegistry(NatsConfig(servers=servers), RegistryConfig(), driver, events), registry


async def until(check: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.005)


async def test_start_returns_subscribed_a_message_sent_at_once_is_applied(
        nats_server: NatsServer, client: Client) -> None:
    events = Events()
    nats_registry, registry = await registry_on([nats_server.url], events)
    try:
        assert await nats_registry.start() is True
        assert nats_registry.subscribed
        await client.publish("router.register", BODY)
        await client.flush()
        await until(lambda: registry.table.lookup("a.example.com", "/") is not None)
        assert "nats_connected" in events.names()
        assert "nats_unavailable" not in events.names()
    finally:
        await nats_registry.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_everywhere_returns_at_once_with_a_warning() -> None:
    events = Events()
    servers = [f"nats://127.0.0.1:{closed_port()}", f"nats://127.0.0.1:{closed_port()}"]
    nats_registry, _ = await registry_on(servers, events)
    started = time.monotonic()
    try:
        assert await nats_registry.start() is False
        assert time.monotonic() - started < READY_WAIT / 2
        assert not nats_registry.subscribed
        level, _, fields = next(e for e in events.seen if e[1] == "nats_unavailable")
        assert level == "warning" and fields["servers"] == servers
        assert fields["failed_attempts"] >= 2 and fields["connected"] is False
    finally:
        await nats_registry.stop()


async def test_a_silent_server_ends_the_wait_after_one_attempt_or_the_bound() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"nats://127.0.0.1:{silent.getsockname()[1]}"
        events = Events()
        nats_registry, _ = await registry_on([url], events)
        started = time.monotonic()
        try:
            assert await nats_registry.start() is False  # one attempt: CONNECT_TIMEOUT
            assert CONNECT_TIMEOUT * 0.9 < time.monotonic() - started < READY_WAIT
        finally:
            await nats_registry.stop()
        nats_registry, _ = await registry_on([url], events)
        started = time.monotonic()
        try:
            assert await nats_registry.start(wait=0.3) is False  # the bound comes first
            assert time.monotonic() - started < CONNECT_TIMEOUT * 0.9
        finally:
            await nats_registry.stop()
