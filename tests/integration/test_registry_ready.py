"""``ready`` means routable: a registration published the moment it is seen is routed.

With ``[nats]`` the leader (the process that subscribes to ``router.*``)
announces ``ready`` only once the server has processed its subscriptions,
so a gorouter client may publish at once. These tests do exactly that, with
no sleep and no other event in between, over several fresh starts and over a
link to NATS slow enough that the connection takes longer than a first
attempt's timeout. An unreachable NATS still gives ``ready`` within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httpkit import Backend, backend_of, dead_address, get
from nats.aio.client import Client

from harness import NatsServer, Pointsman, ThreadedServer
from pointsman.discovery.nats_registry import CONNECT_TIMEOUT, READY_WAIT

Factory = Callable[..., Pointsman]
WriteConfig = Callable[[str], Path]

STARTS = 5
ROUTABLE_WITHIN = 5.0
SLOW_LINK = 1.1
"""Seconds every server-to-client chunk is held back on the slow link.

The handshake then takes two of these (INFO, then the PONG to CONNECT) and
the subscriptions a third: longer than a single attempt's ``CONNECT_TIMEOUT``
before they are in place, well within ``READY_WAIT``.
"""
START_SLACK = 5.0
"""Interpreter start-up, workers' fork and bind, on a busy machine: beside the NATS wait."""


def config(servers: list[str], static_backend: str) -> str:
    return f"""
[nats]
servers = {json.dumps(servers)}
routes_bucket = ""

[process]
workers = 2

[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"

[[listeners.routes]]
host = "static.example.com"
endpoints = ["{static_backend}"]

[logging]
access = "off"
"""


def registration(uri: str, backend: Backend) -> bytes:
    host, _, port = backend.address.rpartition(":")
    return json.dumps({"host": host, "port": int(port), "uris": [uri], "app": "app-guid",
                       "private_instance_id": backend.address}).encode()


@pytest.fixture
def backend() -> Iterator[Backend]:
    started = Backend("app")
    yield started
    started.close()


async def routed_to(address: tuple[str, int], host: str, timeout: float) -> str:
    """The backend that answers ``host`` once it is routed; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = await asyncio.to_thread(get, address, host)
        if status == 200:
            return backend_of(body)
        assert status == 404, status
        assert time.monotonic() < deadline, f"{host} never routed: registration lost"
        await asyncio.sleep(0.01)


async def start_and_register(start: Callable[[], Pointsman], client: Client, uri: str,
                             backend: Backend) -> Pointsman:
    """Start pointsman; the moment ``ready`` is seen, register ``uri``; wait until routed."""
    handle = await asyncio.to_thread(start)  # returns as soon as "ready" is read
    await client.publish("router.register", registration(uri, backend))
    await client.flush()
    assert await routed_to(handle.address("web"), uri, ROUTABLE_WITHIN) == "app"
    ready = handle.wait_event("ready")
    assert ready["nats_subscribed"] is True
    assert not [e for e in handle.events if e.get("event") == "nats_unavailable"]
    return handle


async def test_registration_published_at_ready_is_routed_on_every_start(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backend: Backend) -> None:
    path = str(write_config(config([nats_server.url], backend.address)))
    for attempt in range(STARTS):
        handle = await start_and_register(lambda: pointsman("serve", "-c", path), client,
                                          f"start-{attempt}.example.com", backend)
        assert handle.stop() == 0


class SlowLink:
    """A TCP relay to NATS that holds every server-to-client chunk back ``delay`` seconds.

    Client-to-server bytes pass at once; chunks keep their order. A real relay
    between two real sockets: pointsman sees a slow network, nothing else.
    """

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.server = ThreadedServer(self._relay)

    @property
    def url(self) -> str:
        return f"nats://{self.server.address}"

    def _relay(self, client: socket.socket) -> None:
        with socket.create_connection(self.target) as upstream:
            threads = [threading.Thread(target=_pump, args=(client, upstream, 0.0), daemon=True),
                       threading.Thread(target=_pump, args=(upstream, client, self.delay),
                                        daemon=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)

    def close(self) -> None:
        self.server.close()


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def deliver() -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)

    writer = threading.Thread(target=deliver, daemon=True)
    writer.start()
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            chunks.put((time.monotonic() + delay, data))
    chunks.put((time.monotonic() + delay, b""))
    writer.join(60)


@pytest.fixture
def slow_link(nats_server: NatsServer) -> Iterator[SlowLink]:
    link = SlowLink(("127.0.0.1", nats_server.port), SLOW_LINK)
    yield link
    link.close()


async def test_slow_link_to_nats_ready_waits_for_the_subscriptions(
        slow_link: SlowLink, client: Client, pointsman: Factory,
        write_config: WriteConfig, backend: Backend) -> None:
    path = str(write_config(config([slow_link.url], backend.address)))
    started = time.monotonic()
    handle = await start_and_register(lambda: pointsman("serve", "-c", path), client,
                                      "slow.example.com", backend)
    # The wait really was longer than one connection attempt's timeout.
    assert time.monotonic() - started > CONNECT_TIMEOUT
    assert handle.wait_event("nats_connected")


class Silent:
    """A port that accepts TCP connections (in the backlog) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=16)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["refused", "silent", "both"])
async def test_unreachable_nats_ready_within_the_bound(
        kind: str, pointsman: Factory, write_config: WriteConfig, backend: Backend) -> None:
    silent = Silent()
    servers = {"refused": [f"nats://{dead_address()}"], "silent": [silent.url],
               "both": [f"nats://{dead_address()}", silent.url]}[kind]
    path = str(write_config(config(servers, backend.address)))
    started = time.monotonic()
    handle = await asyncio.to_thread(pointsman, "serve", "-c", path)
    elapsed = time.monotonic() - started
    try:
        assert elapsed < READY_WAIT + START_SLACK, f"ready after {elapsed:.1f}s"
        ready = handle.wait_event("ready")
        assert ready["nats_subscribed"] is False
        warning = handle.wait_event("nats_unavailable")
        assert warning["level"] == "warning" and warning["servers"] == servers
        assert handle.events.index(warning) < handle.events.index(ready)
        # File routes serve as they always did.
        status, _, body = await asyncio.to_thread(get, handle.address("web"),
                                                  "static.example.com")
        assert status == 200 and backend_of(body) == "app"
    finally:
        handle.stop()
        silent.sock.close()
