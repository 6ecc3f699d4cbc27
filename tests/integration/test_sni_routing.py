"""TLS routed by SNI (without terminating it) and plain HTTP by Host, on one port.

Two real TLS backends hold certificates from a trustme CA; the client verifies
the certificate of whichever backend it reaches, so landing on the wrong one
fails the handshake. The same listener routes HTTP/1.1 by Host through
``routers.first``.
"""

from __future__ import annotations

import socket
import ssl
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from harness import Pointsman, ThreadedServer


def tls_backend(name: str, ctx: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handle(sock: socket.socket) -> None:
        with ctx.wrap_socket(sock, server_side=True) as tls:
            tls.sendall(f"{name} {tls.selected_alpn_protocol()}".encode())
            tls.recv(1)

    return handle


def http_backend(sock: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return
        head += chunk
    body = b"plain http backend"
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


def tls_hello_through(address: tuple[str, int], name: str, ca: trustme.CA) -> str:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(address, timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return tls.recv(100).decode()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def test_sni_and_http_host_on_one_port(
    ca: trustme.CA,
    pointsman: Callable[..., Pointsman],
    write_config: Callable[[str, str], Path],
    echo_server: Callable[..., ThreadedServer],
) -> None:
    contexts = []
    for names in (["a.example"], ["*.b.example", "*.x.b.example"]):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(ctx)
        ctx.set_alpn_protocols(["http/1.1"])
        contexts.append(ctx)
    backend_a = echo_server(tls_backend("backend-a", contexts[0]))
    backend_b = echo_server(tls_backend("backend-b", contexts[1]))
    backend_http = echo_server(http_backend)
    tls_table = {"a.example": backend_a.address, "*.b.example": backend_b.address}
    http_table = {"www.example": backend_http.address}
    router = write_config(
        textwrap.dedent(f"""
        from pointsman import routers

        route = routers.first(routers.sni({tls_table!r}), routers.http_host({http_table!r}))
        """),
        "router.py",
    )
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    address = proxy.address("tcp")

    assert tls_hello_through(address, "a.example", ca) == "backend-a http/1.1"
    assert tls_hello_through(address, "x.b.example", ca) == "backend-b http/1.1"
    assert tls_hello_through(address, "deep.x.b.example", ca).startswith("backend-b")
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        tls_hello_through(address, "c.example", ca)

    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
            if reply.endswith(b"plain http backend"):
                break
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"plain http backend")

    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 404 Not Found")

    assert backend_a.connections == 1
    assert backend_b.connections == 2
    assert backend_http.connections == 1
