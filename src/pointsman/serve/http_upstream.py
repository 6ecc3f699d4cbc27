"""Connections to backends: one Protocol per connection, kept alive in pools per endpoint.

An ``UpstreamConnection`` parses responses with llhttp (``ResponseParser``)
and hands every event straight to the exchange it serves; between requests it
waits in its endpoint's idle list. ``ConnectionPool`` hands out the most
recently used idle connection (warm, least likely to have been closed by the
backend's own idle timer) and keeps at most ``size`` idle ones per endpoint.

After a 101 or a CONNECT the same object carries raw bytes for a ``Tunnel``.

Idle lists are keyed by a pool key, not just the address: a TLS endpoint's
key also carries ``tls`` and the name its certificate was checked against
(``http_choice.pool_key``), so a connection is only ever reused for the same
address, the same transport security and the same verified name.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING, Any, Protocol, cast

from pointsman.serve.backend_tls import classify
from pointsman.serve.flow import PEER_FULL, WRITE_HIGH, WRITE_LOW, FlowControl
from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.http1 import ResponseHandler, ResponseParser

if TYPE_CHECKING:
    from pointsman.serve.http_tunnel import Tunnel

__all__ = ["ConnectionPool", "ResponseSink", "UpstreamConnection"]


class ResponseSink(ResponseHandler, Protocol):
    """What an upstream connection reports to the exchange it serves.

    The parser reports heads, bodies and ends to it directly; the connection
    adds the rest.
    """

    def flush(self) -> None: ...

    def on_upgraded(self, rest: bytes) -> None: ...

    def on_upstream_error(self, conn: UpstreamConnection, error: str) -> None: ...

    def upstream_write_paused(self, paused: bool) -> None: ...


class UpstreamConnection(ResponseParser, asyncio.Protocol):
    """One connection to one backend address."""

    __slots__ = ("_at_head", "_no_body", "_rbuf", "_rended", "_rparser",
                 "address", "closed", "flow", "pool", "received", "sink", "transport",
                 "tunnel", "uses", "write_paused")

    def __init__(self, pool: ConnectionPool, address: str) -> None:
        self.init_response_parser()
        self.pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.sink: ResponseSink | None = None
        self.tunnel: Tunnel | None = None
        self.closed = False
        self.write_paused = False
        self.received = False
        self.uses = 0

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        sink = self.sink
        if sink is None:
            self.close()  # bytes on an idle connection: nothing can be framed after this
            return
        self.received = True
        try:
            offset = self.receive_response_data(data)
        except RemoteProtocolError as exc:
            sink.on_upstream_error(self, f"bad_response: {exc}")
            return
        if offset >= 0:
            sink.on_upgraded(data[offset:])
        elif self.sink is sink:
            sink.flush()

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.upstream_ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.upstream_lost()
            return
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_error(self, "connection_lost")
        else:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.upstream_full(True)
        elif self.sink is not None:
            self.sink.upstream_write_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.upstream_full(False)
        elif self.sink is not None:
            self.sink.upstream_write_paused(False)

    # -- use ----------------------------------------------------------------------------

    def attach(self, sink: ResponseSink, head_only_response: bool) -> None:
        self.sink = sink
        self.received = False
        self.uses += 1
        if head_only_response:
            self.expect_no_body()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.sink = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.pool.forget(self)

    def abort(self) -> None:
        self.sink = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
        self.pool.forget(self)


class ConnectionPool:
    """Idle keep-alive connections per endpoint address, at most ``size`` each."""

    __slots__ = ("connect_timeout", "idle", "loop", "size", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int,
                 connect_timeout: float) -> None:
        self.loop = loop
        self.size = size
        self.connect_timeout = connect_timeout
        self.idle: dict[str, list[UpstreamConnection]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def acquire(self, address: str) -> UpstreamConnection | None:
        idle = self.idle.get(address)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None \
                    and not conn.transport.is_closing():
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Keep ``conn`` for the next request to its address, or close it if full."""
        conn.sink = None
        if conn.closed:
            return
        if conn.flow is not None and conn.flow.reasons:
            conn.flow.resume(PEER_FULL)
        idle = self.idle.get(conn.address)
        if idle is None:
            idle = self.idle[conn.address] = []
        if len(idle) >= self.size:
            conn.close()
            return
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self.idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)

    def connect(self, host: str, port: int, address: str, done: Any,
                tls: ssl.SSLContext | None = None, server_name: str = "") -> None:
        """Open a new connection; ``done(conn, error)`` is called exactly once.

        ``address`` is the pool key the connection goes back under. With
        ``tls`` the connection is TLS, its certificate checked for
        ``server_name`` (also sent as SNI); the handshake has its own
        ``connect_timeout``, so a backend that never answers the hello (one
        that does not speak TLS and waits for a request line) is a failed
        handshake, not a failed connect.
        """
        task = self.loop.create_task(self._connect(host, port, address, done, tls, server_name))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, host: str, port: int, address: str, done: Any,
                       tls: ssl.SSLContext | None, server_name: str) -> None:
        timeout = self.connect_timeout
        try:
            if tls is None:
                connecting = self.loop.create_connection(
                    lambda: UpstreamConnection(self, address), host, port)
            else:
                connecting = self.loop.create_connection(
                    lambda: UpstreamConnection(self, address), host, port, ssl=tls,
                    server_hostname=server_name or host, ssl_handshake_timeout=timeout)
                timeout *= 2  # the connect, then the handshake, each within connect_timeout
            _, conn = await asyncio.wait_for(connecting, timeout)
        except TimeoutError:
            done(None, "connect_timeout")
            return
        except (OSError, ssl.SSLError, EOFError) as exc:
            done(None, classify(exc) if tls is not None else "connect_failed")
            return
        done(conn, "")

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in list(idle):
                conn.close()
        self.idle.clear()
        for task in self.tasks:
            task.cancel()
