"""One process, no NATS: a gateway and services sharing a LocalTransport; and the metrics."""

from __future__ import annotations

import asyncio

from gateway_harness import eventually
from websockets.asyncio.client import connect

from pointsman.serve.gateway import GatewaySettings
from pointsman.serve.gateway_server import serve_gateway
from pointsman.service import Context, LocalTransport, Router, Service
from pointsman.wire.envelope import JsonCodec, decode_outbound


async def test_gateway_and_service_in_one_process() -> None:
    bus = LocalTransport()
    router = Router()

    @router.public_bind("/add")
    async def add(ctx: Context) -> int:
        numbers: list[int] = ctx.unmarshal(list[int])
        return sum(numbers)

    service = Service("calc", bus, router, interval=0.1)
    await service.start()
    server = await serve_gateway(GatewaySettings(name="local", announce_interval=0.1), bus)
    try:
        await eventually(lambda: len(server.gateway.index) == 1)
        host, port = server.addresses[0]
        codec = JsonCodec()
        async with connect(f"ws://{host}:{port}/ws") as ws:
            await ws.send('{"path": "/add", "id": "a", "data": [1, 2, 3]}')
            out = decode_outbound(codec, (await ws.recv()).encode())
            assert out.id == "a" and codec.decode_data(out.data) == 6
    finally:
        await server.close()
        await service.stop()


async def test_metrics_follow_sockets_messages_and_failures() -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        found = REGISTRY.get_sample_value(name, labels)
        return 0.0 if found is None else found

    bus = LocalTransport()
    router = Router()
    router.public_bind("/ping", lambda ctx: "pong")
    service = Service("metered", bus, router, interval=0.1)
    await service.start()
    server = await serve_gateway(GatewaySettings(name="metrics-gw", announce_interval=0.1,
                                                 delivery_timeout=0.5), bus)
    try:
        host, port = server.addresses[0]
        await eventually(lambda: value("pointsman_gateway_instances", gateway="metrics-gw",
                                       service="metered") == 1)
        failures = value("pointsman_gateway_delivery_failures_total", gateway="metrics-gw",
                         service="metered", reason="no_responders")
        before = value("pointsman_gateway_messages_total", gateway="metrics-gw",
                       service="metered")
        async with connect(f"ws://{host}:{port}/ws") as ws:
            assert value("pointsman_gateway_sockets", gateway="metrics-gw") == 1
            await ws.send('{"path": "/ping", "id": 1}')
            await ws.recv()
            assert value("pointsman_gateway_messages_total", gateway="metrics-gw",
                         service="metered") == before + 1
            # The instance disappears without a word: the next delivery fails.
            for sub in service._subs:
                await sub.unsubscribe()
            await ws.send('{"path": "/ping", "id": 2}')
            out = decode_outbound(JsonCodec(), (await ws.recv()).encode())
            assert out.error is not None and out.error[0] == "instance_unavailable"
            assert value("pointsman_gateway_delivery_failures_total", gateway="metrics-gw",
                         service="metered", reason="no_responders") == failures + 1
            assert value("pointsman_gateway_instances", gateway="metrics-gw",
                         service="metered") == 0
    finally:
        await server.close()
        service.started = False
        if service._ticker is not None:
            service._ticker.cancel()


async def test_unusable_patterns_in_an_announcement_are_dropped() -> None:
    from pointsman.wire import gateway_messages as gm

    bus = LocalTransport()
    server = await serve_gateway(GatewaySettings(name="strict", announce_interval=0.1), bus)
    try:
        bus.publish(gm.SERVICE_ANNOUNCE, gm.encode(gm.ServiceAnnounce(
            name="foreign", instance="x1", routes=["/ok/:id", "no-slash", "/bad/a*"],
            interval=1.0, encoding="json")))
        await eventually(lambda: len(server.gateway.index) == 1)
        record = server.gateway.index.get("x1")
        assert record is not None and record.routes == ("/ok/:id",)
        found = server.gateway.matcher.match("/ok/7")
        assert found is not None and found.value.service == "foreign"
    finally:
        await server.close()


async def test_unacked_deliveries_pause_reading_until_they_time_out() -> None:
    from pointsman.service import Msg
    from pointsman.wire import gateway_messages as gm

    bus = LocalTransport()
    received: list[Msg] = []

    async def silent_instance(msg: Msg) -> None:  # takes deliveries, never acks
        received.append(msg)

    await bus.subscribe(gm.instance_subject("mute1"), silent_instance)
    server = await serve_gateway(GatewaySettings(name="mute", max_inflight=4,
                                                 delivery_timeout=0.3), bus)
    try:
        bus.publish(gm.SERVICE_ANNOUNCE, gm.encode(gm.ServiceAnnounce(
            name="mute", instance="mute1", routes=["/x"], interval=60.0, encoding="json")))
        await eventually(lambda: len(server.gateway.index) == 1)
        host, port = server.addresses[0]
        async with connect(f"ws://{host}:{port}/ws") as ws:
            for i in range(4):
                await ws.send(f'{{"path": "/x", "id": {i}}}')
            await eventually(lambda: len(received) == 4)
            (sock,) = server.gateway.sockets.values()
            assert sock.paused
            for i in range(4, 8):
                await ws.send(f'{{"path": "/x", "id": {i}}}')
            await asyncio.sleep(0.1)
            assert len(received) == 4  # not read while paused: they wait in the kernel
            errors = [decode_outbound(JsonCodec(), (await ws.recv()).encode()) for _ in range(4)]
            assert {e.error[0] for e in errors if e.error} == {"instance_unavailable"}
            await eventually(lambda: not sock.paused)  # failures freed the window
            # The rest is read now; the silent instance is gone, so nobody serves /x.
            rest = [decode_outbound(JsonCodec(), (await ws.recv()).encode()) for _ in range(4)]
            assert {e.error[0] for e in rest if e.error} == {"not_found"}
            kinds = [gm.decode(m.data, gm.Deliver).kind for m in received]
            assert kinds == ["open", "message", "message", "message", "close"]
    finally:
        await server.close()
