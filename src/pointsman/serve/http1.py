"""The HTTP/1.1 reverse proxy listener: client Protocol, per-request exchanges, the server.

Data path, all on Protocol callbacks (no coroutine per request or chunk; a
task exists only while a new upstream connection is being opened):

    client bytes -> ClientConnection.data_received -> llhttp (RequestParser)
        request_received -> Exchange: route lookup, endpoint choice,
                            pooled UpstreamConnection, request head written
        body_received    -> written on (re-chunked if chunked), or held while
                            no upstream is attached, reading paused past a mark
    upstream bytes -> UpstreamConnection -> llhttp (ResponseParser)
        on_response_head/body/end -> client transport; connection back to pool

Heads that come again byte for byte (most do: clients repeat their
requests, backends their response heads but for ``Date``) skip llhttp and
the field rewriting: the parsers remember heads by their bytes, and what
routing and ``wire.forward`` derive from a head is kept on it (see
``RequestParser`` and ``ResponseParser``).

Pipelined requests are parsed as they arrive and wait in a queue; only the
head of the queue talks to an upstream, so responses leave in request order.
Every write-buffer high mark pauses reading on the opposite side, so a slow
reader at either end holds the other back instead of filling memory.

Timeouts (slow client header/body -> 408, keep-alive idle, upstream
response -> 504, idle tunnels) are deadlines checked by one periodic sweep
per listener, not a timer per request.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import ipaddress
import os
import termios
import time
from collections import deque
from typing import Any, cast

from pointsman.config import HttpListener, parse_listen
from pointsman.routing.table import Endpoint, RoutePool, RouteTable, TableHolder, route_key
from pointsman.serve.backend_tls import BackendTls
from pointsman.serve.context import ServeContext
from pointsman.serve.flow import (
    BACKLOG,
    PEER_FULL,
    PIPELINE,
    TUNNEL,
    WRITE_HIGH,
    WRITE_LOW,
    FlowControl,
)
from pointsman.serve.http_choice import Chooser
from pointsman.serve.http_exchange import Exchange
from pointsman.serve.http_metrics import HttpStats, register
from pointsman.serve.http_provision import release_leases
from pointsman.serve.http_tunnel import Tunnel
from pointsman.serve.http_upstream import ConnectionPool, UpstreamConnection
from pointsman.serve.provision import Lease
from pointsman.serve.route_service import RouteServices
from pointsman.serve.static import StaticFiles
from pointsman.upstream.pool import EndpointStates
from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.http1 import (
    RequestHead,
    RequestParser,
)

__all__ = ["ClientConnection", "HttpServer", "start", "static_table"]

MAX_PIPELINE = 16
"""Queued pipelined requests before reading from the client pauses."""
SWEEP_INTERVAL = 0.5
DRAIN_GRACE = 1.0
"""Seconds a draining connection that may have a request on its way waits for it."""
TRUST_CACHE_SIZE = 4096

_REASONS = {400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found", 408: b"Request Timeout",
            413: b"Content Too Large", 431: b"Request Header Fields Too Large",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout",
            525: b"SSL Handshake Failed", 526: b"Invalid SSL Certificate"}


def static_table(config: HttpListener, ctx: ServeContext) -> RouteTable:
    """The routes written in the file, as the first table snapshot."""
    pools = []
    for route in config.routes:
        key = route_key(route.host + route.path)
        if route.root is not None:
            pools.append(RoutePool(key, (), static_root=str(ctx.config_dir / route.root)))
            continue
        if route.upstream is not None and route.upstream in ctx.provision:
            # A backend per client connection (serve.http_provision); the table
            # only matches routes with endpoints, so this one names its upstream.
            placeholder = Endpoint("provision", 0, app=route.host,
                                   instance_id=f"provision:{route.upstream}")
            pools.append(RoutePool(key, (placeholder,), route.balance))
            continue
        if route.upstream is not None:
            addresses = [parse_listen(e) for e in _upstream_endpoints(ctx, route.upstream)]
        else:
            addresses = [parse_listen(e) for e in route.endpoints]
        endpoints = tuple(Endpoint(host, port, tls=route.tls, app=route.host,
                                   instance_id=f"{host}:{port}", instance_index=str(i),
                                   server_cert_domain_san=route.server_name)
                          for i, (host, port) in enumerate(addresses))
        pools.append(RoutePool(key, endpoints, route.balance))
    return RouteTable.build(pools)


def _upstream_endpoints(ctx: ServeContext, name: str) -> list[str]:
    pool = ctx.pools[name]
    return [state.address for state in pool.endpoints]


async def start(config: HttpListener, ctx: ServeContext) -> HttpServer:
    """Seed the route table from the file, bind, and begin accepting."""
    table = static_table(config, ctx)
    if len(table):
        current = ctx.routes.table
        ctx.routes.table = current.with_changes(table, []) if len(current) else table
    server = HttpServer(config, ctx, ctx.routes)
    await server.start(ctx.listening_sockets(config.listen))
    return server


class HttpServer:
    """One ``protocol = "http"`` listener: its sockets, connections, pools and sweep."""

    def __init__(self, config: HttpListener, ctx: ServeContext, routes: TableHolder) -> None:
        self.name = config.name
        self.config = config
        self.limits = config.limits
        self.ctx = ctx
        self.loop = ctx.loop
        self.routes = routes
        self.sites: dict[str, StaticFiles] = {}
        self.live = EndpointStates(max_connections=config.limits.upstream_max_connections)
        backends = config.backends
        self.chooser = Chooser(self.live, backends.availability_zone
                               if backends.az_preference == "locally-optimistic" else "")
        self.provision_routes = {route_key(route.host + route.path): ctx.provision[route.upstream]
                                 for route in config.routes
                                 if route.upstream is not None and route.upstream in ctx.provision}
        self.pool = ConnectionPool(ctx.loop, config.limits.upstream_pool_size,
                                   config.limits.connect_timeout)
        self.backend_tls = BackendTls(config.backends, ctx.config_dir)
        self.route_services = RouteServices.of(config.route_services)
        self.stats = HttpStats(config.name)
        register(self.stats)
        self.trusted_networks = [ipaddress.ip_network(n, strict=False)
                                 for n in config.trusted_proxies]
        self._trust: dict[str, bool] = {}
        self.sticky_names = frozenset(n.encode() for n in config.sticky_cookies)
        self.connect_allow = frozenset(config.connect_allow)
        self.proto = config.forwarded_proto.encode()
        self.connections: set[ClientConnection] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.sockets: list[Any] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        prefix = os.urandom(10).hex()
        self._rid_prefix = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-{prefix[16:20]}-".encode()
        self._rid_counter = int.from_bytes(os.urandom(4), "big")
        self.known_requests: dict[bytes, RequestHead] = {}  # the parsers' memo (RequestParser)
        self._failed_tls: set[tuple[str, str]] = set()  # reported since table _failed_serial
        self._failed_serial = -1

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, sockets: list[Any]) -> None:
        self.sockets = sockets
        for sock in sockets:
            server = await self.loop.create_server(lambda: ClientConnection(self), sock=sock,
                                                   backlog=4096)
            self.servers.append(server)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for sock in self.sockets]

    @property
    def active(self) -> int:
        return len(self.connections)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()
        self.servers = []

    async def drain(self, timeout: float) -> None:
        for conn in list(self.connections):
            conn.closing_soon()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        for conn in list(self.connections):
            conn.abort("shutdown")
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.pool.close()

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            conn.check_deadlines(now)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    # -- helpers for connections ------------------------------------------------------------

    def added(self, conn: ClientConnection) -> None:
        self.connections.add(conn)
        self.stats.active = len(self.connections)
        self._idle.clear()

    def removed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.stats.active = len(self.connections)
        if not self.connections:
            self._idle.set()

    def site(self, root: str) -> StaticFiles:
        """The document root of a static route, opened once per listener."""
        found = self.sites.get(root)
        if found is None:
            found = self.sites[root] = StaticFiles(root)
        return found

    def trusted(self, ip: str) -> bool:
        if not self.trusted_networks:
            return False
        known = self._trust.get(ip)
        if known is None:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return False
            known = any(address in network for network in self.trusted_networks)
            if len(self._trust) >= TRUST_CACHE_SIZE:
                self._trust.clear()
            self._trust[ip] = known
        return known

    def tls_endpoint_failed(self, key: str, address: str) -> None:
        """Tell ``ctx.endpoint_failed`` once per route table about a TLS endpoint that failed.

        Every request in flight to a dead endpoint fails on its own; one report
        is enough until the table changes (the endpoint pruned, or registered again).
        """
        report = self.ctx.endpoint_failed
        if report is None:
            return
        serial = self.routes.table.serial
        if serial != self._failed_serial:
            self._failed_serial = serial
            self._failed_tls.clear()
        if (key, address) not in self._failed_tls:
            self._failed_tls.add((key, address))
            report(key, address)

    def request_id(self) -> bytes:
        self._rid_counter = (self._rid_counter + 1) & 0xFFFFFFFFFFFF
        return b"%s%012x" % (self._rid_prefix, self._rid_counter)


class ClientConnection(RequestParser, asyncio.Protocol):
    """One client connection: parses requests, orders exchanges, owns the deadlines."""

    __slots__ = ("_at_rest", "_ended", "_head_bytes", "_headers", "_known", "_last_head",
                 "_parser", "_url", "client_ip", "client_ip_bytes",
                 "closing", "current", "flow", "leases", "max_header_bytes", "partial", "queue",
                 "read_deadline", "read_kind", "reading", "server", "started", "transport",
                 "trusted", "tunnel", "tunnel_backlog", "write_paused")

    def __init__(self, server: HttpServer) -> None:
        self.init_parser(server.limits.max_header_bytes, server.known_requests)
        # Per-server state
        self.server = server
        # Per-connection state
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.trusted = False
        self.closing = False
        self.write_paused = False
        self.partial = False
        self.read_deadline = 0.0
        self.read_kind = ""
        self.started = 0.0
        self.tunnel: Tunnel | None = None
        self.tunnel_backlog: list[bytes] | None = None
        self.leases: dict[str, Lease] | None = None  # provisioned backends, by upstream
        # Per-request state
        self.current: Exchange | None = None
        self.reading: Exchange | None = None
        self.queue: deque[Exchange] = deque()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "127.0.0.1"
        self.client_ip_bytes = self.client_ip.encode()
        self.trusted = self.server.trusted(self.client_ip)
        self.started = time.monotonic()
        self.read_deadline = self.started + self.server.limits.header_timeout
        self.read_kind = "header"
        server = self.server
        if len(server.connections) >= server.limits.max_connections:
            transport.abort()
            return
        server.added(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.tunnel_backlog is not None:
            self.tunnel_backlog.append(data)
            return
        try:
            offset = self.receive_data(data)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return
        if offset >= 0:
            # An Upgrade or CONNECT request: what follows belongs to the tunnel.
            self.tunnel_backlog = [data[offset:]] if offset < len(data) else []
            assert self.flow is not None
            self.flow.pause(TUNNEL)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.client_ended()
        if self.current is not None and self.current.request_complete:
            self.closing = True
            return True  # a half-closed client still gets its responses
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.tunnel is not None:
            self.tunnel.client_lost()
        current = self.current
        self.current = None
        if current is not None:
            current.abandon("client_closed")
        self.queue.clear()
        self.server.removed(self)
        if self.leases is not None:
            release_leases(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.client_full(True)
        elif self.current is not None and self.current.upstream is not None:
            flow = self.current.upstream.flow
            if flow is not None:
                flow.pause(PEER_FULL)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.client_full(False)
        elif self.current is not None and self.current.file is not None:
            self.current.file.pump()
        elif self.current is not None and self.current.upstream is not None:
            flow = self.current.upstream.flow
            if flow is not None:
                flow.resume(PEER_FULL)

    # -- RequestParser hooks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        # RequestParser.on_message_begin, inlined: this runs for every request.
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._at_rest = False
        self.partial = True
        self.read_deadline = time.monotonic() + self.server.limits.header_timeout
        self.read_kind = "header"

    def request_received(self, head: RequestHead) -> None:
        self.partial = False
        exchange = Exchange(self, head)
        self.reading = exchange
        limits = self.server.limits
        if head.chunked or head.content_length > 0:  # head.has_body, without a call
            self.read_deadline = time.monotonic() + limits.body_timeout
            self.read_kind = "body"
        else:
            self.read_kind = ""
        if limits.max_body_bytes and head.content_length > limits.max_body_bytes:
            exchange.oversize = True
        if self.current is None:
            self.current = exchange
            exchange.begin()
        else:
            self.queue.append(exchange)
            if len(self.queue) >= MAX_PIPELINE:
                assert self.flow is not None
                self.flow.pause(PIPELINE)

    def body_received(self, data: bytes) -> None:
        exchange = self.reading
        if exchange is not None:
            if self.read_kind == "body":
                self.read_deadline = time.monotonic() + self.server.limits.body_timeout
            exchange.body_in(data)

    def request_ended(self) -> None:
        exchange = self.reading
        self.reading = None
        if self.read_kind == "body":
            self.read_kind = ""
        if exchange is not None:
            exchange.body_end()
        if self.current is None and not self.closing:
            self.read_kind = "keepalive"
            self.read_deadline = time.monotonic() + self.server.limits.keepalive_timeout

    # -- exchanges --------------------------------------------------------------------------

    def exchange_done(self, exchange: Exchange, close: bool) -> None:
        """The response of ``exchange`` is fully written; start the next or close."""
        if self.current is not exchange:
            return
        self.current = None
        transport = self.transport
        assert transport is not None and self.flow is not None
        if close or self.closing:
            self.closing = True
            transport.close()
            return
        if self.flow.reasons:
            self.flow.resume(PEER_FULL | BACKLOG)
        if self.queue:
            if len(self.queue) < MAX_PIPELINE:
                self.flow.resume(PIPELINE)
            self.current = self.queue.popleft()
            self.current.begin()
        elif self.reading is None and not self.partial:
            self.read_kind = "keepalive"
            self.read_deadline = time.monotonic() + self.server.limits.keepalive_timeout

    def start_tunnel(self, upstream: UpstreamConnection, to_client: bytes,
                     exchange: Exchange) -> None:
        assert self.flow is not None
        backlog = b"".join(self.tunnel_backlog or [])
        self.tunnel_backlog = None
        self.current = None
        self.read_kind = ""

        def done(reason: str) -> None:
            exchange.tunnel_done(reason)

        self.tunnel = Tunnel(self.flow, upstream, done, time.monotonic())
        self.tunnel.start(backlog, to_client)
        if self.write_paused:
            self.tunnel.client_full(True)

    # -- errors and deadlines ---------------------------------------------------------------

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        """Malformed or oversized input: answer its status if nothing was sent, then close."""
        self.closing = True
        current = self.current
        if current is not None and current.response_started:
            self.abort("protocol_error")
            return
        if current is not None:
            current.abandon("protocol_error")
            self.current = None
        code = "header_too_large" if exc.status_hint == 431 else \
            "body_too_large" if exc.status_hint == 413 else "bad_request"
        self.send_error(exc.status_hint, code, "Bad request.", close=True)
        self.server.stats.request("", exc.status_hint, 0.0)

    def send_error(self, status: int, code: str, text: str, close: bool,
                   request_id: bytes = b"") -> None:
        """An error reply of the proxy's own; ``code`` names it in both
        ``X-Pointsman-Error`` and gorouter's ``X-Cf-RouterError``."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = text.encode() + b"\n"
        name = code.encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
                b"Content-Type: text/plain; charset=utf-8\r\n",
                b"Content-Length: %d\r\n" % len(body),
                b"X-Pointsman-Error: " + name + b"\r\nX-Cf-RouterError: " + name + b"\r\n"]
        if request_id:
            head.append(b"X-Vcap-Request-Id: " + request_id + b"\r\n")
        if close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        transport.write(b"".join(head) + body)
        if close:
            self.closing = True
            transport.close()

    def check_deadlines(self, now: float) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.check_idle(now, self.server.limits.tunnel_idle_timeout)
            return
        current = self.current
        if current is not None and current.response_deadline and \
                now > current.response_deadline:
            current.timed_out()
        kind = self.read_kind
        if kind and now > self.read_deadline:
            if kind == "body" and self.flow is not None and self.flow.reasons:
                # Reading is paused by the proxy (the upstream is slow): not the client's fault.
                self.read_deadline = now + self.server.limits.body_timeout
            elif kind == "keepalive" or (kind == "header" and not self.partial
                                         and self.current is None):
                if self.transport is not None:
                    self.transport.close()
            elif self.current is not None and self.current.response_started:
                self.abort("slow_client")
            else:
                if self.current is not None:
                    self.current.abandon("slow_client")
                    self.current = None
                self.send_error(408, "slow_client", "Request timed out.", close=True)
                self.server.stats.request("", 408, 0.0)

    def closing_soon(self) -> None:
        """Graceful stop: finish the response in progress, then close; idle ones close now.

        A connection that may have a request on its way is not idle: one just
        accepted, one half way through a head, or one with bytes the loop has
        not read yet. Closing a socket with unread bytes resets it, and the
        client would lose a request it had already sent. Such a connection
        gets ``DRAIN_GRACE`` seconds; a request that comes is answered with
        ``Connection: close``.
        """
        self.closing = True
        transport = self.transport
        if self.current is not None or self.tunnel is not None or transport is None:
            return
        if self.partial or self.read_kind == "header" or _unread_bytes(transport):
            self.read_deadline = min(self.read_deadline, time.monotonic() + DRAIN_GRACE)
            return
        transport.close()

    def abort(self, reason: str) -> None:
        if self.tunnel is not None:
            self.tunnel.end(reason)
        if self.transport is not None:
            self.transport.abort()


def _unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes waiting in the kernel for this connection that the loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except OSError:
        return 0
    return count[0]
