"""gorouter's registration rules over a real nats-server, seen by HTTP clients.

Sharding by isolation segment, what ``endpoint_updated_at_ns`` does (and does
not do), and empty pools that answer 503 for ``empty_pool_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from httpkit import Backend, backend_of, get
from nats.aio.client import Client
from registry_support import admin_call, admin_url, router_config, routes

from harness import NatsServer, Pointsman

Factory = Callable[..., Pointsman]
WriteConfig = Callable[[str], Path]


def config(nats_url: str, registry: str) -> str:
    return router_config(nats_url, registry=registry)


def started(handle: Pointsman) -> tuple[tuple[str, int], str]:
    """The HTTP listener and admin base of ``handle``.

    ``ready`` comes once the ``router.*`` subscriptions are in place, so a
    registration may be published at once.
    """
    assert handle.wait_event("ready")["nats_subscribed"] is True
    return handle.address("web"), admin_url(handle)


def registration(uri: str, backend: Backend, **fields: object) -> bytes:
    host, _, port = backend.address.rpartition(":")
    return json.dumps({"host": host, "port": int(port), "uris": [uri], "app": "app-guid",
                       "private_instance_id": backend.address, **fields}).encode()


async def publish(client: Client, subject: str, *bodies: bytes) -> None:
    for body in bodies:
        await client.publish(subject, body)
    await client.flush()


async def fetch(address: tuple[str, int], host: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, address, host)


async def wait_status(address: tuple[str, int], host: str, status: int,
                      timeout: float = 5.0) -> tuple[dict[str, str], float]:
    """The headers of the first answer with ``status``, and how long it took to come."""
    start = time.monotonic()
    while True:
        got, headers, _ = await fetch(address, host)
        if got == status:
            return headers, time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{host}: still {got}, wanted {status}"
        await asyncio.sleep(0.01)


async def metrics(base: str) -> str:
    status, text = await asyncio.to_thread(admin_call, base, "GET", "/metrics")
    assert status == 200
    return str(text)


@pytest.mark.parametrize(("mode", "routed"), [
    ("segments", {"seg-a"}),
    ("shared-and-segments", {"seg-a", ""}),
])
async def test_sharding_routes_only_this_routers_segments(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend], mode: str,
        routed: set[str]) -> None:
    text = f'routing_table_sharding_mode = "{mode}"\nisolation_segments = ["seg-a"]'
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url, text))))
    web, base = started(handle)
    hosts = {"seg-a": "a.example.com", "seg-b": "b.example.com", "": "shared.example.com"}
    await publish(client, "router.register",
                  *(registration(host, backends[i], isolation_segment=segment)
                    for i, (segment, host) in enumerate(hosts.items())))
    await wait_status(web, "a.example.com", 200)
    await asyncio.sleep(0.05)  # the rejected ones had the same time to arrive
    for segment, host in hosts.items():
        status, _, body = await fetch(web, host)
        if segment in routed:
            assert status == 200 and backend_of(body) == f"b{list(hosts).index(segment)}"
        else:
            assert status == 404, (segment, status)
    listed = await asyncio.to_thread(routes, base)
    assert listed["a.example.com"][0]["isolation_segment"] == "seg-a"
    assert "b.example.com" not in listed
    rejected = 3 - len(routed)
    assert f"pointsman_registry_outside_shard_total {rejected}.0" in await metrics(base)
    # An unregister from another segment leaves seg-a's endpoint alone.
    await publish(client, "router.unregister",
                  registration("a.example.com", backends[0], isolation_segment="seg-b"))
    await asyncio.sleep(0.05)
    assert (await fetch(web, "a.example.com"))[0] == 200
    # The admin API says why it will not take one.
    host, _, port = backends[1].address.rpartition(":")
    status, reply = await asyncio.to_thread(admin_call, base, "POST", "/routes", {
        "uris": ["b.example.com"], "host": host, "port": int(port),
        "isolation_segment": "seg-b"})
    assert status == 409 and "seg-b" in str(reply)


async def test_endpoint_updated_at_ns_feeds_latency_and_orders_nothing(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url, ""))))
    web, base = started(handle)
    now = time.time_ns()
    await publish(client, "router.register",
                  registration("app.example.com", backends[0], private_instance_index="1",
                               endpoint_updated_at_ns=now))
    await wait_status(web, "app.example.com", 200)
    # An older stamp is no older version to gorouter: the update is applied ...
    await publish(client, "router.register",
                  registration("app.example.com", backends[0], private_instance_index="2",
                               endpoint_updated_at_ns=now - 10**9))
    deadline = time.monotonic() + 5
    while (await asyncio.to_thread(routes, base))["app.example.com"][0][
            "private_instance_index"] != "2":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    # ... and so is an unregister stamped older still.
    await publish(client, "router.unregister",
                  registration("app.example.com", backends[0], endpoint_updated_at_ns=1))
    await wait_status(web, "app.example.com", 404)
    text = await metrics(base)
    assert "pointsman_registry_route_registration_latency_seconds_count 2.0" in text
    assert "pointsman_registry_unmodified_total 0.0" in text


async def test_empty_pool_answers_503_for_the_timeout_then_404(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    text = ("empty_pool_response_code_503 = true\nempty_pool_timeout = 0.6\n"
            "prune_interval = 0.1")
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url, text))))
    web, base = started(handle)
    await publish(client, "router.register", registration("app.example.com", backends[0]),
                  registration("app.example.com", backends[1]))
    await wait_status(web, "app.example.com", 200)
    assert (await fetch(web, "never.example.com"))[0] == 404

    # One of two endpoints gone: still routed. Both gone: 503, then 404 once the timeout is up.
    await publish(client, "router.unregister", registration("app.example.com", backends[0]))
    await asyncio.sleep(0.05)
    assert backend_of((await fetch(web, "app.example.com"))[2]) == "b1"
    await publish(client, "router.unregister", registration("app.example.com", backends[1]))
    headers, _ = await wait_status(web, "app.example.com", 503)
    assert headers["x-pointsman-error"] == "no_endpoints"
    listed = await asyncio.to_thread(routes, base)
    assert listed["app.example.com"] == []
    _, waited = await wait_status(web, "app.example.com", 404)
    assert 0.3 < waited < 2.0, waited

    # Pruning the last endpoint keeps the pool too; a registration in time revives it.
    await publish(client, "router.register",
                  registration("brief.example.com", backends[2], stale_threshold_in_seconds=1))
    await wait_status(web, "brief.example.com", 200)
    _, waited = await wait_status(web, "brief.example.com", 503, timeout=3.0)
    assert 0.5 < waited < 2.0, waited
    await publish(client, "router.register", registration("brief.example.com", backends[2]))
    await wait_status(web, "brief.example.com", 200)
    await asyncio.sleep(0.8)
    assert (await fetch(web, "brief.example.com"))[0] == 200
    assert "pointsman_registry_empty_pools_deleted_total 1.0" in await metrics(base)


async def test_route_service_routes_are_refused_and_balancing_option_is_honoured(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url, ""))))
    web, base = started(handle)
    await publish(client, "router.register",
                  registration("guarded.example.com", backends[0],
                               route_service_url="https://auth.example.com/check"),
                  registration("lc.example.com", backends[1],
                               options={"loadbalancing": "least-connection"}))
    await wait_status(web, "lc.example.com", 200)
    # Route services are off here (no secret): refused as gorouter does with them disabled,
    # never sent around the service.
    headers, _ = await wait_status(web, "guarded.example.com", 502)
    assert headers["x-pointsman-error"] == "route_service_unsupported"
    assert backends[0].requests == 0
    listed = await asyncio.to_thread(routes, base)
    assert listed["guarded.example.com"][0]["route_service_url"] == \
        "https://auth.example.com/check"
    assert listed["lc.example.com"][0]["load_balancing_algorithm"] == "least-connection"


async def test_locally_optimistic_prefers_the_routers_zone_then_any(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, backends: list[Backend]) -> None:
    text = router_config(nats_server.url, listener='[listeners.backends]\n'
                         'availability_zone = "z2"\naz_preference = "locally-optimistic"\n')
    address, base = started(pointsman("serve", "-c", str(write_config(text))))
    near, far, other = backends[:3]
    await publish(client, "router.register",
                  registration("az.example.com", near, availability_zone="z2"),
                  registration("az.example.com", far, availability_zone="z1"),
                  registration("az.example.com", other, availability_zone="z1"))
    await wait_status(address, "az.example.com", 200)
    await asyncio.sleep(0.1)  # all three published by now
    assert {row["availability_zone"] for row in routes(base)["az.example.com"]} == {"z1", "z2"}
    for _ in range(6):
        status, _, body = await fetch(address, "az.example.com")
        assert status == 200 and backend_of(body) == near.server.name
    # The zone's only endpoint is gone: any other takes the requests.
    await publish(client, "router.unregister", registration("az.example.com", near))
    await asyncio.sleep(0.2)
    seen = {backend_of((await fetch(address, "az.example.com"))[2]) for _ in range(6)}
    assert seen == {far.server.name, other.server.name}
