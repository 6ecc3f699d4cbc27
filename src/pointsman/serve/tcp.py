"""The content-aware TCP listener: buffer, ask the route function, connect, replay, splice.

Everything runs on readiness callbacks over non-blocking sockets: accepting,
reading the undecided buffer, connecting, and (through ``serve.relay``) moving
bytes. A coroutine appears only when the user's route function is itself a
coroutine, or a host name must be resolved.

Guards around user code: the buffer before a decision is bounded, a decision
must come within ``decision_timeout``, and anything the function raises or
answers wrongly closes that one connection with a logged reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from pointsman.config import Limits, TcpListener
from pointsman.routing.content import (
    CLOSE,
    NOOP,
    BadDecision,
    Conn,
    Decision,
    Remote,
    Route,
    RouteFunction,
    normalise,
)
from pointsman.routing.loader import RouteModule, load_route_module
from pointsman.serve.context import ServeContext, failed_connection
from pointsman.serve.provision import Lease, ProvisionPool
from pointsman.serve.relay import PipePool, Relay
from pointsman.serve.sockets import open_listening_sockets
from pointsman.upstream.balancers import EndpointState
from pointsman.upstream.provision import PoolExhausted
from pointsman.wire import proxy_protocol

__all__ = ["TcpServer", "open_listening_sockets", "start"]

RECV_CHUNK = 64 * 1024
ACCEPTS_PER_WAKEUP = 64
MAX_REDIRECTS = 4
ACCEPT_PAUSE_ON_EMFILE = 0.1


async def start(config: TcpListener, ctx: ServeContext) -> TcpServer:
    """Load the route function, bind, and begin accepting."""
    module = load_route_module(config.route, ctx.config_dir) if config.route else None
    server = TcpServer(config, ctx, module, ctx.listening_sockets(config.listen))
    server.start()
    return server


class TcpServer:
    """One ``protocol = "tcp"`` listener and the sessions it accepted."""

    def __init__(self, config: TcpListener, ctx: ServeContext,
                 module: RouteModule | None, sockets: list[socket.socket]) -> None:
        self.name = config.name
        self.config = config
        self.limits: Limits = config.limits
        self.ctx = ctx
        self.loop = ctx.loop
        self.poller = ctx.poller
        self.route: RouteFunction | None = module.route if module else None
        self.on_connect = module.on_connect if module else None
        self.sockets = sockets
        # A listener bound to one address knows every connection's local end;
        # only a wildcard bind needs getsockname per connection (None here).
        self.local: dict[int, tuple[str, int] | None] = {
            sock.fileno(): _specific_address(sock) for sock in sockets}
        self.sessions: set[Session] = set()
        self.pipes = PipePool()
        self.accepting = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for sock in self.sockets]

    @property
    def active(self) -> int:
        return len(self.sessions)

    def start(self) -> None:
        self.accepting = True
        for sock in self.sockets:
            self.poller.add_reader(sock.fileno(), partial(self._on_acceptable, sock))

    def stop_accepting(self) -> None:
        if not self.accepting:
            return
        self.accepting = False
        for sock in self.sockets:
            self.poller.remove_reader(sock.fileno())
            sock.close()

    async def drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        for session in list(self.sessions):
            session.close("shutdown")
        self.pipes.close()

    def _on_acceptable(self, listening: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                sock, address = listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting(listening, exc)
                return
            if len(self.sessions) >= self.limits.max_connections:
                sock.close()
                continue
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, sock, address, self.local.get(listening.fileno()))
            self.sessions.add(session)
            self._idle.clear()
            session.start()

    def _pause_accepting(self, listening: socket.socket, exc: OSError) -> None:
        """Out of descriptors: back off briefly instead of spinning on a ready socket."""
        self.ctx.events.event("error", "accept_failed", listener=self.name, error=str(exc))
        self.poller.remove_reader(listening.fileno())

        def resume() -> None:
            if self.accepting:
                self.poller.add_reader(listening.fileno(), partial(self._on_acceptable, listening))

        self.loop.call_later(ACCEPT_PAUSE_ON_EMFILE, resume)

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()


class Session:
    """One client connection, from accept until its relay ends.

    Before a decision it owns the client socket and a bounded buffer; after it
    the ``Relay`` owns both sockets and the session only waits to log.
    """

    __slots__ = ("_awaiting_header", "_decision_timer", "_reading", "attempts", "backend",
                 "buffer", "client", "conn", "connect_timer", "endpoint", "fd", "lease", "loop",
                 "poller", "relay", "remote", "route", "server", "started", "task", "tried")

    def __init__(self, server: TcpServer, sock: socket.socket, address: Any,
                 local_address: tuple[str, int] | None = None) -> None:
        # Per-server state
        self.server = server
        self.loop = server.loop
        self.poller = server.poller
        # Per-connection state
        self.client = sock
        self.fd = sock.fileno()
        self.started = time.monotonic()
        peer = address[:2] if isinstance(address, tuple) else (str(address), 0)
        local = local_address or sock.getsockname()
        self.conn = Conn(client=peer, local=local[:2] if isinstance(local, tuple) else (local, 0),
                         listener=server.name)
        self.buffer = bytearray()
        self._reading = False
        self._awaiting_header = False
        self._decision_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Any] | None = None
        # Per-attempt state
        self.route: Route | None = None
        self.remote: Remote | None = None
        self.endpoint: EndpointState | None = None
        self.backend: socket.socket | None = None
        self.connect_timer: asyncio.TimerHandle | None = None
        self.attempts = 0
        self.tried: frozenset[EndpointState] = frozenset()
        self.relay: Relay | None = None
        self.lease: Lease | None = None

    # -- before the decision -------------------------------------------------

    def start(self) -> None:
        if self.server.config.accept_proxy_protocol:
            # The balancer in front names the real client before anything else.
            self._awaiting_header = True
            self._arm_decision_timer()
            self._on_readable()
            return
        self._begin()

    def _begin(self) -> None:
        """The client is known: route at once (static upstream) or on the bytes."""
        if self.server.route is None:
            # A static upstream needs no bytes first: protocols where the server
            # speaks first (SMTP, MySQL, SSH banners) must not wait on the client.
            self._apply(Route(remote=Remote(upstream=self.server.config.upstream)))
            return
        self._arm_decision_timer()
        if self.buffer:
            self._decide()
        elif self.server.on_connect is not None:
            self._ask(self.server.on_connect, self.conn)
        else:
            self._on_readable()

    def _arm_decision_timer(self) -> None:
        if self._decision_timer is None:
            self._decision_timer = self.loop.call_later(self.server.limits.decision_timeout,
                                                        self.close, "decision_timeout")

    def _take_proxy_header(self) -> bool:
        """Strip a PROXY protocol header off the buffer; ``False`` until there is one."""
        try:
            header = proxy_protocol.parse(self.buffer)
        except proxy_protocol.ProxyProtocolError:
            self.close("bad_proxy_header")
            return False
        if header is proxy_protocol.NEED_DATA:
            return False
        assert isinstance(header, proxy_protocol.ProxyHeader)
        del self.buffer[:header.length]
        if isinstance(header.source, tuple) and isinstance(header.destination, tuple):
            self.conn.client = header.source
            self.conn.local = header.destination
        self._awaiting_header = False
        return True

    def _read(self) -> None:
        if not self._reading:
            self._reading = True
            self.poller.add_reader(self.fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.poller.remove_reader(self.fd)

    def _on_readable(self) -> None:
        """Read what is there; with nothing yet, wait for readiness.

        Also called straight after accept: clients usually speak at once, and
        reading before registering saves the poller a round for most connections.
        """
        try:
            chunk = self.client.recv(RECV_CHUNK)
        except BlockingIOError:
            self._read()
            return
        except OSError:
            self.close("client_error")
            return
        if not chunk:
            self.close("client_closed_before_decision")
            return
        self.buffer += chunk
        if len(self.buffer) > self.server.limits.buffer:
            self.close("buffer_limit")
            return
        if self._awaiting_header:
            if self._take_proxy_header():
                self._begin()
            return
        self._decide()

    def _decide(self) -> None:
        assert self.server.route is not None
        self._ask(self.server.route, bytes(self.buffer), self.conn)

    def _ask(self, function: Callable[..., Any], *args: Any) -> None:
        """Call user code and act on its answer, awaiting it only if it must be awaited."""
        try:
            answer = function(*args)
            if inspect.isawaitable(answer):
                self._stop_reading()
                self.task = self.loop.create_task(self._await_decision(answer))
                return
            decision = normalise(answer)
        except Exception as exc:
            self._route_failed(exc)
            return
        self._apply(decision)

    async def _await_decision(self, pending: Awaitable[Any]) -> None:
        try:
            decision = normalise(await pending)
        except Exception as exc:
            self._route_failed(exc)
            return
        finally:
            self.task = None
        if self.client.fileno() != -1:
            self._apply(decision)

    def _route_failed(self, exc: Exception) -> None:
        events = self.server.ctx.events
        if events.wants("error"):
            reason = "bad_decision" if isinstance(exc, BadDecision) else "route_error"
            events.event("error", reason, listener=self.server.name,
                         client=_format(self.conn.client), error=f"{type(exc).__name__}: {exc}",
                         traceback=None if isinstance(exc, BadDecision)
                         else traceback.format_exc())
        self.close("bad_decision" if isinstance(exc, BadDecision) else "route_error")

    def _apply(self, decision: Decision) -> None:
        if decision is NOOP:
            self._read()
            return
        if decision is CLOSE:
            self.close("route_closed")
            return
        assert isinstance(decision, Route)
        if decision.reply:
            self._send_to_client(decision.reply)
        if decision.data is not None:
            self.buffer = bytearray(decision.data)
        if decision.close:
            self.close("route_closed")
            return
        if decision.remote is None:
            self._read()
            return
        self._stop_reading()
        if self._decision_timer is not None:
            self._decision_timer.cancel()
            self._decision_timer = None
        self.route = decision
        self._connect(decision.remote)

    def _send_to_client(self, data: bytes) -> None:
        """Replies are small; what the socket cannot take at once is a broken client."""
        try:
            sent = self.client.send(data)
        except OSError:
            sent = -1
        if sent != len(data):
            self.close("client_error")

    # -- connecting -----------------------------------------------------------

    def _connect(self, remote: Remote) -> None:
        if self.client.fileno() == -1:
            return
        self.attempts += 1
        self.remote = remote
        if remote.upstream is not None:
            provision = self.server.ctx.provision.get(remote.upstream)
            if provision is not None:
                self.task = self.loop.create_task(self._lease_then_connect(provision))
                return
            pool = self.server.ctx.pools.get(remote.upstream)
            if pool is None:
                self._route_failed(BadDecision(f"no upstream named {remote.upstream!r}"))
                return
            endpoint = pool.pick(self.conn.client[0], time.monotonic(), self.tried)
            if endpoint is None:
                self.close("no_endpoint")
                return
            self.endpoint = endpoint
            self.tried = self.tried | {endpoint}
            host, port = endpoint.host, endpoint.port
        else:
            self.endpoint = None
            host, port = remote.host, remote.port
        if _is_ip(host):
            self._connect_address(host, port)
        else:
            self.task = self.loop.create_task(self._resolve_then_connect(host, port))

    async def _lease_then_connect(self, provision: ProvisionPool) -> None:
        """A backend of this connection's own (``kind = "provision"``), then connect to it."""
        try:
            lease = await provision.acquire()
        except PoolExhausted as exc:
            self.task = None
            self.close(f"pool_exhausted:{exc.reason}")
            return
        self.task = None
        if self.client.fileno() == -1:
            lease.release()
            return
        self.lease = lease
        lease.on_revoke = self.close
        self._connect_address(lease.host, lease.port)

    async def _resolve_then_connect(self, host: str, port: int) -> None:
        try:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self.task = None
            self._connect_failed(exc)
            return
        self.task = None
        if self.client.fileno() != -1:
            self._connect_address(str(infos[0][4][0]), port)

    def _connect_address(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        backend = socket.socket(family, socket.SOCK_STREAM | _NONBLOCK)
        if not _NONBLOCK:
            backend.setblocking(False)
        backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.backend = backend
        code = backend.connect_ex((host, port))
        if code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK) and _established(backend):
            code = 0
        if code == 0:
            self._connected()
        elif code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            timeout = self.route.connect_timeout if self.route and self.route.connect_timeout \
                else self.server.limits.connect_timeout
            self.connect_timer = self.loop.call_later(timeout, self._connect_timed_out)
            self.poller.add_writer(backend.fileno(), self._on_connect_ready)
        else:
            self._connect_failed(OSError(code, errno.errorcode.get(code, str(code))))

    def _on_connect_ready(self) -> None:
        backend = self.backend
        assert backend is not None
        self.poller.remove_writer(backend.fileno())
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None
        code = backend.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._connect_failed(OSError(code, errno.errorcode.get(code, str(code))))
        else:
            self._connected()

    def _connect_timed_out(self) -> None:
        self.connect_timer = None
        backend = self.backend
        if backend is not None:
            self.poller.remove_writer(backend.fileno())
        self._connect_failed(TimeoutError("connect timed out"))

    def _drop_backend(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def _connect_failed(self, exc: BaseException) -> None:
        self._drop_backend()
        if self.lease is not None:  # a fresh backend that will not take a connection
            self.close("connect_timeout" if isinstance(exc, TimeoutError) else "connect_failed")
            return
        pool_name = self.remote.upstream if self.remote else None
        if self.endpoint is not None and pool_name is not None:
            pool = self.server.ctx.pools[pool_name]
            pool.failed(self.endpoint, time.monotonic())
            if self.attempts < min(len(pool.endpoints), MAX_REDIRECTS):
                self._connect(Remote(upstream=pool_name))
                return
        handler = self.route.on_connect_error if self.route else None
        if handler is not None and self.attempts < MAX_REDIRECTS:
            try:
                alternative = normalise(handler(str(self.remote), exc))
            except Exception as handler_exc:
                self._route_failed(handler_exc)
                return
            if isinstance(alternative, Route) and isinstance(alternative.remote, Remote):
                self.tried = frozenset()
                self._connect(alternative.remote)
                return
        reason = "connect_timeout" if isinstance(exc, TimeoutError) else "connect_failed"
        self.close(reason)

    def _connected(self) -> None:
        backend = self.backend
        assert backend is not None and self.route is not None
        if self.endpoint is not None and self.remote is not None and self.remote.upstream:
            self.server.ctx.pools[self.remote.upstream].succeeded(self.endpoint)
            self.endpoint.active += 1
            self.endpoint.total += 1
        idle = self.route.inactivity_timeout or self.server.limits.idle_timeout
        to_backend = bytes(self.buffer)
        version = self.server.config.send_proxy_protocol
        if version != "off":
            encode = proxy_protocol.encode_v1 if version == "v1" else proxy_protocol.encode_v2
            to_backend = encode(self.conn.client, self.conn.local) + to_backend
        self.relay = Relay(self.loop, self.poller, self.client, backend, pipes=self.server.pipes,
                           to_backend=to_backend, idle_timeout=idle,
                           on_done=self._relay_done)
        self.buffer = bytearray()
        if self.lease is not None:
            relay = self.relay
            self.lease.activity = lambda: relay.bytes_up + relay.bytes_down
        self.relay.start()

    def _relay_done(self, reason: str) -> None:
        if self.endpoint is not None:
            self.endpoint.active -= 1
        self._finish(reason)

    # -- the end --------------------------------------------------------------

    def close(self, reason: str) -> None:
        """End the connection from any state; safe to call more than once."""
        if self.relay is not None:
            self.relay.abort(reason)
            return
        if self.client.fileno() == -1:
            return
        self._stop_reading()
        if self._decision_timer is not None:
            self._decision_timer.cancel()
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            if self.backend is not None:
                self.poller.remove_writer(self.backend.fileno())
        if self.task is not None:
            self.task.cancel()
        self._drop_backend()
        self.client.close()
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self.server.forget(self)
        lease = self.lease
        if lease is not None:
            lease.release()
        access = self.server.ctx.access
        if not access.enabled:
            access.count(self.server.name, failed_connection(reason))
            return
        relay = self.relay
        backend = None
        if lease is not None:
            backend = f"{lease.host}:{lease.port}"
        elif self.remote is not None:
            backend = self.endpoint.address if self.endpoint is not None else str(self.remote)
        record = {
            "ts": round(time.time(), 6),
            "kind": "tcp",
            "listener": self.server.name,
            "client": _format(self.conn.client),
            "backend": backend,
            "bytes_in": relay.bytes_up if relay else 0,
            "bytes_out": relay.bytes_down if relay else 0,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 3),
            "reason": reason,
        }
        if lease is not None:
            record["backend_id"] = lease.backend_id
            record["lease_wait_ms"] = round(lease.waited * 1000, 3)
        access.write(record)


def _specific_address(sock: socket.socket) -> tuple[str, int] | None:
    """The (host, port) ``sock`` listens on, or ``None`` for a wildcard or non-IP bind."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    host, port = sock.getsockname()[:2]
    return None if host in ("0.0.0.0", "::") else (host, port)


_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
"""Created non-blocking where the platform allows: one system call fewer per connection."""


def _established(sock: socket.socket) -> bool:
    """Whether a non-blocking connect has already completed.

    To a nearby backend (loopback, the same host) the handshake is usually over
    by the time ``connect`` returns; asking saves waiting a poller round and
    three system calls. A refused or pending connect has no peer yet and takes
    the normal path.
    """
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _format(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
