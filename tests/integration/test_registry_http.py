"""The point of it all: a gorouter client registers over NATS and curl reaches the app.

Real nats-server, real HTTP backends, pointsman's HTTP listener in between.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from httpkit import Backend, backend_of, get, read_response
from nats.aio.client import Client
from registry_support import admin_call, admin_url, router_config, routes

from harness import NatsServer, Pointsman

Factory = Callable[..., Pointsman]
WriteConfig = Callable[[str], Path]


def config(nats_url: str | None, static_backend: str) -> str:
    return router_config(nats_url, listener='[[listeners.routes]]\n'
                                            'host = "static.example.com"\n'
                                            f'endpoints = ["{static_backend}"]\n')


def registration(uri: str, backend: Backend, **fields: object) -> bytes:
    host, _, port = backend.address.rpartition(":")
    return json.dumps({"host": host, "port": int(port), "uris": [uri], "app": "app-guid",
                       "private_instance_id": backend.address, **fields}).encode()


async def status_of(address: tuple[str, int], host: str, path: str = "/") -> tuple[int, bytes]:
    status, _, body = await asyncio.to_thread(get, address, host, path)
    return status, body


async def test_register_then_curl_within_100ms_unregister_then_404(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url,
                                                              backends[2].address))))
    web = handle.address("web")
    assert (await status_of(web, "app.example.com"))[0] == 404

    start = time.monotonic()
    await client.publish("router.register", registration("app.example.com", backends[0]))
    await client.publish("router.register", registration("app.example.com", backends[1]))
    await client.flush()
    while (await status_of(web, "app.example.com"))[0] != 200:
        assert time.monotonic() - start < 5
    elapsed = time.monotonic() - start
    assert elapsed < 0.1, f"routable after {elapsed * 1000:.0f} ms"

    await asyncio.sleep(0.05)  # both registrations are in the same snapshot by now
    seen = {backend_of((await status_of(web, "app.example.com", f"/r{i}"))[1])
            for i in range(6)}
    assert seen == {"b0", "b1"}

    await client.publish("router.unregister", registration("app.example.com", backends[0]))
    await client.flush()
    await asyncio.sleep(0.1)
    seen = {backend_of((await status_of(web, "app.example.com", f"/u{i}"))[1])
            for i in range(4)}
    assert seen == {"b1"}

    await client.publish("router.unregister", registration("app.example.com", backends[1]))
    await client.flush()
    await asyncio.sleep(0.1)
    assert (await status_of(web, "app.example.com"))[0] == 404
    # The listener's file route was there all along, and is listed as static.
    status, body = await status_of(web, "static.example.com")
    assert status == 200 and backend_of(body) == "b2"
    base = admin_url(handle)
    listed = await asyncio.to_thread(routes, base)
    assert listed["static.example.com"][0]["source"] == "static"
    # One /metrics carries the listener's request metrics beside the registry's.
    status, metrics = await asyncio.to_thread(admin_call, base, "GET", "/metrics")
    assert status == 200
    for name in ("pointsman_http_requests_total", "pointsman_http_request_duration_seconds",
                 "pointsman_http_active_connections", "pointsman_registry_endpoints 1.0"):
        assert name in metrics, name


async def test_context_paths_and_nats_outage_keep_serving(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url,
                                                              backends[2].address))))
    web = handle.address("web")
    await client.publish("router.register", registration("shop.example.com", backends[0]))
    await client.publish("router.register",
                         registration("shop.example.com/api", backends[1]))
    await client.flush()
    await asyncio.sleep(0.1)
    assert backend_of((await status_of(web, "shop.example.com", "/api/items"))[1]) == "b1"
    assert backend_of((await status_of(web, "shop.example.com", "/apix"))[1]) == "b0"

    await asyncio.to_thread(nats_server.stop)
    await asyncio.to_thread(handle.wait_event, "nats_disconnected")
    assert backend_of((await status_of(web, "shop.example.com", "/api"))[1]) == "b1"


def test_admin_routes_are_routable_without_nats(
        pointsman: Factory, write_config: WriteConfig, backends: list[Backend]) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(None, backends[2].address))))
    web, base = handle.address("web"), admin_url(handle)
    host, _, port = backends[0].address.rpartition(":")
    body = {"uris": ["admin.example.com"], "host": host, "port": int(port)}
    assert admin_call(base, "POST", "/routes", body)[0] == 200
    status, _, reply = get(web, "admin.example.com")
    assert status == 200 and backend_of(reply) == "b0"
    assert admin_call(base, "DELETE", "/routes", body)[0] == 200
    assert get(web, "admin.example.com")[0] == 404


def test_a_request_repeated_byte_for_byte_follows_route_changes(
        pointsman: Factory, write_config: WriteConfig, backends: list[Backend]) -> None:
    """The same bytes on one keep-alive connection skip parsing, never the current table."""
    handle = pointsman("serve", "-c", str(write_config(config(None, backends[2].address))))
    web, base = handle.address("web"), admin_url(handle)

    def route_to(backend: Backend, method: str = "POST") -> None:
        host, _, port = backend.address.rpartition(":")
        body = {"uris": ["same.example.com"], "host": host, "port": int(port)}
        assert admin_call(base, method, "/routes", body)[0] == 200

    request = b"GET /x HTTP/1.1\r\nHost: same.example.com\r\nAccept: */*\r\n\r\n"
    buffer = bytearray()
    with socket.create_connection(web, timeout=5) as sock:

        def answer() -> tuple[int, str]:
            sock.sendall(request)
            status, _, body = read_response(sock, buffer)
            return status, backend_of(body) if status == 200 else ""

        assert answer() == (404, "")
        route_to(backends[0])
        assert [answer() for _ in range(3)] == [(200, "b0")] * 3
        route_to(backends[0], "DELETE")
        route_to(backends[1])
        assert [answer() for _ in range(3)] == [(200, "b1")] * 3
        route_to(backends[1], "DELETE")
        assert answer() == (404, "")
