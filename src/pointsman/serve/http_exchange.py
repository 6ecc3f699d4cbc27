"""One request and its response: routing, endpoint choice, retries, streaming both ways.

An ``Exchange`` is created when a request head has been parsed and lives
until its response has been written (or it failed). Only the exchange at the
head of its connection's queue talks to an upstream. It is the
``ResponseSink`` of the upstream connection it holds, so the upstream's
parser callbacks land here and go straight to the client transport.

Retries: a connect failure, or a kept-alive upstream connection that turns
out closed before any response byte, is retried on another endpoint up to
``MAX_RETRIES`` times, as long as no body byte was sent or the request is
idempotent and its body (up to ``REPLAY_LIMIT``) was kept to send again.
A TLS endpoint whose handshake or certificate fails is retried the same way;
if the last attempt failed so, the reply is gorouter's status for it (525,
503 or 526, see ``backend_tls``) rather than 502. Such a failure, or a
failed connect, to a TLS endpoint is also reported to ``ctx.endpoint_failed``,
which takes a NATS-registered one out of the route table.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from pointsman.config import parse_listen
from pointsman.routing.table import Endpoint, RoutePool, RouteTable
from pointsman.serve.backend_tls import PRUNABLE, TLS_FAILURES
from pointsman.serve.flow import BACKLOG, PEER_FULL
from pointsman.serve.http_choice import RouteState, context_path, tls_name
from pointsman.serve.http_provision import connect_fresh, use_provision
from pointsman.serve.http_upstream import UpstreamConnection
from pointsman.serve.provision import Lease
from pointsman.serve.route_service import through_route_service
from pointsman.upstream.balancers import EndpointState
from pointsman.wire.forward import (
    StickyRequest,
    build_interim_head,
    build_request_head,
    build_response_head,
    sticky_request,
)
from pointsman.wire.http1 import (
    CHUNK_END,
    CRLF,
    HAS_APP_INSTANCE,
    HAS_COOKIE,
    IDEMPOTENT,
    RequestHead,
    ResponseHead,
    chunk_size_line,
)

if TYPE_CHECKING:
    from pointsman.serve.http1 import ClientConnection

__all__ = ["MAX_INTERIM", "MAX_RETRIES", "REPLAY_LIMIT", "Exchange"]

MAX_RETRIES = 3
"""Connect failures are retried on other endpoints up to this many times."""
MAX_INTERIM = 5
"""Interim (1xx) responses relayed per request; a backend sending more gets 502 (as Go's
HTTP client, gorouter's, gives up after five)."""
REPLAY_LIMIT = 64 * 1024
"""Body bytes of an idempotent request kept so it can be retried after they were sent."""

FILE_CHUNK = 256 * 1024
"""Bytes of a static file read and written at a time."""
COALESCE_LIMIT = 16 * 1024
"""Body bytes copied behind a response head to send both at once; larger go by writelines."""
BACKLOG_HIGH = 256 * 1024
"""Body bytes held for an upstream not yet attached before reading pauses."""

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ENDPOINT_FAILURE = "502 Bad Gateway: Registered endpoint failed to handle the request."
_CONNECTED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


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
        "fields",
        "file",
        "head",
        "head_bytes",
        "head_out",
        "interim",
        "lease",
        "lease_task",
        "oversize",
        "pool",
        "replay",
        "request_complete",
        "request_id",
        "response_deadline",
        "response_started",
        "rhead",
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
        self.file: FileSender | None = None
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
        self.head_out = b""
        self.interim = 0
        self.rhead: ResponseHead | None = None
        self.request_id = b""
        self.pool: RoutePool | None = None
        self.route: RouteState | None = None
        self.state: EndpointState | None = None
        self.endpoint: Endpoint | None = None
        # ``fields`` (the endpoint's X-CF-* lines for the request head) is set by
        # whoever chooses the endpoint, ``_pick`` or the provision lease, before
        # ``_attach`` reads it; left unset here to keep a store off every request.
        self.oversize = False
        self.upstream_keep = False
        self.replay: list[bytes] | None = [] if head.method in IDEMPOTENT else None
        self.upstream: UpstreamConnection | None = None
        self.sticky: StickyRequest | None = None
        self.tried: frozenset[EndpointState] = frozenset()
        self.attempts = 0
        self.lease: Lease | None = None
        self.lease_task: asyncio.Task[None] | None = None

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
        if not head.host or head.host == self.client.client_ip_bytes:
            self.fail(400, "empty_host", "Request has no usable Host.")
            return
        table = server.routes.table
        # A head the parser remembered comes again as the same object: its
        # route stands as long as the table does. Kept by the table's serial,
        # not the table: a remembered head must not keep replaced tables alive.
        memo = head.route_memo
        if memo is not None and memo[0] == table.serial:
            pool = memo[1]
        else:
            pool = self._lookup(table)
            if pool is None:
                return
        self.pool = pool
        if pool.static_root:
            self._serve_static(pool)
            return
        provision = server.provision_routes.get(pool.key)
        if provision is not None:
            use_provision(self, provision)
            return
        self.route_to(pool)

    def route_to(self, pool: RoutePool) -> None:
        """On to one of ``pool``'s endpoints: the instance the request names, the one its
        sticky session is on, or the balancer's choice."""
        server = self.client.server
        head = self.head
        self.route = server.chooser.route(pool)
        pinned = None
        if head.flags & HAS_APP_INSTANCE:
            found = self._pinned()
            if isinstance(found, bool):
                return
            pinned = found
        if head.flags & HAS_COOKIE and server.sticky_names:
            self.sticky = sticky_request(head, server.sticky_names)
        self._pick(pinned)

    def _lookup(self, table: RouteTable) -> RoutePool | None:
        """The pool for this request, remembered on its head; None when answered here."""
        head = self.head
        host = head.host.decode("latin-1")
        path = head.path.decode("latin-1")
        pool = table.lookup(host, path)
        if pool is not None:
            if pool.route_service_url:
                # Never remembered, so a remembered route is never one of these.
                through_route_service(self, pool)
                return None
            head.route_memo = (table.serial, pool)
            return pool
        empty = table.lookup_empty(host, path)
        if empty is not None and empty.route_service_url:
            through_route_service(self, empty)
        elif empty is not None:
            # A route whose endpoints all went away, kept for empty_pool_timeout.
            self.fail(503, "no_endpoints", "No endpoint can take the request.")
        else:
            self.fail(404, "unknown_route", f"Requested route ('{_printable(host)}') "
                                            "does not exist.")
        return None

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

    def _pick(self, pinned: EndpointState | None = None, failure: str = "") -> None:
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
            local = route.local
            if local is not None and not self.attempts:  # locally-optimistic: first try only
                state = route.balancer.select(local, "", now, self.tried)
            if state is None:
                state = route.balancer.select(route.states, "", now, self.tried)
        if state is None:
            if self.attempts:
                self._give_up(failure)
            else:
                self.fail(503, "no_endpoints", "No endpoint can take the request.")
            return
        # ``tried`` grows only when an attempt fails (``_upstream_failed``), so
        # the common request builds no set.
        self.state = state
        self.endpoint = route.endpoint_of[state]
        self.attempts += 1
        state.active += 1
        state.total += 1
        server = self.client.server
        address, self.fields = route.target_of[state]
        conn = server.pool.acquire(address)
        if conn is not None:
            self._attach(conn)
            return
        endpoint = self.endpoint
        if endpoint.tls:
            server.pool.connect(endpoint.host, endpoint.port, address, self._connected,
                                server.backend_tls.context(), tls_name(endpoint))
        else:
            server.pool.connect(endpoint.host, endpoint.port, address, self._connected)

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
                proto=server.proto, request_id=self.request_id or server.request_id(),
                start_ms=time.time_ns() // 1_000_000, extra=self.fields)
        transport = conn.transport
        assert transport is not None
        transport.write(self.head_bytes)
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
            request = self.head
            if status == 101:
                self.rhead = head  # on_upgraded follows with the bytes after the head
            elif status == 100:
                # Only a client that asked waits for it (RFC 9110 section 10.1.1), and
                # once its body is on the way it has no use for it: others do without.
                if request.expect_continue and not self.request_complete:
                    transport.write(_CONTINUE)
            elif request.version != "1.0":  # an HTTP/1.0 client knows no 1xx
                self.interim += 1
                if self.interim > MAX_INTERIM:
                    client.server.stats.upstream_error("too_many_interim")
                    self.fail(502, "endpoint_failure", _ENDPOINT_FAILURE)
                    return
                transport.write(build_interim_head(head))
            return
        self.response_started = True
        self.response_deadline = 0.0
        self.status = status
        self.rhead = head
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
        state = self.state
        if state is not None and state.fails:
            client.server.live.succeeded(state)
        instance = self.endpoint.instance_id if self.endpoint is not None else ""
        sticky = self.sticky
        force = sticky is not None and sticky.has_session and sticky.instance_id != instance
        # Held back so the head and the first body bytes leave in one send.
        self.head_out = build_response_head(
            head, request_id=self.request_id, chunk=self.chunk, close=self.close,
            http10=request.version == "1.0",
            sticky_names=client.server.sticky_names, instance_id=instance,
            force_sticky=force,
            cookie_path=self.route.cookie_path if self.route is not None
            else context_path(self.pool))

    def on_response_body(self, data: bytes) -> None:
        transport = self.client.transport
        assert transport is not None
        head = self.head_out
        if head:
            self.head_out = b""
            if self.chunk:
                transport.writelines((head, chunk_size_line(len(data)), data, CRLF))
            elif len(data) <= COALESCE_LIMIT:
                transport.write(head + data)
            else:
                transport.writelines((head, data))
        elif self.chunk:
            transport.writelines((chunk_size_line(len(data)), data, CRLF))
        else:
            transport.write(data)

    def flush(self) -> None:
        """End of one upstream read: a response head still held back goes out now."""
        head = self.head_out
        if head:
            self.head_out = b""
            transport = self.client.transport
            if transport is not None:
                transport.write(head)

    def on_response_end(self) -> None:
        client = self.client
        head = self.head_out
        if head:
            self.head_out = b""
            if client.transport is not None:
                client.transport.write(head + CHUNK_END if self.chunk else head)
        elif self.chunk and client.transport is not None:
            client.transport.write(CHUNK_END)
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            # A leased backend's address is its lease's alone, so pooling its
            # connections by address keeps them within the client connection.
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
        response = self.rhead
        assert response is not None
        client.transport.write(build_response_head(
            response, request_id=self.request_id, chunk=False, close=False,
            sticky_names=frozenset(), instance_id="", force_sticky=False))
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
            self.flush()
            if self.status and not self.chunk and error == "connection_lost" \
                    and self._close_delimited(conn):
                self.close = True
                self._finish()
                self.client.exchange_done(self, True)
                return
            self.client.current = None  # finished below, not again when the abort ends it
            self.client.abort("backend_closed")
            self._finish()
            return
        if reused and not received and self._retryable():
            # A kept-alive connection the backend had closed: not the endpoint's
            # fault, so it stays a candidate and the attempt does not count.
            self._release_state()
            self.attempts -= 1
            self._rewind()
            if self.lease is not None:
                connect_fresh(self, self.lease)  # the connection's own backend, anew
            else:
                self._pick()
            return
        self._upstream_failed(error.split(":")[0])

    def _close_delimited(self, conn: UpstreamConnection) -> bool:
        head = self.rhead
        return head is not None and head.content_length < 0 and not head.chunked

    def upstream_write_paused(self, paused: bool) -> None:
        flow = self.client.flow
        if flow is not None:
            flow.pause(PEER_FULL) if paused else flow.resume(PEER_FULL)

    def _retryable(self) -> bool:
        """Nothing of the body went out, or an idempotent request's body was kept to replay."""
        return not self.body_sent or self.replay is not None

    def _rewind(self) -> None:
        """Before another attempt: the body sent so far goes out again first.

        The head is built again for the next endpoint (its own X-CF-* fields),
        with the same request id.
        """
        self.head_bytes = b""
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
            self.tried = self.tried | {self.state}
        endpoint = self.endpoint
        if endpoint is not None and endpoint.tls and error in PRUNABLE \
                and self.lease is None and self.pool is not None:
            server.tls_endpoint_failed(self.pool.key, endpoint.address)
        self._release_state()
        if self.lease is None and self.attempts <= MAX_RETRIES and self._retryable():
            self._rewind()
            self._pick(None, error)
            return
        self._give_up(error)

    def _give_up(self, failure: str) -> None:
        """No attempt left: answer for the last failure (a TLS one has its own status)."""
        found = TLS_FAILURES.get(failure)
        if found is not None:
            self.fail(found[0], failure, found[1])
            return
        self.fail(502, "endpoint_failure", _ENDPOINT_FAILURE)

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

    def _serve_static(self, pool: RoutePool) -> None:
        """Answer from the route's folder; a file body streams as the client reads."""
        client = self.client
        head = self.head
        answer = client.server.site(pool.static_root).respond(
            head.method, head.target, {name.lower(): value for name, value in head.headers},
            context_path(pool).decode("latin-1").rstrip("/"))
        self.status = answer.status
        self.response_started = True
        unread = head.has_body and not self.request_complete
        self.close = self.close or unread
        lines = [b"HTTP/1.1 %d %s\r\n" % (answer.status, HTTPStatus(answer.status).phrase.encode())]
        lines.extend(name + b": " + value + b"\r\n" for name, value in answer.headers)
        if self.close:
            lines.append(b"Connection: close\r\n")
        elif head.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        assert client.transport is not None
        client.transport.write(b"".join(lines) + answer.body)
        if answer.path is not None and answer.length:
            self.file = FileSender(self, answer.path, answer.offset, answer.length)
            self.file.pump()
        else:
            self.static_done()

    def static_done(self) -> None:
        self.file = None
        self._finish()
        self.client.exchange_done(self, self.close)

    def abandon(self, reason: str) -> None:
        """The client is gone or broke the protocol: drop the upstream without reuse."""
        self._drop_upstream(abort=True)
        if self.lease_task is not None:
            self.lease_task.cancel()
            self.lease_task = None
        if self.file is not None:
            self.file.close()
            self.file = None
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
        state = self.state  # _release_state, written out: this runs for every request
        if state is not None:
            state.active -= 1
            self.state = None
        lease = self.lease  # the connection's: released when the client connection ends
        server = self.client.server
        duration = time.monotonic() - self.start
        route = self.pool.key if self.pool is not None else ""
        server.stats.request(route, self.status, duration)
        access = server.ctx.access
        if not access.enabled:
            access.count(server.name, self.status >= 500)
        else:
            head = self.head
            record = {
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
            }
            if lease is not None:
                record["backend_id"] = lease.backend_id
            access.write(record)

    # for serve.http_provision, which leases a backend before connecting
    attach = _attach
    connected = _connected
    finish = _finish
    # for serve.route_service, which routes a request after its route service
    pick = _pick


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:256]


class FileSender:
    """A file body written as fast as the client takes it, one chunk per write.

    It writes until the client's transport passes its high-water mark, then
    waits for ``pump`` from the connection's ``resume_writing``.
    """

    __slots__ = ("exchange", "file", "remaining")

    def __init__(self, exchange: Exchange, path: str, offset: int, length: int) -> None:
        self.exchange = exchange
        self.file = open(path, "rb")  # noqa: SIM115 - closed when sent or abandoned
        self.file.seek(offset)
        self.remaining = length

    def pump(self) -> None:
        client = self.exchange.client
        transport = client.transport
        while self.remaining and transport is not None and not client.write_paused:
            chunk = self.file.read(min(FILE_CHUNK, self.remaining))
            if not chunk:
                # The file shrank under us: the promised length cannot be kept,
                # so end the connection rather than corrupt its framing.
                self.exchange.close = True
                self.remaining = 0
                break
            self.remaining -= len(chunk)
            transport.write(chunk)
        if not self.remaining:
            self.close()
            self.exchange.static_done()

    def close(self) -> None:
        self.file.close()
