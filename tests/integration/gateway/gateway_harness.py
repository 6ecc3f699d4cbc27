"""Gateway test harness: gateways and service instances in this process, over a real nats-server.

Every gateway and every instance gets its own NATS connection, so "killing"
an instance (closing its connection without a goodbye) looks to the rest of
the system exactly like a crashed process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from pointsman.serve.gateway import GatewaySettings
from pointsman.serve.gateway_server import GatewayServer, serve_gateway
from pointsman.service import NatsTransport, Router, Service
from pointsman.wire.envelope import Codec, Outbound, codec_for, decode_outbound

INTERVAL = 0.25
DELIVERY_TIMEOUT = 1.0


class Client:
    """A WebSocket client speaking envelopes in one encoding."""

    def __init__(self, ws: ClientConnection, codec: Codec) -> None:
        self.ws = ws
        self.codec = codec
        self._ids = itertools.count(1)

    async def send(self, path: str | None, data: Any = None, id: Any = None) -> Any:
        if id is None:
            id = f"c{next(self._ids)}"
        encoded = None if data is None else self.codec.encode_data(data)
        frame = self.codec.encode(id=id, path=path, data=encoded)
        await self.ws.send(frame if self.codec.binary else frame.decode())
        return id

    async def recv(self, timeout: float = 5.0) -> Outbound:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        return decode_outbound(self.codec, frame.encode() if isinstance(frame, str) else frame)

    def value(self, out: Outbound) -> Any:
        assert out.error is None, out.error
        return self.codec.decode_data(out.data)

    async def ask(self, path: str, data: Any = None) -> Outbound:
        ident = await self.send(path, data)
        out = await self.recv()
        assert out.id == ident, out
        return out

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class Cluster:
    nats_url: str
    transports: list[NatsTransport] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    gateways: list[GatewayServer] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def service(self, name: str, router: Router, *, gateway_names: list[str] | None = None,
                      encoding: str = "json", interval: float = INTERVAL) -> Service:
        transport = NatsTransport(self.nats_url, name=f"test-{name}")
        self.transports.append(transport)
        service = Service(name, transport, router, gateway_names, encoding=encoding,
                          interval=interval)
        await service.start()
        self.services.append(service)
        return service

    async def gateway(self, name: str = "gateway", **overrides: Any) -> GatewayServer:
        transport = NatsTransport(self.nats_url, name=f"test-gw-{name}")
        settings = GatewaySettings(name=name, announce_interval=INTERVAL,
                                   delivery_timeout=DELIVERY_TIMEOUT, **overrides)
        server = await serve_gateway(settings, transport, owns_transport=True)
        self.gateways.append(server)
        return server

    async def client(self, gateway: GatewayServer, **options: Any) -> Client:
        host, port = gateway.addresses[0]
        ws = await connect(f"ws://{host}:{port}/ws", **options)
        client = Client(ws, gateway.gateway.codec)
        self.clients.append(client)
        return client

    async def kill(self, service: Service) -> None:
        """Make an instance vanish like a crashed process: no goodbye, no more heartbeats."""
        service.started = False
        if service._ticker is not None:
            service._ticker.cancel()
        await service.transport.client.close()

    async def close(self) -> None:
        for client in self.clients:
            await client.ws.close()
        for gateway in self.gateways:
            await gateway.close()
        for service in self.services:
            if service.started:
                await service.stop()
        for transport in self.transports:
            await transport.close()


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def routes_known(gateway: GatewayServer, instances: int) -> None:
    await eventually(lambda: len(gateway.gateway.index) == instances,
                     what=f"{instances} instances known to {gateway.name}")


def json_codec() -> Codec:
    return codec_for("json")
