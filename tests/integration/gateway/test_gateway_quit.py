"""A graceful quit of the gateway: idle sockets hear 1001 at once, busy ones finish first."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from gateway_harness import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pointsman.serve.gateway import GatewaySettings
from pointsman.serve.gateway_server import serve_gateway
from pointsman.service import Context, LocalTransport, Router, Service
from pointsman.wire.envelope import JsonCodec, decode_outbound

SLOW = 0.5


async def test_drain_closes_idle_sockets_at_once_and_busy_ones_after_their_reply() -> None:
    bus = LocalTransport()
    router = Router()
    handling: list[str] = []

    @router.public_bind("/slow")
    async def slow(ctx: Context) -> str:
        handling.append(ctx.path)
        await asyncio.sleep(SLOW)
        return "done"

    service = Service("slow", bus, router, interval=0.1)
    await service.start()
    server = await serve_gateway(GatewaySettings(name="quit", announce_interval=0.1), bus)
    try:
        await eventually(lambda: len(server.gateway.index) == 1)
        host, port = server.addresses[0]
        async with connect(f"ws://{host}:{port}/ws") as idle, \
                connect(f"ws://{host}:{port}/ws") as busy:
            await busy.send('{"path": "/slow", "id": "r1"}')
            await eventually(lambda: len(handling) == 1)
            started = time.monotonic()
            server.stop_accepting()
            draining = asyncio.ensure_future(server.drain(30.0))
            try:
                await asyncio.wait_for(idle.recv(), 2.0)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1001
            idle_closed = time.monotonic() - started
            assert idle_closed < SLOW / 2  # before the busy socket's reply, not after 30 s
            reply = decode_outbound(JsonCodec(), (await asyncio.wait_for(busy.recv(), 2.0))
                                    .encode())
            assert reply.id == "r1" and reply.error is None  # the in-flight request finished
            try:
                await asyncio.wait_for(busy.recv(), 2.0)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1001
            await asyncio.wait_for(draining, 5.0)
            assert time.monotonic() - started < SLOW + 1.5
    finally:
        await server.close()
        await service.stop()


def test_quit_of_a_worker_with_idle_gateway_sockets_is_quick(
        pointsman: Any, write_config: Any, nats_server: Any) -> None:
    from websockets.sync.client import connect as connect_sync

    text = f"""
[process]
workers = 1
drain_timeout = 30

[[listeners]]
name = "ws"
protocol = "gateway"
listen = "127.0.0.1:0"
nats_url = "{nats_server.url}"
"""
    handle = pointsman("serve", "-c", str(write_config(text)))
    host, port = handle.address("ws")
    with connect_sync(f"ws://{host}:{port}/ws", open_timeout=5) as ws:
        started = time.monotonic()
        handle.signal(signal.SIGQUIT)
        try:
            ws.recv(timeout=5)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1001
        assert handle.process.wait(10) == 0
    assert time.monotonic() - started < 5  # not the 30 s drain_timeout
