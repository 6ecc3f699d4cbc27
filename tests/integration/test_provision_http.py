"""HTTP routes on a provision upstream lease a backend per client connection.

Every request of one kept-alive client connection goes to the same backend
(the access log names it), another connection gets another backend, and the
backend is stopped when its client connection ends: closed by the client, or
by the keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

from provision_support import WSECHO, terminal_labels, terminal_upstream, unique_instance

from harness import Pointsman
from pointsman.upstream.providers.process import processes_with_env

COUNTING_APP = Path(__file__).with_name("counting_app.py")


def config_text(instance: str, app: Path = WSECHO) -> str:
    return """
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"

[listeners.limits]
keepalive_timeout = 1.0

[[listeners.routes]]
host = "127.0.0.1"
upstream = "terminal"

""" + terminal_upstream(instance, app, max_live=4)


def alive(instance: str, backend_id: str) -> bool:
    return bool(processes_with_env({**terminal_labels(instance), "POINTSMAN_BACKEND": backend_id}))


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def get(sock: socket.socket, port: int) -> bytes:
    """One kept-alive GET /health on ``sock``; the whole response (Content-Length 3)."""
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while not data.endswith(b"\r\n\r\nok\n"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


async def test_a_kept_alive_connection_keeps_its_backend_until_it_ends(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(config_text(instance))))
    host, port = proxy.address("web")
    loop = asyncio.get_running_loop()
    first = socket.create_connection((host, port), timeout=10)
    second = socket.create_connection((host, port), timeout=10)
    try:
        for sock in (first, first, second, first, second):
            response = await loop.run_in_executor(None, get, sock, port)
            assert response.startswith(b"HTTP/1.1 200") and b"Connection: close" not in response
        records = proxy.wait_access(5)
        ids = [record["backend_id"] for record in records]
        one, two = ids[0], ids[2]
        assert ids == [one, one, two, one, two] and one != two
        # between requests the connection holds its backend
        assert alive(instance, one) and alive(instance, two)
        first.close()
        await wait_for(lambda: not alive(instance, one))
        assert alive(instance, two)
        # an idle connection is closed by the keep-alive timeout, and its backend goes
        await wait_for(lambda: not alive(instance, two), timeout=5.0)
        assert second.recv(1) == b""
        await wait_for(lambda: len(processes_with_env(terminal_labels(instance))) == 1)  # the spare
    finally:
        first.close()
        second.close()
        proxy.stop()
    assert processes_with_env(terminal_labels(instance)) == []


def get_text(sock: socket.socket, port: int, path: str) -> bytes:
    """One kept-alive GET on ``sock``; the body (Content-Length framing)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


async def test_requests_of_one_connection_reuse_one_upstream_connection(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(config_text(instance, COUNTING_APP))))
    host, port = proxy.address("web")
    loop = asyncio.get_running_loop()
    first = socket.create_connection((host, port), timeout=10)
    second = socket.create_connection((host, port), timeout=10)
    try:
        seen = [await loop.run_in_executor(None, get_text, sock, port, "/count")
                for sock in (first, first, first, second, second)]
        # each backend was probed (one connection) and then served its client
        # connection over one kept-alive upstream connection
        assert seen == [b"connections=2"] * 5
        ids = [record["backend_id"] for record in proxy.wait_access(5)]
        assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4]
    finally:
        first.close()
        second.close()
        proxy.stop()
    assert processes_with_env(terminal_labels(instance)) == []
