"""Instances and gateways that go away, and clients that misbehave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gateway_harness import Cluster, eventually, routes_known
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from pointsman.service import Context, Router


def counter_router() -> Router:
    router = Router()

    @router.public_bind("/count")
    async def count(ctx: Context) -> dict[str, object]:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return {"instance": ctx.service.instance, "n": ctx.state["n"]}

    @router.public_bind("/flood/:size")
    async def flood(ctx: Context) -> str:
        chunk = "x" * int(ctx.params["size"])
        for _ in range(int(ctx.data)):
            ctx.send(chunk)
            await asyncio.sleep(0)
        return "done"

    return router


async def test_killed_instance_sockets_are_repinned_and_told(cluster: Cluster) -> None:
    a = await cluster.service("counter", counter_router())
    b = await cluster.service("counter", counter_router())
    gw = await cluster.gateway()
    await routes_known(gw, 2)
    on_a = await cluster.client(gw)
    on_b = await cluster.client(gw)
    first = on_a.value(await on_a.ask("/count"))["instance"]
    if first != a.instance:
        a, b = b, a
    assert on_b.value(await on_b.ask("/count"))["instance"] == b.instance
    assert on_a.value(await on_a.ask("/count"))["n"] == 2

    await cluster.kill(a)
    out = await on_a.ask("/count")
    assert out.error is not None and out.error[0] == "instance_unavailable"
    moved = on_a.value(await on_a.ask("/count"))
    assert moved == {"instance": b.instance, "n": 1}  # a fresh socket state on b
    assert on_b.value(await on_b.ask("/count"))["n"] == 2  # b's own socket is untouched
    assert a.instance not in gw.gateway.stats()["instances"]


async def test_missed_heartbeat_removes_the_instance(cluster: Cluster) -> None:
    a = await cluster.service("counter", counter_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    assert client.value(await client.ask("/count"))["instance"] == a.instance
    b = await cluster.service("counter", counter_router())
    await routes_known(gw, 2)
    await cluster.kill(a)
    # No message fails: the heartbeat alone removes a, and the pin with it.
    await routes_known(gw, 1)
    assert client.value(await client.ask("/count")) == {"instance": b.instance, "n": 1}


async def test_restarted_gateway_rediscovers_running_services(cluster: Cluster) -> None:
    # A long heartbeat proves discovery comes from the gateway's own announcement.
    await cluster.service("counter", counter_router(), interval=30.0)
    first = await cluster.gateway()
    await routes_known(first, 1)
    await first.close()
    cluster.gateways.remove(first)
    second = await cluster.gateway()
    await routes_known(second, 1)
    client = await cluster.client(second)
    assert client.value(await client.ask("/count"))["n"] == 1


async def test_services_forget_sockets_of_a_vanished_gateway(cluster: Cluster) -> None:
    svc = await cluster.service("counter", counter_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    await client.ask("/count")
    assert svc.connections == 1
    # The gateway crashes: no close deliveries, no goodbye.
    gw.gateway.running = False
    await gw.gateway.transport.close()
    await eventually(lambda: svc.connections == 0, timeout=5)


async def test_malformed_envelope_keeps_the_socket(cluster: Cluster) -> None:
    await cluster.service("counter", counter_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    for garbage in ("not json", '{"path": 5}', "[1,2]", '{"id": "x"}'):
        await client.ws.send(garbage)
        out = await client.recv()
        assert out.error is not None and out.error[0] == "bad_envelope", garbage
    assert client.value(await client.ask("/count"))["n"] == 1


async def test_binary_on_a_json_gateway_closes_1007(cluster: Cluster) -> None:
    gw = await cluster.gateway()
    client = await cluster.client(gw)
    await client.ws.send(b"\x00\xff binary garbage")
    with pytest.raises(ConnectionClosed) as info:
        await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_oversized_message_closes_1009(cluster: Cluster) -> None:
    await cluster.service("counter", counter_router())
    gw = await cluster.gateway(max_message_size=1024)
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    assert client.value(await client.ask("/count"))["n"] == 1
    await client.send("/count", "x" * 2000)
    with pytest.raises(ConnectionClosed) as info:
        await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_slow_client_is_closed_1008(cluster: Cluster) -> None:
    await cluster.service("counter", counter_router())
    gw = await cluster.gateway(queue_bytes=256 * 1024)
    await routes_known(gw, 1)
    # The client stops reading after one message (max_queue=1).
    client = await cluster.client(gw, max_queue=1, max_size=None)
    await client.send("/flood/262144", 64)  # 16 MiB in 256 KiB pushes
    # The gateway gives up on it (sends 1008 and stops queueing) long before
    # 16 MiB could pile up; the client gets the close once it reads again.
    await eventually(lambda: all(s.ws.state is not State.OPEN
                                 for s in gw.gateway.sockets.values()),
                     timeout=10, what="the slow socket closing")
    received = 0
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(100):
            await client.recv(timeout=5)
            received += 1
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert received < 64


async def test_a_nats_restart_keeps_instances_and_pins(cluster: Cluster, nats_server: Any) -> None:
    svc = await cluster.service("counter", counter_router())
    gw = await cluster.gateway()
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    assert client.value(await client.ask("/count"))["n"] == 1
    await asyncio.to_thread(nats_server.stop)
    await asyncio.sleep(1.0)  # four heartbeat intervals of silence
    await asyncio.to_thread(nats_server.start)
    transports = [*cluster.transports, gw.gateway.transport]
    await eventually(lambda: all(t.connected for t in transports), timeout=10,
                     what="every client reconnected")
    # Nothing was pruned: the same instance still holds the socket's state.
    assert svc.instance in gw.gateway.index
    assert svc.connections == 1
    # Until the server has the service's re-sent subscriptions, a delivery finds
    # no responder and the client is told to try again shortly: it does.
    deadline = asyncio.get_running_loop().time() + 5
    out = await client.ask("/count")
    while out.error is not None and out.error[0] == "unavailable" \
            and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        out = await client.ask("/count")
    assert client.value(out) == {"instance": svc.instance, "n": 2}
