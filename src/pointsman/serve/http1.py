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

Pipelined requests are parsed as they arrive and wait in a queue; only the
head of the queue talks to an upstream, so responses leave in request order.
Every write-buffer high mark pauses reading on the opposite side, so a slow
reader at either end holds the other back instead of filling memory.

Timeouts (slow client header/body -> 408, keep-alive idle, upstream
response -> 504, idle tunnels) are deadlines checked by one periodic sweep
per listener, not a timer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections import deque
from typing import Any, cast

from pointsman.config import HttpListener, parse_listen
from pointsman.routing.table import Endpoint, RoutePool, RouteTable, TableHolder, route_key
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
from pointsman.serve.http_choice import Chooser, RouteState
from pointsman.serve.http_metrics import HttpStats, register
from pointsman.serve.http_tunnel import Tunnel
from pointsman.serve.http_upstream import ConnectionPool, UpstreamConnection
from pointsman.serve.tcp import open_listening_sockets
from pointsman.upstream.balancers import EndpointState
from pointsman.upstream.pool import EndpointStates
from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.forward import (
    StickyRequest,
    build_request_head,
    build_response_head,
    sticky_request,
)
from pointsman.wire.http1 import (
    CHUNK_END,
    CRLF,
    IDEMPOTENT,
    RequestHead,
    RequestParser,
    ResponseHead,
    chunk_size_line,
)

__all__ = ["ClientConnection", "Exchange", "HttpServer", "start", "static_table"]

MAX_RETRIES = 3
"""Connect failures are retried on other endpoints up to this many times."""
MAX_PIPELINE = 16
"""Queued pipelined requests before reading from the client pauses."""
BACKLOG_HIGH = 256 * 1024
"""Body bytes held for an upstream not yet attached before reading pauses."""
REPLAY_LIMIT = 64 * 1024
"""Body bytes of an idempotent request kept so it can be retried after they were sent."""
SWEEP_INTERVAL = 0.5
TRUST_CACHE_SIZE = 4096

_REASONS = {400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found", 408: b"Request Timeout",
            413: b"Content Too Large", 431: b"Request Header Fields Too Large",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONNECTED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


def static_table(config: HttpListener, ctx: ServeContext) -> RouteTable:
    """The routes written in the file, as the first table snapshot."""
    pools = []
    for route in config.routes:
        if route.upstream is not None:
            addresses = [parse_listen(e) for e in _upstream_endpoints(ctx, route.upstream)]
        else:
            addresses = [parse_listen(e) for e in route.endpoints]
        endpoints = tuple(Endpoint(host, port, app=route.host, instance_id=f"{host}:{port}",
                                   instance_index=str(i))
                          for i, (host, port) in enumerate(addresses))
        key = route_key(route.host + route.path)
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
    await server.start(open_listening_sockets(config.listen, ctx.reuse_port))
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
        self.live = EndpointStates(max_connections=config.limits.upstream_max_connections)
        self.chooser = Chooser(self.live)
        self.pool = ConnectionPool(ctx.loop, config.limits.upstream_pool_size,
                                   config.limits.connect_timeout)
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
        self._rid_prefix = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-{prefix[16:20]}-"
        self._rid_counter = int.from_bytes(os.urandom(4), "big")

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

    def request_id(self) -> bytes:
        self._rid_counter = (self._rid_counter + 1) & 0xFFFFFFFFFFFF
        return f"{self._rid_prefix}{self._rid_counter:012x}".encode()


class ClientConnection(RequestParser, asyncio.Protocol):
    """One client connection: parses requests, orders exchanges, owns the deadlines."""

    __slots__ = ("_head_bytes", "_headers", "_parser", "_url", "client_ip", "client_ip_bytes",
                 "closing", "current", "flow", "max_header_bytes", "partial", "queue",
                 "read_deadline", "read_kind", "reading", "server", "started", "transport",
                 "trusted", "tunnel", "tunnel_backlog", "write_paused")

    def __init__(self, server: HttpServer) -> None:
        self.init_parser(server.limits.max_header_bytes)
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
        elif self.current is not None and self.current.upstream is not None:
            flow = self.current.upstream.flow
            if flow is not None:
                flow.resume(PEER_FULL)

    # -- RequestParser hooks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.partial = True
        self.read_deadline = time.monotonic() + self.server.limits.header_timeout
        self.read_kind = "header"

    def request_received(self, head: RequestHead) -> None:
        self.partial = False
        exchange = Exchange(self, head)
        self.reading = exchange
        limits = self.server.limits
        if head.has_body:
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
        if self.write_paused:
            self.tunnel.client_full(True)
        self.tunnel.start(backlog, to_client)

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
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = text.encode() + b"\n"
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
                b"Content-Type: text/plain; charset=utf-8\r\n",
                b"Content-Length: %d\r\n" % len(body),
                b"X-Pointsman-Error: " + code.encode() + b"\r\n"]
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
            if kind == "keepalive" or (kind == "header" and not self.partial
                                       and self.current is None):
                self.abort("idle")
            elif self.current is not None and self.current.response_started:
                self.abort("slow_client")
            else:
                if self.current is not None:
                    self.current.abandon("slow_client")
                    self.current = None
                self.send_error(408, "slow_client", "Request timed out.", close=True)
                self.server.stats.request("", 408, 0.0)

    def closing_soon(self) -> None:
        """Graceful stop: finish the response in progress, then close; idle ones close now."""
        self.closing = True
        if self.current is None and self.tunnel is None and self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        if self.tunnel is not None:
            self.tunnel.end(reason)
        if self.transport is not None:
            self.transport.abort()


class Exchange:
    """One request and its response, from head received to response written."""

    __slots__ = (
        "attempts",
        "backlog",
        "backlog_bytes",
        "body_bytes",
        "body_sent",
        "chunk",
        "client",
        "close",
        "endpoint",
        "head",
        "head_bytes",
        "oversize",
        "pool",
        "replay",
        "request_complete",
        "request_id",
        "response_deadline",
        "response_started",
        "route",
        "start",
        "state",
        "status",
        "sticky",
        "tried",
        "upstream",
        "upstream_keep",
    )

    def __init__(self, client: ClientConnection, head: RequestHead) -> None:
        self.client = client
        self.head = head
        self.start = time.monotonic()
        self.request_complete = False
        self.response_started = False
        self.response_deadline = 0.0
        self.close = not head.keep_alive
        self.chunk = False
        self.status = 0
        self.backlog: list[bytes] | None = None
        self.backlog_bytes = 0
        self.body_bytes = 0
        self.body_sent = False
        self.head_bytes = b""
        self.request_id = b""
        self.pool: RoutePool | None = None
        self.route: RouteState | None = None
        self.state: EndpointState | None = None
        self.endpoint: Endpoint | None = None
        self.oversize = False
        self.upstream_keep = False
        self.replay: list[bytes] | None = [] if head.method in IDEMPOTENT else None
        self.upstream: UpstreamConnection | None = None
        self.sticky: StickyRequest | None = None
        self.tried: frozenset[EndpointState] = frozenset()
        self.attempts = 0

    # -- routing ------------------------------------------------------------------------

    def begin(self) -> None:
        """This exchange is now at the head of the queue: route it and find an upstream."""
        server = self.client.server
        head = self.head
        if self.oversize:
            self.too_large()
            return
        if head.method == b"CONNECT":
            self._connect_tunnel()
            return
        host = head.host.decode("latin-1")
        if not host or host == self.client.client_ip:
            self.fail(400, "empty_host", "Request has no usable Host.")
            return
        pool = server.routes.table.lookup(host, head.path.decode("latin-1"))
        if pool is None:
            self.fail(404, "unknown_route", f"Requested route ('{_printable(host)}') "
                                            "does not exist.")
            return
        self.pool = pool
        self.route = server.chooser.route(pool)
        pinned = self._pinned()
        if isinstance(pinned, bool):
            return
        self.sticky = sticky_request(head, server.sticky_names) if server.sticky_names else None
        self._pick(pinned)

    def _pinned(self) -> EndpointState | bool | None:
        """``X-Cf-App-Instance: app:index``: that one instance, 400 when malformed or gone."""
        for name, value in self.head.headers:
            if len(name) == 17 and name.lower() == b"x-cf-app-instance":
                app, sep, index = value.decode("latin-1").strip().partition(":")
                if not sep or not app or not index.isdigit():
                    self.fail(400, "invalid_cf_app_instance_header",
                              "Invalid X-Cf-App-Instance header.")
                    return False
                assert self.route is not None
                state = self.route.app_instance(app, index)
                if state is None:
                    self.fail(400, "unknown_route", "Requested instance does not exist.")
                    return False
                return state
        return None

    def _pick(self, pinned: EndpointState | None = None) -> None:
        route = self.route
        assert route is not None
        now = time.monotonic()
        state = pinned
        if state is None and self.sticky is not None and self.sticky.instance_id \
                and not self.tried:
            sticky = route.instance(self.sticky.instance_id)
            if sticky is not None and sticky.available(now):
                state = sticky
        if state is None:
            state = route.balancer.select(route.states, "", now, self.tried)
        if state is None:
            if self.attempts:
                self.fail(502, "endpoint_failure",
                          "502 Bad Gateway: Registered endpoint failed to handle the request.")
            else:
                self.fail(503, "no_endpoints", "No endpoint can take the request.")
            return
        self.state = state
        self.endpoint = route.by_state[id(state)]
        self.tried = self.tried | {state}
        self.attempts += 1
        state.active += 1
        state.total += 1
        server = self.client.server
        conn = server.pool.acquire(self.endpoint.address)
        if conn is not None:
            self._attach(conn)
        else:
            endpoint = self.endpoint
            server.pool.connect(endpoint.host, endpoint.port, endpoint.address, self._connected)

    def _connected(self, conn: UpstreamConnection | None, error: str) -> None:
        client = self.client
        if client.current is not self:
            if conn is not None:
                client.server.pool.release(conn)
            return
        if conn is None:
            self._upstream_failed(error)
            return
        if client.transport is None or client.transport.is_closing():
            client.server.pool.release(conn)
            self._release_state()
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        head = self.head
        conn.attach(self, head.method == b"HEAD")
        if not self.head_bytes:
            server = self.client.server
            self.head_bytes, self.request_id = build_request_head(
                head, client_ip=self.client.client_ip_bytes, trusted=self.client.trusted,
                proto=server.proto, request_id=server.request_id(),
                start_ms=int(time.time() * 1000))
        conn.write(self.head_bytes)
        backlog = self.backlog
        if backlog:
            self.backlog = None
            self.backlog_bytes = 0
            self._write_body(backlog)
            flow = self.client.flow
            if flow is not None:
                flow.resume(BACKLOG)
        if self.request_complete:
            self._request_sent()
        if self.client.write_paused and conn.flow is not None:
            conn.flow.pause(PEER_FULL)
        if conn.write_paused and self.client.flow is not None:
            self.client.flow.pause(PEER_FULL)

    # -- request body ------------------------------------------------------------------------

    def body_in(self, data: bytes) -> None:
        self.body_bytes += len(data)
        limit = self.client.server.limits.max_body_bytes
        if limit and self.body_bytes > limit:
            if self.client.current is self:
                self.too_large()
            else:
                self.oversize = True
            return
        if self.upstream is not None:
            self._write_body([data])
            return
        if self.status:
            return  # already answered (an error): the rest of the body is dropped
        if self.backlog is None:
            self.backlog = []
        self.backlog.append(data)
        self.backlog_bytes += len(data)
        if self.backlog_bytes > BACKLOG_HIGH and self.client.flow is not None:
            self.client.flow.pause(BACKLOG)

    def _write_body(self, chunks: list[bytes]) -> None:
        upstream = self.upstream
        assert upstream is not None and upstream.transport is not None
        self.body_sent = True
        replay = self.replay
        if replay is not None:
            replay.extend(chunks)
            if sum(map(len, replay)) > REPLAY_LIMIT:
                self.replay = None
        if self.head.chunked:
            parts: list[bytes] = []
            for data in chunks:
                parts += (chunk_size_line(len(data)), data, CRLF)
            upstream.transport.writelines(parts)
        elif len(chunks) == 1:
            upstream.transport.write(chunks[0])
        else:
            upstream.transport.writelines(chunks)

    def body_end(self) -> None:
        self.request_complete = True
        if self.upstream is not None:
            self._request_sent()

    def _request_sent(self) -> None:
        if self.head.chunked and self.upstream is not None:
            self.upstream.write(CHUNK_END)
        if not self.response_started:
            self.response_deadline = time.monotonic() + \
                self.client.server.limits.response_timeout

    def too_large(self) -> None:
        self.client.closing = True
        if self.response_started:
            self.client.abort("body_too_large")
            return
        self._drop_upstream(abort=True)
        self.fail(413, "body_too_large", "Request body too large.")

    # -- response ------------------------------------------------------------------------------

    def on_response_head(self, head: ResponseHead) -> None:
        status = head.status
        client = self.client
        transport = client.transport
        assert transport is not None
        if status < 200:
            if status == 100 and self.head.expect_continue and not self.request_complete:
                transport.write(_CONTINUE)
            return
        if status == 101:
            return  # on_upgraded follows with the bytes after the head
        self.response_started = True
        self.response_deadline = 0.0
        self.status = status
        self.upstream_keep = head.keep_alive
        request = self.head
        if request.method == b"HEAD" or status in (204, 304) or head.content_length >= 0:
            self.chunk = False
        elif request.version == "1.1":
            self.chunk = True
        else:
            self.close = True
        if not self.request_complete or request.upgrade or client.closing:
            self.close = True
        if self.state is not None:
            client.server.live.succeeded(self.state)
        instance = self.endpoint.instance_id.encode() if self.endpoint is not None else b""
        sticky = self.sticky
        force = sticky is not None and sticky.has_session and \
            sticky.instance_id.encode() != instance
        transport.write(build_response_head(
            head, request_id=self.request_id, chunk=self.chunk, close=self.close,
            sticky_names=client.server.sticky_names, instance_id=instance,
            force_sticky=force, cookie_path=_context_path(self.pool)))

    def on_response_body(self, data: bytes) -> None:
        transport = self.client.transport
        assert transport is not None
        if self.chunk:
            transport.writelines((chunk_size_line(len(data)), data, CRLF))
        else:
            transport.write(data)

    def on_response_end(self) -> None:
        client = self.client
        if self.chunk and client.transport is not None:
            client.transport.write(CHUNK_END)
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            if self.upstream_keep and self.request_complete and not upstream.closed:
                client.server.pool.release(upstream)
            else:
                upstream.close()
        self._finish()
        client.exchange_done(self, self.close)

    def on_upgraded(self, rest: bytes) -> None:
        client = self.client
        upstream = self.upstream
        assert upstream is not None and client.transport is not None
        self.response_started = True
        self.response_deadline = 0.0
        self.status = 101
        head = upstream._rheaders
        response = ResponseHead(101, upstream._rstatus, "1.1", head, -1, False, False)
        client.transport.write(build_response_head(
            response, request_id=self.request_id, chunk=False, close=False,
            sticky_names=frozenset(), instance_id=b"", force_sticky=False))
        self.upstream = None
        client.start_tunnel(upstream, rest, self)

    def tunnel_done(self, reason: str) -> None:
        self._finish()

    def on_upstream_error(self, conn: UpstreamConnection, error: str) -> None:
        if conn is not self.upstream:
            return
        reused = conn.uses > 1
        received = conn.received
        self.upstream = None
        conn.abort()
        if self.response_started:
            if self.status and not self.chunk and error == "connection_lost" \
                    and self._close_delimited(conn):
                self.close = True
                self._finish()
                self.client.exchange_done(self, True)
                return
            self.client.abort("backend_closed")
            self._finish()
            return
        if reused and not received and self._retryable():
            # A kept-alive connection the backend had closed: not the endpoint's fault.
            state = self.state
            self._release_state()
            if state is not None:
                self.tried = self.tried - {state}
            self.attempts -= 1
            self._rewind()
            self._pick()
            return
        self._upstream_failed(error.split(":")[0])

    def _close_delimited(self, conn: UpstreamConnection) -> bool:
        for name, _value in conn._rheaders:
            lname = name.lower()
            if lname in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def upstream_write_paused(self, paused: bool) -> None:
        flow = self.client.flow
        if flow is not None:
            flow.pause(PEER_FULL) if paused else flow.resume(PEER_FULL)

    def _retryable(self) -> bool:
        """Nothing of the body went out, or an idempotent request's body was kept to replay."""
        return not self.body_sent or self.replay is not None

    def _rewind(self) -> None:
        """Before another attempt: the body sent so far goes out again first."""
        if self.body_sent and self.replay is not None:
            self.backlog = self.replay + (self.backlog or [])
            self.backlog_bytes = sum(map(len, self.backlog))
            self.replay = []
            self.body_sent = False

    def _upstream_failed(self, error: str) -> None:
        server = self.client.server
        server.stats.upstream_error(error)
        if self.state is not None:
            server.live.failed(self.state, time.monotonic())
        self._release_state()
        if self.attempts <= MAX_RETRIES and self._retryable():
            self._rewind()
            self._pick()
            return
        self.fail(502, "endpoint_failure",
                  "502 Bad Gateway: Registered endpoint failed to handle the request.")

    def timed_out(self) -> None:
        self.response_deadline = 0.0
        self.client.server.stats.upstream_error("timeout")
        self._drop_upstream(abort=True)
        self.fail(504, "endpoint_timeout", "Gateway timeout: the endpoint did not answer in time.")

    # -- CONNECT ----------------------------------------------------------------------------

    def _connect_tunnel(self) -> None:
        target = self.head.target.decode("latin-1")
        server = self.client.server
        if target not in server.connect_allow:
            self.fail(403, "connect_refused", "CONNECT to this target is not allowed.")
            return
        host, port = parse_listen(target)
        address = f"{host}:{port}"
        server.pool.connect(host, port, address, self._tunnel_connected)

    def _tunnel_connected(self, conn: UpstreamConnection | None, error: str) -> None:
        client = self.client
        if conn is None:
            client.server.stats.upstream_error(error)
            self.fail(502, "endpoint_failure", "CONNECT target unreachable.")
            return
        if client.transport is None or client.transport.is_closing():
            conn.close()
            return
        self.status = 200
        self.response_started = True
        client.transport.write(_CONNECTED)
        client.start_tunnel(conn, b"", self)

    # -- endings ---------------------------------------------------------------------------

    def fail(self, status: int, code: str, text: str) -> None:
        """Answer an error of the proxy's own (nothing of a response was sent yet)."""
        self.status = status
        self.response_started = True
        self.response_deadline = 0.0
        self._drop_upstream(abort=True)
        unread = self.head.has_body and not self.request_complete
        close = self.close or unread or status in (400, 408, 413) \
            or self.head.upgrade or self.head.method == b"CONNECT"
        if not self.request_id:
            self.request_id = self.client.server.request_id()
        self.client.send_error(status, code, text, close, self.request_id)
        self._finish()
        self.client.exchange_done(self, close)

    def abandon(self, reason: str) -> None:
        """The client is gone or broke the protocol: drop the upstream without reuse."""
        self._drop_upstream(abort=True)
        if not self.status:
            self.status = 499
        self._finish()

    def _drop_upstream(self, abort: bool) -> None:
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abort() if abort else upstream.close()

    def _release_state(self) -> None:
        state = self.state
        if state is not None:
            state.active -= 1
            self.state = None

    def _finish(self) -> None:
        self._release_state()
        server = self.client.server
        duration = time.monotonic() - self.start
        route = self.pool.key if self.pool is not None else ""
        server.stats.request(route, self.status, duration)
        access = server.ctx.access
        if access.enabled:
            head = self.head
            access.write({
                "ts": round(time.time(), 6),
                "kind": "http",
                "listener": server.name,
                "client": self.client.client_ip,
                "method": head.method.decode("latin-1"),
                "host": head.host.decode("latin-1"),
                "target": head.target.decode("latin-1"),
                "status": self.status,
                "route": route,
                "backend": self.endpoint.address if self.endpoint is not None else None,
                "request_id": self.request_id.decode("latin-1"),
                "bytes_in": self.body_bytes,
                "duration_ms": round(duration * 1000, 3),
            })


def _context_path(pool: RoutePool | None) -> bytes:
    if pool is None:
        return b"/"
    cut = pool.key.find("/")
    return pool.key[cut:].encode() if cut >= 0 else b"/"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:256]
