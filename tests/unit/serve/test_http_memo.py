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

from http_origin import origin

from pointsman.routing.table import Endpoint, RoutePool, RouteTable
from pointsman.serve import http1
from pointsman.serve.context import ServeContext

FIRST = b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n"
SECOND = b"GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n"


class WeakTable(RouteTable):
    """A route table a test can hold a weak reference to."""

    __slots__ = ("__weakref__",)


async def _exchange(loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read its whole response (Content-Length framed)."""
    await loop.sock_sendall(sock, request)
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                return data
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        if not chunk:
            return data
        data += chunk


async def test_a_remembered_head_does_not_keep_a_replaced_route_table_alive(
        http_proxy: tuple[http1.HttpServer, ServeContext]) -> None:
    server, ctx = http_proxy
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


async def test_a_rebuilt_table_of_the_same_version_routes_a_remembered_head_anew(
        http_proxy: tuple[http1.HttpServer, ServeContext]) -> None:
    """A reload-like rebuild starts again at version 0: the head's route must follow it."""
    server, ctx = http_proxy
    loop = asyncio.get_running_loop()
    other = await asyncio.start_server(origin(b"b"), "127.0.0.1", 0)
    port = other.sockets[0].getsockname()[1]
    sock = socket.create_connection(server.addresses[0])
    sock.setblocking(False)
    try:
        assert b"X-Origin: a" in await _exchange(loop, sock, FIRST)
        assert b"X-Origin: a" in await _exchange(loop, sock, FIRST)  # the remembered head
        version = ctx.routes.table.version
        rebuilt = RouteTable.build([RoutePool("app.test", (Endpoint("127.0.0.1", port),))],
                                   version)
        ctx.routes.table = rebuilt
        assert b"X-Origin: b" in await _exchange(loop, sock, FIRST)
        ctx.routes.table = rebuilt.with_changes([], ["app.test"])
        assert b"404" in (await _exchange(loop, sock, FIRST)).split(b"\r\n", 1)[0]
    finally:
        sock.close()
        other.close()


async def _head_aware(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The same response head to every request; no body after it for HEAD."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            body = b"" if head.startswith(b"HEAD ") else b"ok"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def test_a_known_response_head_answering_head_is_framed_without_its_body(
        http_proxy: tuple[http1.HttpServer, ServeContext]) -> None:
    """GET, HEAD, GET on one kept-alive upstream: the HEAD response's head is a known one."""
    server, ctx = http_proxy
    loop = asyncio.get_running_loop()
    origin = await asyncio.start_server(_head_aware, "127.0.0.1", 0)
    port = origin.sockets[0].getsockname()[1]
    ctx.routes.table = RouteTable.build([RoutePool("app.test", (Endpoint("127.0.0.1", port),))])
    sock = socket.create_connection(server.addresses[0])
    sock.setblocking(False)
    try:
        for _ in range(2):
            assert (await _exchange(loop, sock, FIRST)).endswith(b"\r\n\r\nok")
            await loop.sock_sendall(sock, FIRST.replace(b"GET", b"HEAD"))
            answer = b""
            while not answer.endswith(b"\r\n\r\n"):
                answer += await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            assert answer.startswith(b"HTTP/1.1 200") and b"Content-Length: 2" in answer
        assert (await _exchange(loop, sock, SECOND)).endswith(b"\r\n\r\nok")
    finally:
        sock.close()
        origin.close()
