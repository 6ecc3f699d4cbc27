"""A ``protocol = "gateway"`` listener: bound sockets, a Gateway, and its NATS link.

``start(config, ctx)`` is the runtime's starter for ``GatewayListener``;
``serve_gateway`` is the same without a config file, for tests, benchmarks and
embedding (it takes any transport, e.g. ``LocalTransport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from pathlib import Path

from pointsman.config import GatewayListener
from pointsman.serve.context import RecordSink, ServeContext
from pointsman.serve.gateway import Gateway, GatewaySettings, socket_factory
from pointsman.serve.provision import ProvisionPool
from pointsman.serve.tcp import open_listening_sockets
from pointsman.service.nats_transport import NatsTransport
from pointsman.service.transport import Transport

__all__ = ["DRAIN_SWEEP", "GOING_AWAY", "GatewayServer", "serve_gateway",
           "settings_from_config", "start"]

GOING_AWAY = 1001
DRAIN_SWEEP = 0.02
"""Seconds between two looks for sockets that became idle while draining."""


class GatewayServer:
    """The running listener, as the runtime sees it (``serve.context.Running``)."""

    def __init__(self, name: str, gateway: Gateway, servers: list[asyncio.Server],
                 owns_transport: bool) -> None:
        self.name = name
        self.gateway = gateway
        self.servers = servers
        self.owns_transport = owns_transport

    @property
    def addresses(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for server in self.servers:
            for sock in server.sockets:
                found.append(sock.getsockname()[:2])
        return found

    @property
    def active(self) -> int:
        return len(self.gateway.sockets)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()

    async def drain(self, timeout: float) -> None:
        """Say 1001 (going away) to each socket as soon as it has nothing in flight.

        An idle WebSocket would otherwise hold a quit or a reload for the whole
        ``timeout``: clients hear at once that they should reconnect (to the
        new generation). A socket is busy while a delivery of its messages is
        unacked, or while its last message carried an id and nothing was sent
        back since (the service's answer is on its way); it gets its 1001 once
        that is over. Services acknowledge a delivery before answering it, so
        the gateway cannot pair answers with requests: a push sent meanwhile
        counts as the answer. The sweep runs here, every ``DRAIN_SWEEP``
        seconds, so the message path pays one attribute store for it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.gateway.sockets and loop.time() < deadline:
            for sock in list(self.gateway.sockets.values()):
                if sock.inflight <= 0 and not sock.expects_reply and not sock.closing:
                    sock.closing = True
                    sock.close(GOING_AWAY, "server going away")
            await asyncio.sleep(DRAIN_SWEEP)
        await self.close()

    async def close(self) -> None:
        """Stop accepting, close every socket, leave the bus."""
        self.stop_accepting()
        await self.gateway.stop()
        if self.owns_transport:
            with contextlib.suppress(Exception):
                await self.gateway.transport.close()


def settings_from_config(config: GatewayListener, config_dir: Path) -> GatewaySettings:
    static = None
    if config.static is not None:
        static = Path(config.static)
        if not static.is_absolute():
            static = config_dir / static
        if not static.is_dir():
            raise FileNotFoundError(f"listener {config.name!r}: no such folder: {static}")
    limits = config.limits
    return GatewaySettings(
        name=config.gateway_name, listener=config.name, encoding=config.encoding,
        path=config.path, static_dir=static, max_message_size=limits.max_message_size,
        queue_bytes=limits.queue_bytes, max_inflight=limits.max_inflight,
        delivery_timeout=limits.delivery_timeout, announce_interval=config.announce_interval,
        max_connections=limits.max_connections)


async def serve_gateway(settings: GatewaySettings, transport: Transport, host: str = "127.0.0.1",
                        port: int = 0, *, owns_transport: bool = False,
                        reuse_port: bool = False,
                        provision: Mapping[str, ProvisionPool] | None = None) -> GatewayServer:
    """Start a gateway on ``host:port`` (0 picks a free port) over ``transport``.

    ``provision`` maps service names to the (opened) pools whose instances are
    leased one per socket.
    """
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return await _serve(settings, transport, listen, owns_transport, reuse_port,
                        provision=provision)


async def _serve(settings: GatewaySettings, transport: Transport, listen: str,
                 owns_transport: bool, reuse_port: bool,
                 sockets: list[socket.socket] | None = None,
                 provision: Mapping[str, ProvisionPool] | None = None,
                 access: RecordSink | None = None) -> GatewayServer:
    gateway = Gateway(settings, transport, provision, access)
    await gateway.start()
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    try:
        for sock in sockets if sockets is not None else open_listening_sockets(listen,
                                                                                reuse_port):
            servers.append(await loop.create_server(socket_factory(gateway), sock=sock))
    except BaseException:
        for server in servers:
            server.close()
        await gateway.stop()
        raise
    return GatewayServer(settings.listener, gateway, servers, owns_transport)


async def start(config: GatewayListener, ctx: ServeContext) -> GatewayServer:
    """The runtime's starter: connect to NATS, then bind and accept."""
    settings = settings_from_config(config, ctx.config_dir)
    provision = {service.name: ctx.provision[service.upstream] for service in config.services}
    transport = NatsTransport(config.nats_url, name=f"pointsman-gateway-{config.gateway_name}")
    try:
        await transport.connect()
    except Exception as exc:
        raise OSError(f"listener {config.name!r}: cannot reach NATS at {config.nats_url}: "
                      f"{exc}") from exc
    try:
        return await _serve(settings, transport, config.listen, True, ctx.reuse_port,
                            ctx.listening_sockets(config.listen), provision, ctx.access)
    except BaseException:
        await transport.close()
        raise
