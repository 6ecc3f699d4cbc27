"""TLS from the HTTP listener to backends registered with ``tls_port`` (and file routes).

Real nats-server, real TLS backends (certificates from ``trustme``), pointsman
in between: the certificate is checked against the configured CA and against
``server_cert_domain_san`` (else the host), failures answer gorouter's
525 / 503 / 526 after trying the other endpoints, and keep-alive connections
to a TLS backend are reused. Also gorouter's per-instance request fields and
``X-Cf-RouterError``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from httpkit import Backend, dead_address, get, header_values, read_response
from nats.aio.client import Client
from registry_support import (
    admin_call,
    admin_url,
    router_config,
    routes,
    wait_until,
)

from harness import NatsServer, Pointsman

Factory = Callable[..., Pointsman]
WriteConfig = Callable[..., Path]

SAN = "app.internal"


class _TlsHandler(BaseHTTPRequestHandler):
    """Answers JSON saying what it saw: its name, the TLS session, the fields."""

    protocol_version = "HTTP/1.1"
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        connection = self.connection
        assert isinstance(connection, ssl.SSLSocket)
        if self.path == "/echo":
            self._echo()
            return
        body = json.dumps({
            "backend": self.server.name,
            "tls": connection.version(),
            "peer_cert": connection.getpeercert() is not None
            and bool(connection.getpeercert()),
            "headers": [[k, v] for k, v in self.headers.items()],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


    def _echo(self) -> None:
        """An upgraded connection that sends back what it reads, until EOF."""
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "echo")
        self.end_headers()
        self.wfile.flush()
        while data := self.rfile.read1(65536):
            self.wfile.write(data)
        self.close_connection = True


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _TlsHandler)
        self.name = name
        self.handshakes = 0
        self.names: list[str | None] = []
        self.lock = threading.Lock()
        context.sni_callback = self._sni
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def _sni(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        with self.lock:
            self.handshakes += 1
            self.names.append(name)


class TlsBackend:
    """An HTTPS/1.1 backend on 127.0.0.1 whose certificate ``ca`` issued for ``names``."""

    def __init__(self, name: str, ca: trustme.CA, *names: str,
                 client_ca: trustme.CA | None = None) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        if client_ca is not None:
            client_ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        self.server = _TlsServer(name, context)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def handshakes(self) -> int:
        return self.server.handshakes

    @property
    def names(self) -> list[str | None]:
        return list(self.server.names)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config(nats_url: str) -> str:
    return router_config(nats_url, listener='[listeners.backends]\nca_file = "ca.pem"\n\n'
                                            '[listeners.limits]\nconnect_timeout = 1.0\n')


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_backends(ca: trustme.CA) -> Iterator[Callable[..., TlsBackend]]:
    started: list[TlsBackend] = []

    def factory(name: str, *names: str, issuer: trustme.CA | None = None,
                client_ca: trustme.CA | None = None) -> TlsBackend:
        backend = TlsBackend(name, issuer or ca, *names, client_ca=client_ca)
        started.append(backend)
        return backend

    yield factory
    for backend in started:
        backend.close()


@pytest.fixture
def plain_backend() -> Iterator[Backend]:
    backend = Backend("plain")
    yield backend
    backend.close()


@pytest.fixture
def web(nats_server: NatsServer, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, tmp_path: Path) -> tuple[tuple[str, int], str]:
    """pointsman trusting ``ca`` for backends, listening on NATS: (listener, admin base)."""
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url))))
    handle.wait_event("nats_connected")
    return handle.address("web"), admin_url(handle)


async def register(client: Client, uri: str, port: int, **fields: object) -> None:
    message = {"host": "127.0.0.1", "tls_port": port, "uris": [uri], "app": "app-guid",
               **fields}
    await client.publish("router.register", json.dumps(message).encode())
    await client.flush()


async def fetch(address: tuple[str, int], host: str,
                path: str = "/") -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, address, host, path)


async def routed(address: tuple[str, int], host: str) -> tuple[int, dict[str, str], bytes]:
    """The first answer for ``host`` that is not the 404 of a route not yet registered."""
    deadline = time.monotonic() + 5
    while True:
        status, headers, body = await fetch(address, host)
        if status != 404 or time.monotonic() > deadline:
            return status, headers, body
        await asyncio.sleep(0.02)


def upstream_errors(base: str, kind: str) -> float:
    status, text = admin_call(base, "GET", "/metrics")
    assert status == 200
    found = re.search(
        rf'pointsman_http_upstream_errors_total\{{kind="{kind}",listener="web"\}} (\S+)', text)
    return float(found[1]) if found else 0.0


async def test_tls_port_registration_is_proxied_over_tls_and_kept_alive(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend]) -> None:
    address, _ = web
    backend = tls_backends("secure", SAN)
    await register(client, "secure.example.com", backend.port, server_cert_domain_san=SAN,
                   private_instance_id="instance-7", private_instance_index="3")
    status, _, body = await routed(address, "secure.example.com")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["backend"] == "secure" and seen["tls"].startswith("TLSv1.")
    assert header_values(body, "X-CF-ApplicationID") == ["app-guid"]
    assert header_values(body, "X-CF-InstanceID") == ["instance-7"]
    assert header_values(body, "X-CF-InstanceIndex") == ["3"]
    for i in range(4):
        status, _, body = await fetch(address, "secure.example.com", f"/again{i}")
        assert status == 200 and json.loads(body)["backend"] == "secure"
    # One handshake for five requests: the connection went back to the pool each time,
    # and the SNI sent was the SAN the certificate was checked against.
    assert backend.handshakes == 1
    assert backend.names == [SAN]


async def test_certificate_must_name_the_san_else_the_host(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend]) -> None:
    address, base = web
    # No SAN in the registration: the host (127.0.0.1) is checked, and the certificate
    # names only app.internal. (Two backends: a failed endpoint sits out for a while.)
    await register(client, "by-host.example.com", tls_backends("named", SAN).port)
    await register(client, "by-other.example.com", tls_backends("other", SAN).port,
                   server_cert_domain_san="other.internal")
    for host in ("by-host.example.com", "by-other.example.com"):
        status, headers, _ = await routed(address, host)
        assert status == 503
        assert headers["x-pointsman-error"] == "backend_invalid_id"
        assert headers["x-cf-routererror"] == "backend_invalid_id"
    assert upstream_errors(base, "backend_invalid_id") >= 2
    # A certificate for the IP address passes when no SAN is registered.
    by_ip = tls_backends("by-ip", "127.0.0.1")
    await register(client, "ip.example.com", by_ip.port)
    status, _, body = await routed(address, "ip.example.com")
    assert status == 200 and json.loads(body)["backend"] == "by-ip"


async def test_untrusted_certificate_is_526(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend]) -> None:
    address, base = web
    stranger = tls_backends("stranger", SAN, issuer=trustme.CA())
    await register(client, "untrusted.example.com", stranger.port, server_cert_domain_san=SAN)
    status, headers, _ = await routed(address, "untrusted.example.com")
    assert status == 526
    assert headers["x-pointsman-error"] == "backend_invalid_tls_cert"
    assert headers["x-cf-routererror"] == "backend_invalid_tls_cert"
    assert upstream_errors(base, "backend_invalid_tls_cert") >= 1


async def test_backend_without_tls_is_525(
        web: tuple[tuple[str, int], str], client: Client, plain_backend: Backend) -> None:
    address, base = web
    await register(client, "plain.example.com", plain_backend.port)
    status, headers, _ = await routed(address, "plain.example.com")
    assert status == 525
    assert headers["x-pointsman-error"] == "backend_tls_handshake_failed"
    assert upstream_errors(base, "backend_tls_handshake_failed") >= 1


async def test_failed_tls_endpoint_is_retried_on_a_good_one(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend], plain_backend: Backend) -> None:
    address, base = web
    good = tls_backends("good", SAN)
    stranger = tls_backends("stranger", SAN, issuer=trustme.CA())
    for port in (stranger.port, plain_backend.port, good.port):
        await register(client, "mixed.example.com", port, server_cert_domain_san=SAN)
    await routed(address, "mixed.example.com")
    await asyncio.sleep(0.1)  # all three registrations are in the table by now
    for i in range(6):
        status, _, body = await fetch(address, "mixed.example.com", f"/r{i}")
        assert status == 200, body
        assert json.loads(body)["backend"] == "good"
    assert upstream_errors(base, "backend_invalid_tls_cert") >= 1
    assert upstream_errors(base, "backend_tls_handshake_failed") >= 1


def addresses(base: str, key: str, workers: bool = False) -> list[set[str]]:
    """The endpoints of route ``key``: in the leader's registry, or in each worker's table."""
    if not workers:
        return [{row["address"] for row in routes(base).get(key, [])}]
    tables = admin_call(base, "GET", "/routes?workers=1")[1]
    return [set(table["routes"].get(key, [])) for table in tables]


async def test_tls_endpoint_that_fails_leaves_the_table_until_it_registers_again(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend]) -> None:
    address, base = web
    good = tls_backends("good", SAN)
    stranger = tls_backends("stranger", SAN, issuer=trustme.CA())
    dead = int(dead_address().rsplit(":", 1)[1])
    for port in (stranger.port, dead, good.port):
        await register(client, "prune.example.com", port, server_cert_domain_san=SAN)
    all_three = {f"127.0.0.1:{port}" for port in (stranger.port, dead, good.port)}
    await asyncio.to_thread(wait_until, lambda: addresses(base, "prune.example.com", True)
                            == [all_three], 5.0)
    status, _, body = await routed(address, "prune.example.com")  # published by now
    assert status == 200 and json.loads(body)["backend"] == "good"
    for i in range(3):
        status, _, body = await fetch(address, "prune.example.com", f"/r{i}")
        assert status == 200 and json.loads(body)["backend"] == "good"
    # The untrusted and the dead endpoint failed once: gone from the leader and every worker.
    only_good = {f"127.0.0.1:{good.port}"}
    await asyncio.to_thread(wait_until, lambda: addresses(base, "prune.example.com")
                            == [only_good] and addresses(base, "prune.example.com", True)
                            == [only_good], 5.0)
    assert upstream_errors(base, "backend_invalid_tls_cert") == 1
    assert upstream_errors(base, "connect_failed") == 1
    # A heartbeat brings one back, as in gorouter.
    await register(client, "prune.example.com", stranger.port, server_cert_domain_san=SAN)
    both = {f"127.0.0.1:{stranger.port}", f"127.0.0.1:{good.port}"}
    await asyncio.to_thread(wait_until, lambda: addresses(base, "prune.example.com", True)
                            == [both], 5.0)


async def test_plain_registration_gets_instance_fields_and_404_says_router_error(
        web: tuple[tuple[str, int], str], client: Client, plain_backend: Backend) -> None:
    address, _ = web
    message = {"host": "127.0.0.1", "port": plain_backend.port, "uris": ["cf.example.com"],
               "app": "guid-1", "private_instance_index": "0"}
    await client.publish("router.register", json.dumps(message).encode())
    await client.flush()
    # A client cannot claim to be an instance: its own X-CF-InstanceID is replaced.
    status, _, body = await routed(address, "cf.example.com")
    assert status == 200
    assert header_values(body, "X-CF-ApplicationID") == ["guid-1"]
    assert header_values(body, "X-CF-InstanceIndex") == ["0"]
    assert header_values(body, "X-CF-InstanceID") == [plain_backend.address]
    status, _, body = await asyncio.to_thread(
        get, address, "cf.example.com", "/", {"X-CF-InstanceID": "forged"})
    assert header_values(body, "X-CF-InstanceID") == [plain_backend.address]

    status, headers, _ = await fetch(address, "nowhere.example.com")
    assert status == 404
    assert headers["x-pointsman-error"] == headers["x-cf-routererror"] == "unknown_route"


async def test_file_route_with_tls_and_client_certificate(
        pointsman: Factory, write_config: WriteConfig, ca: trustme.CA, tmp_path: Path,
        tls_backends: Callable[..., TlsBackend]) -> None:
    router_ca = trustme.CA()
    backend = tls_backends("mutual", SAN, client_ca=router_ca)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    router = router_ca.issue_cert("router.internal")
    router.cert_chain_pems[0].write_to_path(str(tmp_path / "router.pem"))
    router.private_key_pem.write_to_path(str(tmp_path / "router-key.pem"))
    text = f"""
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"

[listeners.backends]
ca_file = "ca.pem"
cert_file = "router.pem"
key_file = "router-key.pem"

[[listeners.routes]]
host = "mutual.example.com"
endpoints = ["127.0.0.1:{backend.port}"]
tls = true
server_name = "{SAN}"

[logging]
access = "off"
"""
    handle = pointsman("serve", "-c", str(write_config(text)))
    status, _, body = await fetch(handle.address("web"), "mutual.example.com")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["backend"] == "mutual" and seen["peer_cert"] is True


async def test_upgraded_connection_to_a_tls_backend_carries_bytes_both_ways(
        web: tuple[tuple[str, int], str], client: Client,
        tls_backends: Callable[..., TlsBackend]) -> None:
    address, _ = web
    backend = tls_backends("echo", SAN)
    await register(client, "echo.example.com", backend.port, server_cert_domain_san=SAN)
    assert (await routed(address, "echo.example.com"))[0] == 200

    def upgrade_and_echo() -> tuple[int, bytes]:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: echo.example.com\r\n"
                         b"Connection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            buffer = bytearray()
            status, _, _ = read_response(sock, buffer, head_only=True)
            sock.sendall(b"ping over tls")
            while len(buffer) < len(b"ping over tls"):
                buffer += sock.recv(65536)
            return status, bytes(buffer)

    assert await asyncio.to_thread(upgrade_and_echo) == (101, b"ping over tls")
