"""Upgrade (WebSocket) and CONNECT through the HTTP proxy, and smuggling probes end to end."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httpkit import Backend, raw_exchange, read_response
from test_http_proxy import http_config
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from harness import Pointsman, ThreadedServer


@pytest.fixture
def ws_backend() -> Iterator[int]:
    def echo(conn: ServerConnection) -> None:
        for message in conn:
            conn.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield int(server.socket.getsockname()[1])
        server.shutdown()


def test_websocket_is_relayed_after_101(write_config: Callable[[str, str], Path],
                                        pointsman: Callable[..., Pointsman],
                                        ws_backend: int) -> None:
    config = write_config(http_config(
        [{"host": "127.0.0.1", "endpoints": [f"127.0.0.1:{ws_backend}"]}]), "p.toml")
    proxy = pointsman("serve", "-c", str(config))
    host, port = proxy.address("web")
    with connect(f"ws://{host}:{port}/chat", open_timeout=5) as ws:
        for size in (5, 70_000, 1_000_000):
            payload = b"x" * size
            ws.send(payload)
            assert ws.recv(timeout=5) == payload
        ws.send("text")
        assert ws.recv(timeout=5) == "text"


def _connect(address: tuple[str, int], target: str) -> tuple[socket.socket, int, bytearray]:
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    buffer = bytearray()
    status, _, _ = read_response(sock, buffer, head_only=True)
    return sock, status, buffer


def test_connect_allowed_and_refused(write_config: Callable[[str, str], Path],
                                     pointsman: Callable[..., Pointsman],
                                     echo_server: Callable[..., ThreadedServer]) -> None:
    allowed = echo_server()
    other = echo_server()
    config = write_config(http_config([], connect_allow=[allowed.address]), "p.toml")
    proxy = pointsman("serve", "-c", str(config))
    sock, status, buffer = _connect(proxy.address("web"), allowed.address)
    with sock:
        assert status == 200 and not buffer
        sock.sendall(b"ping through the tunnel")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while data := sock.recv(65536):
            received += data
        assert received == b"ping through the tunnel"
    sock, status, _ = _connect(proxy.address("web"), other.address)
    sock.close()
    assert status == 403


def test_connect_off_by_default(write_config: Callable[[str, str], Path],
                                pointsman: Callable[..., Pointsman],
                                echo_server: Callable[..., ThreadedServer]) -> None:
    target = echo_server()
    proxy = pointsman("serve", "-c", str(write_config(http_config([]), "p.toml")))
    sock, status, _ = _connect(proxy.address("web"), target.address)
    sock.close()
    assert status == 403 and target.connections == 0


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: s.test\r\n\r\n"
PROBES = [
    b"POST / HTTP/1.1\r\nHost: s.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n" + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n"
    + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: s.test\r\nContent-Length: 1\x00\r\n\r\nx" + SMUGGLED,
    b"POST / HTTP/1.0\r\nHost: s.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
]


def test_smuggling_probes_never_reach_the_backend(write_config: Callable[[str, str], Path],
                                                  pointsman: Callable[..., Pointsman]) -> None:
    backend = Backend("s")
    try:
        config = write_config(http_config([{"host": "s.test", "endpoints": [backend.address]}]),
                              "p.toml")
        proxy = pointsman("serve", "-c", str(config))
        for probe in PROBES:
            status, headers, _ = raw_exchange(proxy.address("web"), probe)
            assert status == 400, probe
            assert headers.get("connection") == "close"
        assert "/smuggled" not in backend.server.paths
        assert backend.requests == 0
    finally:
        backend.close()
