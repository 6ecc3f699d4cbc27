"""gorouter clients against a running pointsman over a real nats-server.

Each test publishes ``router.register`` exactly as a gorouter client does
(nats-py, JSON body) and watches the route through the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from registry_support import TOKEN, admin_call, admin_url, routes

from harness import NatsServer, Pointsman

Factory = Callable[..., Pointsman]
WriteConfig = Callable[[str], Path]


def config(nats_url: str, prune_interval: float = 30.0, register_interval: float = 5.0) -> str:
    return f"""
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[nats]
servers = ["{nats_url}"]

[registry]
prune_threshold = 120
prune_interval = {prune_interval}
minimum_register_interval = {register_interval}
"""


def registration(uri: str, port: int, **fields: Any) -> bytes:
    body = {"host": "127.0.0.1", "port": port, "uris": [uri], "app": "app-guid",
            "private_instance_id": f"instance-{port}", "private_instance_index": "0",
            "tags": {"component": "test"}, **fields}
    return json.dumps(body).encode()


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_server.url, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.1)
    yield connection
    await connection.close()


async def listed(base: str) -> dict[str, list[dict[str, Any]]]:
    return await asyncio.to_thread(routes, base)


async def wait_listed(base: str, check: Callable[[dict[str, Any]], bool],
                      timeout: float = 5.0) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if check(await listed(base)):
            return loop.time() - start
        if loop.time() - start > timeout:
            raise TimeoutError("routes never matched")
        await asyncio.sleep(0.005)


async def test_register_is_listed_within_100ms_then_unregister(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig) -> None:
    base = admin_url(pointsman("serve", "-c", str(write_config(config(nats_server.url)))))
    await client.publish("router.register", registration("App.Example.com", 9001))
    await client.flush()
    elapsed = await wait_listed(base, lambda r: "app.example.com" in r)
    assert elapsed < 0.1, f"routable after {elapsed * 1000:.0f} ms"
    entry = (await listed(base))["app.example.com"][0]
    assert entry["address"] == "127.0.0.1:9001"
    assert entry["private_instance_id"] == "instance-9001"
    assert entry["tags"] == {"component": "test"} and entry["ttl"] == 120

    await client.publish("router.unregister", registration("app.example.com", 9001))
    await client.flush()
    assert await wait_listed(base, lambda r: "app.example.com" not in r) < 0.1


async def test_stale_endpoints_are_pruned_heartbeats_keep_theirs(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig) -> None:
    text = config(nats_server.url, prune_interval=0.2)
    base = admin_url(pointsman("serve", "-c", str(write_config(text))))
    zombie = registration("zombie.example.com", 9002, stale_threshold_in_seconds=1)
    live = registration("live.example.com", 9003, stale_threshold_in_seconds=1)
    await client.publish("router.register", zombie)
    await client.publish("router.register", live)
    await client.flush()
    await wait_listed(base, lambda r: "zombie.example.com" in r and "live.example.com" in r)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while loop.time() < deadline:
        await client.publish("router.register", live)
        await asyncio.sleep(0.2)
    now = await listed(base)
    assert "zombie.example.com" not in now
    assert "live.example.com" in now
    status, metrics = await asyncio.to_thread(admin_call, base, "GET", "/metrics")
    assert status == 200
    assert "pointsman_registry_routes_pruned_total 1.0" in metrics


async def test_nats_down_keeps_routes_and_restart_announces_again(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig) -> None:
    # A file-backed stream records every router.start, whenever it is published.
    stream = client.jetstream()
    await stream.add_stream(StreamConfig(name="STARTS", subjects=["router.start"],
                                         storage=StorageType.FILE))
    text = config(nats_server.url, prune_interval=0.2, register_interval=1)
    handle = pointsman("serve", "-c", str(write_config(text)))
    base = admin_url(handle)
    await client.publish("router.register",
                         registration("kept.example.com", 9004, stale_threshold_in_seconds=1))
    await client.flush()
    await wait_listed(base, lambda r: "kept.example.com" in r)

    await asyncio.to_thread(nats_server.stop)
    await asyncio.to_thread(handle.wait_event, "registry_pruning_suspended")
    await asyncio.sleep(2.0)  # twice the endpoint's threshold, ten prune intervals
    assert "kept.example.com" in await listed(base)

    await asyncio.to_thread(nats_server.start)
    await asyncio.to_thread(handle.wait_event, "nats_reconnected", 10.0)
    await wait_until_async(lambda: client.is_connected)
    info = await stream.stream_info("STARTS")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while info.state.messages < 2 and loop.time() < deadline:
        await asyncio.sleep(0.05)
        info = await stream.stream_info("STARTS")
    assert info.state.messages == 2
    first = json.loads((await stream.get_msg("STARTS", 1)).data or b"{}")
    second = json.loads((await stream.get_msg("STARTS", 2)).data or b"{}")
    assert first == second
    assert first["pruneThresholdInSeconds"] == 120
    assert first["minimumRegisterIntervalInSeconds"] == 1

    # Pruning resumes one register interval after the reconnect, with fresh ages:
    # the endpoint that never re-registered goes after interval + threshold.
    assert "kept.example.com" in await listed(base)
    await wait_listed(base, lambda r: "kept.example.com" not in r, timeout=5.0)
    handle.wait_event("registry_pruning_resumed")


async def wait_until_async(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_router_start_on_connect_and_greet_answered(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig) -> None:
    starts = await client.subscribe("router.start")
    await client.flush()
    pointsman("serve", "-c", str(write_config(config(nats_server.url))))
    start = json.loads((await starts.next_msg(timeout=10)).data)
    assert set(start) == {"id", "hosts", "minimumRegisterIntervalInSeconds",
                          "pruneThresholdInSeconds"}
    assert start["id"].startswith("0-") and start["hosts"] == ["127.0.0.1"]
    assert (start["minimumRegisterIntervalInSeconds"], start["pruneThresholdInSeconds"]) == (5, 120)
    reply = await client.request("router.greet", b"", timeout=5)
    assert json.loads(reply.data) == start


async def test_malformed_messages_are_counted_never_fatal(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig) -> None:
    handle = pointsman("serve", "-c", str(write_config(config(nats_server.url))))
    base = admin_url(handle)
    for bad in (b"", b"{", b"null", b'{"host":"h","port":"80","uris":["x"]}',
                b'{"host":"h","port":99999}', b"\xff\xfe", b'{"uris":["nohost"]}'):
        await client.publish("router.register", bad)
        await client.publish("router.unregister", bad)
    await client.publish("router.register", registration("after.example.com", 9005))
    await client.flush()
    await wait_listed(base, lambda r: "after.example.com" in r)
    assert handle.process.poll() is None
    status, metrics = await asyncio.to_thread(admin_call, base, "GET", "/metrics")
    assert status == 200
    assert "pointsman_registry_malformed_messages_total 14.0" in metrics
    event = handle.wait_event("registration_malformed")
    assert event["subject"] in ("router.register", "router.unregister")


async def test_two_routers_on_one_nats_see_the_same_routes(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, tmp_path: Path) -> None:
    text = config(nats_server.url)
    first = admin_url(pointsman("serve", "-c", str(write_config(text))))
    second_path = tmp_path / "second.toml"
    second_path.write_text(text)
    second = admin_url(pointsman("serve", "-c", str(second_path)))
    for port in range(9100, 9120):
        await client.publish("router.register", registration(f"app{port % 4}.example.com", port))
    await client.flush()

    def complete(r: dict[str, Any]) -> bool:
        return sum(len(v) for v in r.values()) == 20

    await wait_listed(first, complete)
    await wait_listed(second, complete)
    assert _same_addresses(await listed(first), await listed(second))


def _same_addresses(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def shape(r: dict[str, Any]) -> dict[str, list[str]]:
        return {k: sorted(e["address"] for e in v) for k, v in r.items()}
    return shape(a) == shape(b)


async def test_fails_over_to_the_second_server_keeping_routes(
        nats_server: NatsServer, client: Client, pointsman: Factory,
        write_config: WriteConfig, tmp_path: Path) -> None:
    second = NatsServer(tmp_path / "nats-second")
    await asyncio.to_thread(second.start)
    other = await nats.connect(second.url)
    try:
        starts = {nats_server.port: await client.subscribe("router.start"),
                  second.port: await other.subscribe("router.start")}
        await client.flush()
        await other.flush()
        text = config(nats_server.url).replace(
            f'servers = ["{nats_server.url}"]', f'servers = ["{nats_server.url}", "{second.url}"]')
        handle = pointsman("serve", "-c", str(write_config(text)))
        base = admin_url(handle)
        server = handle.wait_event("nats_connected")["server"]
        first, spare = ((nats_server, second) if server.endswith(f":{nats_server.port}")
                        else (second, nats_server))
        first_client, spare_client = ((client, other) if first is nats_server
                                      else (other, client))
        await starts[first.port].next_msg(timeout=5)
        await first_client.publish("router.register", registration("before.example.com", 9201))
        await first_client.flush()
        await wait_listed(base, lambda r: "before.example.com" in r)

        await asyncio.to_thread(first.stop)
        start = json.loads((await starts[spare.port].next_msg(timeout=10)).data)
        assert start["pruneThresholdInSeconds"] == 120
        assert "before.example.com" in await listed(base)
        await spare_client.publish("router.register", registration("after.example.com", 9202))
        await spare_client.flush()
        await wait_listed(base, lambda r: "after.example.com" in r)
    finally:
        with contextlib.suppress(Exception):
            await other.close()
        await asyncio.to_thread(second.stop)
