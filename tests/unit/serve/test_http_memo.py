"""What the HTTP listener remembers about request heads it has seen, held to what it may keep.

Heads a client repeats byte for byte are remembered per listener, with the
route found for them. Route tables come and go with every registration: a
remembered head must not keep a replaced table (all its hosts) alive.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pointsman.config import HttpListener, HttpRoute
from pointsman.routing.table import RoutePool, RouteTable
from pointsman.serve import http1
from pointsman.serve.context import ServeContext
from pointsman.serve.poller import Poller

FIRST = b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n"
SECOND = b"GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n"


class Quiet:
    enabled = False

    def write(self, record: dict[str, Any]) -> None: ...

    def count(self, listener: str, error: bool) -> None: ...

    def wants(self, level: str) -> bool:
        return False

    def event(self, level: str, name: str, **fields: Any) -> None: ...


class WeakTable(RouteTable):
    """A route table a test can hold a weak reference to."""

    __slots__ = ("__weakref__",)


async def _origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[http1.HttpServer, ServeContext]]:
    loop = asyncio.get_running_loop()
    origin = await asyncio.start_server(_origin, "127.0.0.1", 0)
    port = origin.sockets[0].getsockname()[1]
    ctx = ServeContext(loop=loop, poller=Poller(loop), access=Quiet(), events=Quiet())
    config = HttpListener(name="web", listen="127.0.0.1:0", routes=[
        HttpRoute(host="app.test", endpoints=[f"127.0.0.1:{port}"])])
    server = await http1.start(config, ctx)
    yield server, ctx
    await server.drain(1.0)
    origin.close()
    ctx.poller.close()


async def _exchange(loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes) -> bytes:
    await loop.sock_sendall(sock, request)
    data = b""
    while not data.endswith(b"ok"):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        if not chunk:
            break
        data += chunk
    return data


async def test_a_remembered_head_does_not_keep_a_replaced_route_table_alive(
        proxy: tuple[http1.HttpServer, ServeContext]) -> None:
    server, ctx = proxy
    loop = asyncio.get_running_loop()
    old = WeakTable.build(list(ctx.routes.table))
    ctx.routes.table = old
    sock = socket.create_connection(server.addresses[0])
    sock.setblocking(False)
    try:
        assert (await _exchange(loop, sock, FIRST)).startswith(b"HTTP/1.1 200")
        assert FIRST in server.known_requests
        # A registration elsewhere: the next snapshot, sharing this route's pool.
        ctx.routes.table = old.with_changes([RoutePool("other.test", ())], [])
        assert (await _exchange(loop, sock, SECOND)).startswith(b"HTTP/1.1 200")
        gone = weakref.ref(old)
        del old
        gc.collect()
        assert gone() is None
        # The remembered head still routes, by the table in force.
        assert (await _exchange(loop, sock, FIRST)).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()
