"""Route services end to end: NATS registrations, pointsman, a TLS route service, an app.

The route service is what Cloud Foundry route services are: a TLS server
that receives the request the router signed, checks the three ``X-CF-*``
headers, and calls the router back at ``X-CF-Forwarded-Url`` (on the router's
loopback port) with the signature and metadata, adding a header of its own,
then answers with the app's reply plus a header of its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from httpkit import Backend, get, header_values, raw_exchange
from nats.aio.client import Client
from registry_support import TOKEN, admin_call, admin_url

from harness import ROOT, NatsServer, Pointsman, free_port_number, wait_for_port

Factory = Callable[..., Pointsman]
WriteConfig = Callable[..., Path]

APP = "app.example.com"
READ_LIMIT = 1 << 20


class RouteService:
    """A TLS route service on 127.0.0.1 that sends each request back through a router."""

    def __init__(self, ca: trustme.CA | None) -> None:
        self.context: ssl.SSLContext | None = None
        if ca is not None:  # None: plain HTTP, as a route service app behind the router is
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.seen: list[tuple[str, str, dict[str, str], int]] = []
        self.router: tuple[str, int] = ("127.0.0.1", 0)  # where requests come back to
        self.tamper = False
        self.delay = 0.0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, path: str = "/check?mode=strict") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100):  # requests on one kept-alive connection, bounded
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append((method, target, headers, len(body)))
                status, reply_headers, reply = await self._call_back(method, headers, body)
                lines = [f"HTTP/1.1 {status} Relayed"]
                lines += [f"{k}: {v}" for k, v in reply_headers
                          if k.lower() not in ("content-length", "connection",
                                               "transfer-encoding")]
                lines += ["X-Route-Service-Was-Here: yes", f"Content-Length: {len(reply)}"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + reply)
                await writer.drain()
        finally:
            writer.close()

    async def _call_back(self, method: str, headers: dict[str, str],
                         body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        forwarded = urlsplit(headers["x-cf-forwarded-url"])
        signature = headers["x-cf-proxy-signature"]
        if self.tamper:
            raw = bytearray(base64.urlsafe_b64decode(signature))
            raw[0] ^= 0xFF
            signature = base64.urlsafe_b64encode(bytes(raw)).decode()
        if self.delay:
            await asyncio.sleep(self.delay)
        target = forwarded.path + (f"?{forwarded.query}" if forwarded.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {forwarded.hostname}",
                 f"X-CF-Forwarded-Url: {headers['x-cf-forwarded-url']}",
                 f"X-CF-Proxy-Signature: {signature}",
                 f"X-CF-Proxy-Metadata: {headers['x-cf-proxy-metadata']}",
                 "X-Route-Service: checked", f"Content-Length: {len(body)}",
                 "Connection: close"]
        reader, writer = await asyncio.open_connection(*self.router)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw_reply = await asyncio.wait_for(reader.read(READ_LIMIT), 10)
            while True:
                more = await asyncio.wait_for(reader.read(READ_LIMIT), 10)
                if not more:
                    break
                raw_reply += more
        finally:
            writer.close()
        head, _, reply = raw_reply.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        pairs = [(k.strip(), v.strip()) for k, _, v in (f.partition(":") for f in fields)]
        return int(status_line.split()[1]), pairs, reply


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *fields = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return method, target, headers


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def route_service(ca: trustme.CA) -> AsyncIterator[RouteService]:
    service = RouteService(ca)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def app() -> Iterator[Backend]:
    backend = Backend("app")
    yield backend
    backend.close()


def router(nats_url: str, ca_file: Path, services: str) -> str:
    """One HTTP listener trusting ``ca_file`` for backends, route services as given."""
    return f"""
[nats]
servers = ["{nats_url}"]

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"

[listeners.backends]
ca_file = "{ca_file}"

{services}

[logging]
access = "stdout"
"""


def start_router(pointsman: Factory, write_config: WriteConfig, name: str, nats_url: str,
                 ca: trustme.CA, services: str) -> tuple[Pointsman, tuple[str, int]]:
    ca_file = write_config(ca.cert_pem.bytes().decode(), f"ca-{name}.pem")
    handle = pointsman("serve", "-c", str(write_config(router(nats_url, ca_file, services),
                                                       f"{name}.toml")))
    assert handle.wait_event("ready")["nats_subscribed"] is True
    return handle, handle.address("web")


async def register(client: Client, app: Backend, service_url: str, uri: str = APP,
                   port: int = 0) -> None:
    host, _, own_port = app.address.rpartition(":")
    await client.publish("router.register", json.dumps({
        "host": host, "port": port or int(own_port), "uris": [uri], "app": "app-guid",
        "private_instance_id": "app-0", "route_service_url": service_url}).encode())
    await client.flush()


async def until_routed(address: tuple[str, int], host: str, path: str = "/",
                       timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """The first answer that is no longer 404 (the registration has arrived)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await asyncio.to_thread(get, address, host, path)
        if answer[0] != 404 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.02)


ON = '[listeners.route_services]\nsecret = "current-secret"\nrecommend_https = true\n'


async def test_a_request_goes_through_the_route_service_to_the_app(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend) -> None:
    handle, web = start_router(pointsman, write_config, "r", nats_server.url, ca, ON)
    route_service.router = web
    await register(client, app, route_service.url())
    status, headers, body = await until_routed(web, APP, "/hello?a=b")
    assert status == 200, body
    assert headers["x-route-service-was-here"] == "yes"
    # The app got the route service's header, and none of the signing headers.
    assert header_values(body, "X-Route-Service") == ["checked"]
    for name in ("X-CF-Proxy-Signature", "X-CF-Proxy-Metadata", "X-CF-Forwarded-Url"):
        assert header_values(body, name) == []
    assert json.loads(body)["path"] == "/hello?a=b"
    # The route service got the request at its own URL, signed for the app's.
    method, target, seen, _ = route_service.seen[-1]
    assert (method, target) == ("GET", "/check?mode=strict")
    assert seen["host"] == f"127.0.0.1:{route_service.port}"
    assert seen["x-cf-forwarded-url"] == f"https://{APP}/hello?a=b"
    assert seen["x-cf-proxy-signature"] and seen["x-cf-proxy-metadata"]
    # A body streams through both legs.
    payload = b"x" * 200_000
    request = (f"POST /upload HTTP/1.1\r\nHost: {APP}\r\nContent-Length: {len(payload)}\r\n"
               f"Connection: close\r\n\r\n").encode() + payload
    status, _, body = await asyncio.to_thread(raw_exchange, web, request)
    assert status == 200 and json.loads(body)["received"] == len(payload)
    assert route_service.seen[-1][3] == len(payload)
    # The access log names the route service as the first leg's backend.
    records = await asyncio.to_thread(handle.wait_access, 4)
    backends = {record["backend"] for record in records if record["route"] == APP}
    assert {f"127.0.0.1:{route_service.port}", app.address} <= backends
    # And so do the metrics: each request went out to the service and came back.
    status, text = await asyncio.to_thread(admin_call, admin_url(handle), "GET", "/metrics")
    assert status == 200
    for outcome in ("to_service", "returned"):
        assert (f'pointsman_http_route_service_requests_total{{listener="web",'
                f'outcome="{outcome}"}} 2.0') in text


@pytest.mark.parametrize(("settings", "delay", "tamper", "status", "error"), [
    ("timeout = 0.3\n", 0.6, False, 504, "expired_route_service_signature"),
    ("", 0.0, True, 502, "invalid_route_service_signature"),
], ids=["expired", "tampered"])
async def test_a_signature_that_does_not_hold_is_refused(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend,
        settings: str, delay: float, tamper: bool, status: int, error: str) -> None:
    _, web = start_router(pointsman, write_config, "r", nats_server.url, ca, ON + settings)
    route_service.router = web
    route_service.delay = delay
    route_service.tamper = tamper
    await register(client, app, route_service.url())
    answer, headers, _ = await until_routed(web, APP)
    assert answer == status
    assert headers["x-pointsman-error"] == error
    assert app.requests == 0


async def test_a_rotated_secret_is_still_accepted_while_it_is_decrypt_only(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend) -> None:
    # Two routers of one fleet mid-rotation: one still signs with the old secret, the
    # other signs with the new one and keeps the old for decryption only.
    _, old = start_router(pointsman, write_config, "old", nats_server.url, ca,
                          '[listeners.route_services]\nsecret = "old-secret"\n')
    _, new = start_router(pointsman, write_config, "new", nats_server.url, ca,
                          '[listeners.route_services]\nsecret = "new-secret"\n'
                          'secret_decrypt_only = "old-secret"\n')
    route_service.router = new
    await register(client, app, route_service.url())
    status, headers, body = await until_routed(old, APP)
    assert status == 200, body
    assert headers["x-route-service-was-here"] == "yes"
    # The other way round the old router has no key for the new secret.
    route_service.router = old
    status, headers, _ = await until_routed(new, APP)
    assert status == 502
    assert headers["x-pointsman-error"] == "invalid_route_service_signature"
    assert app.requests == 1


async def test_without_a_secret_route_service_routes_are_refused_as_today(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend) -> None:
    _, web = start_router(pointsman, write_config, "r", nats_server.url, ca, "")
    await register(client, app, route_service.url())
    status, headers, _ = await until_routed(web, APP)
    assert status == 502
    assert headers["x-pointsman-error"] == "route_service_unsupported"
    assert route_service.seen == [] and app.requests == 0


async def test_without_a_secret_a_guarded_path_does_not_fall_back_to_a_shorter_route(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend) -> None:
    """As gorouter: the longest route is the one that answers, with or without its service."""
    _, web = start_router(pointsman, write_config, "r", nats_server.url, ca, "")
    await register(client, app, route_service.url(), uri=APP + "/guarded")
    host, _, port = app.address.rpartition(":")
    await client.publish("router.register", json.dumps({
        "host": host, "port": int(port), "uris": [APP], "app": "app-guid"}).encode())
    await client.flush()
    assert (await until_routed(web, APP))[0] == 200  # both registrations are in
    status, headers, _ = await asyncio.to_thread(get, web, APP, "/guarded/page")
    assert (status, headers["x-pointsman-error"]) == (502, "route_service_unsupported")
    assert route_service.seen == [] and app.requests == 1


async def test_a_websocket_upgrade_on_a_route_service_route_gets_503(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, route_service: RouteService, app: Backend) -> None:
    _, web = start_router(pointsman, write_config, "r", nats_server.url, ca, ON)
    route_service.router = web
    await register(client, app, route_service.url())
    assert (await until_routed(web, APP))[0] == 200
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    status, headers, _ = await asyncio.to_thread(get, web, APP, "/ws", upgrade)
    assert status == 503
    assert headers["x-pointsman-error"] == "route_service_unsupported"
    assert len(route_service.seen) == 1 and app.requests == 1


async def test_a_route_service_that_is_a_route_of_this_router_is_reached_directly(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, app: Backend) -> None:
    # The service runs as an app behind the same router (plain HTTP, as CF apps are):
    # with hairpinning its URL's host is found in the route table, not in DNS.
    service = RouteService(None)
    await service.start()
    try:
        handle, web = start_router(pointsman, write_config, "r", nats_server.url, ca, ON)
        service.router = web
        await register(client, app, "", uri="rs.example.com", port=service.port)
        await register(client, app, "https://rs.example.com/check")
        status, headers, body = await until_routed(web, APP, "/x")
        assert status == 200, body
        assert headers["x-route-service-was-here"] == "yes"
        assert header_values(body, "X-Route-Service") == ["checked"]
        assert service.seen[-1][1] == "/check"
        assert service.seen[-1][2]["host"] == "rs.example.com"
        records = await asyncio.to_thread(handle.wait_access, 2)
        assert f"127.0.0.1:{service.port}" in {record["backend"] for record in records}
    finally:
        await service.stop()


async def test_the_example_route_service_guards_an_app(
        nats_server: NatsServer, client: Client, pointsman: Factory, write_config: WriteConfig,
        ca: trustme.CA, app: Backend) -> None:
    _, web = start_router(pointsman, write_config, "r", nats_server.url, ca, ON)
    port = free_port_number()
    example = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "route-service" / "route_service.py"),
         "--listen", f"127.0.0.1:{port}", "--router", f"{web[0]}:{web[1]}",
         "--require-header", "X-Api-Key"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port)
        await register(client, app, "", uri="auth.example.com", port=port)
        await register(client, app, "https://auth.example.com/")
        status, headers, _ = await until_routed(web, APP)
        assert status == 403 and app.requests == 0
        status, headers, body = await asyncio.to_thread(get, web, APP, "/x", {"X-Api-Key": "k"})
        assert status == 200, body
        assert headers["x-route-service"] == "seen"
        assert header_values(body, "X-Route-Service") == ["checked"]
        assert app.requests == 1
    finally:
        example.terminate()
        example.wait(5)
