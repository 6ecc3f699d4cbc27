"""A draining HTTP listener answers requests already sent instead of resetting them.

The race this guards against: a client's request is in the kernel's buffer
when the drain starts, before the loop has read it. Closing that socket
would reset the connection and lose a request the client had sent. The
drain here starts in the same loop turn, before the request is read.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from pointsman.serve import http1
from pointsman.serve.context import ServeContext

REQUEST = b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n"


async def _response(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("kept_alive", [False, True], ids=["fresh", "kept-alive"])
async def test_request_sent_before_the_drain_is_answered(
        http_proxy: tuple[http1.HttpServer, ServeContext], kept_alive: bool) -> None:
    proxy = http_proxy[0]
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(proxy.addresses[0])
    sock.setblocking(False)
    try:
        if kept_alive:
            await loop.sock_sendall(sock, REQUEST)
            assert (await _response(loop, sock)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.05)  # accepted (and, kept alive, idle) on the proxy's side
        sock.send(REQUEST)  # in the proxy's kernel buffer, not read by the loop yet
        proxy.stop_accepting()
        drained = loop.create_task(proxy.drain(5.0))
        answer = await _response(loop, sock)
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        assert await asyncio.wait_for(loop.sock_recv(sock, 1), 5) == b""
        await asyncio.wait_for(drained, 5)
    finally:
        sock.close()


async def test_an_idle_kept_alive_connection_is_closed_at_once(
        http_proxy: tuple[http1.HttpServer, ServeContext]) -> None:
    proxy = http_proxy[0]
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(proxy.addresses[0])
    sock.setblocking(False)
    try:
        await loop.sock_sendall(sock, REQUEST)
        await _response(loop, sock)
        await asyncio.sleep(0.05)
        proxy.stop_accepting()
        await asyncio.wait_for(proxy.drain(5.0), 0.5)
        assert await asyncio.wait_for(loop.sock_recv(sock, 1), 5) == b""
    finally:
        sock.close()
