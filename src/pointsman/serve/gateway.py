"""The WebSocket message gateway: one client socket, many services behind it.

Each client WebSocket is an ``asyncio.Protocol`` driving websockets'
sans-I/O ``ServerProtocol``: ``data_received`` feeds it, writes what it wants
to send, and dispatches the events (the handshake request, then frames).
Every complete message is decoded as an envelope, matched against the
patterns services announced, and delivered to the socket's pinned instance
of that service as one bus message (``pointsman.wire.gateway_messages``).

Deliveries are acked by the instance. Acks arrive on the gateway's own ack
subject and are matched by sequence number; a sweep every fraction of the
delivery timeout fails the overdue ones. A failed delivery (no responders,
timeout, or an instance whose heartbeat stopped) removes the instance: its
sockets lose their pin, are re-pinned on their next message (the new
instance gets an ``open`` first), and the client gets an error envelope for
the message that failed. Nothing here creates a coroutine per message.

Provisioned services (``Gateway(..., provision={service: pool})``): every
socket leases one fresh instance of each such service before its handshake
is answered (the pool grants only instances this gateway saw announce), is
pinned to exactly that instance, and releases it when it closes, which stops
and removes the backend. No other socket is ever pinned to it. When a pool
has nothing to give within its queue timeout the handshake completes only to
close with 1013 "try again later"; an instance that vanishes closes its
socket with 1011, as its per-socket state went with it.

Bounds: a message larger than ``max_message_size`` closes the socket with
1009 (websockets does it); more than ``max_inflight`` unacked deliveries
pause reading from that client; more than ``queue_bytes`` waiting to be
written to a slow client closes it with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, cast

import msgspec
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from pointsman.discovery.announce import AnnouncementIndex, Change, RouteTarget
from pointsman.routing.patterns import Matcher, PatternError, compile_pattern
from pointsman.serve import gateway_metrics as metrics
from pointsman.serve.context import FAILURE_CLOSE_CODES, RecordSink
from pointsman.serve.provision import Lease, ProvisionPool
from pointsman.serve.static import StaticFiles, StaticResponse
from pointsman.service.service import new_id
from pointsman.service.transport import Msg, Subscription, Transport
from pointsman.upstream.pinning import PinIndex
from pointsman.upstream.provision import PoolExhausted
from pointsman.wire import gateway_messages as gm
from pointsman.wire.envelope import Codec, EnvelopeError, codec_for

__all__ = ["Gateway", "GatewaySettings", "GatewaySocket"]

log = logging.getLogger("pointsman.gateway")

#: Seconds a closing socket may take to flush before it is cut.
CLOSE_TIMEOUT: Final = 5.0
#: Outstanding service requests remembered per socket.
MAX_AWAITING: Final = 64
#: Reading resumes when unacked deliveries fall to this fraction of ``max_inflight``.
RESUME_FRACTION: Final = 0.5

# Error codes sent to clients in error envelopes.
NOT_FOUND: Final = "not_found"
BAD_ENVELOPE: Final = "bad_envelope"
UNAVAILABLE: Final = "unavailable"
INSTANCE_FAILED: Final = "instance_unavailable"
ENCODING_MISMATCH: Final = "encoding_mismatch"
#: Close code of a socket whose provisioned instance is gone (its state went with it).
INSTANCE_GONE: Final = 1011


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything a gateway needs besides its transport."""

    name: str = "gateway"
    listener: str = "gateway"
    encoding: str = "json"
    path: str = "/ws"
    static_dir: Path | None = None
    max_message_size: int = 1024 * 1024
    queue_bytes: int = 1024 * 1024
    max_inflight: int = 256
    delivery_timeout: float = 5.0
    announce_interval: float = 2.0
    max_connections: int = 100_000


# (socket, instance, service, message id)
_Pending = tuple["GatewaySocket", str, str, "str | int | None"]


class Gateway:
    """Routing state of one gateway and its link to the bus."""

    def __init__(self, settings: GatewaySettings, transport: Transport,
                 provision: Mapping[str, ProvisionPool] | None = None,
                 access: RecordSink | None = None) -> None:
        self.settings = settings
        self.access = access  # one record per socket when it ends
        self.provision = dict(provision or {})  # service name -> its per-socket pool
        self._leased: dict[str, GatewaySocket] = {}  # provisioned instance -> its socket
        self._leasing: dict[asyncio.Task[None], GatewaySocket] = {}  # handshakes on hold
        self.site = StaticFiles(settings.static_dir) if settings.static_dir else None
        self.transport = transport
        self.codec: Codec = codec_for(settings.encoding)
        self.id = new_id()
        self.sockets: dict[str, GatewaySocket] = {}
        self.index = AnnouncementIndex(settings.name)
        self.pins = PinIndex()
        self.matcher: Matcher[RouteTarget] = Matcher()
        self._pending: dict[int, _Pending] = {}
        self._deadlines: dict[int, float] = {}
        self._seq = itertools.count(1)
        self._socket_ids = itertools.count(1)
        self._ack_prefix = gm.gateway_ack_prefix(self.id)
        self._out_subject = gm.gateway_subject(self.id)
        self._deliver_subjects: dict[str, str] = {}
        self._subs: list[Subscription] = []
        self._timer: asyncio.TimerHandle | None = None
        self._next_announce = 0.0
        self._offline = False
        self._routed: dict[str, Any] = {}
        self._sockets_gauge = metrics.SOCKETS.labels(settings.name)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe, ask every service to announce, start the sweep."""
        self.loop = asyncio.get_running_loop()
        await self.transport.connect()
        t = self.transport
        self._subs = [
            await t.subscribe(gm.SERVICE_ANNOUNCE, self._on_service_announce),
            # Acks and output share one subscription: one ordered stream per instance.
            await t.subscribe(gm.gateway_inbox(self.id), self._on_inbox),
        ]
        self.running = True
        self._announce()
        await t.flush()
        self._schedule()

    async def stop(self) -> None:
        """Close every client socket (1001), tell instances, say goodbye."""
        if not self.running:
            return
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
        for task, waiting in list(self._leasing.items()):
            task.cancel()
            if waiting.transport is not None:
                waiting.transport.close()
        for sock in list(self.sockets.values()):
            sock.close(1001, "gateway shutting down")
            self.socket_closed(sock, 1001, "gateway shutting down")
        self._announce(stopping=True)
        for sub in self._subs:
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.transport.flush()

    def _schedule(self) -> None:
        assert self.loop is not None
        period = min(self.settings.delivery_timeout, self.settings.announce_interval) / 4
        self._timer = self.loop.call_later(max(period, 0.01), self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        online = self.transport.connected
        if online and self._offline:
            # Back on the bus: give every instance a fresh heartbeat window.
            self.index.touch(now)
        self._offline = not online
        deadlines = self._deadlines
        while deadlines:
            seq, deadline = next(iter(deadlines.items()))
            if deadline > now:
                break
            del deadlines[seq]
            entry = self._pending.pop(seq, None)
            if entry is not None:
                self._delivery_failed(entry, "timeout")
        if online:  # like gorouter: no pruning while the bus itself is unreachable
            for record in self.index.prune(now):
                self._drop_instance(record.instance, record.service, "heartbeat", forget=False)
        if now >= self._next_announce:
            self._announce()
        if self.running:
            self._schedule()

    def _announce(self, stopping: bool = False) -> None:
        now = time.monotonic()
        self._next_announce = now + self.settings.announce_interval
        message = gm.GatewayAnnounce(name=self.settings.name, gateway=self.id,
                                     interval=self.settings.announce_interval,
                                     instances=[] if stopping else self.index.fresh(now),
                                     stopping=stopping)
        self.transport.publish(gm.GATEWAY_ANNOUNCE, gm.encode(message))

    # -- discovery --------------------------------------------------------------------

    async def _on_service_announce(self, msg: Msg) -> None:
        try:
            announce = gm.decode(msg.data, gm.ServiceAnnounce)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        good = [p for p in announce.routes if _valid_pattern(p)]
        if len(good) != len(announce.routes):
            log.warning("gateway %s: %s announced patterns it cannot use: %s",
                        self.settings.name, announce.name,
                        sorted(set(announce.routes) - set(good)))
            announce = msgspec.structs.replace(announce, routes=good)
        change = self.index.observe(announce, time.monotonic())
        if self.provision and change is not Change.IGNORED and change is not Change.REMOVED:
            pool = self.provision.get(announce.name)
            if pool is not None:
                pool.announced(announce.instance)
        if change is Change.ADDED:
            self.pins.add_instance(announce.name, announce.instance)
            self._count_instances(announce.name)
            self._rebuild()
        elif change is Change.CHANGED:
            self._rebuild()
        elif change is Change.REMOVED:
            self._drop_instance(announce.instance, announce.name, None, forget=False)

    def _rebuild(self) -> None:
        self.matcher = Matcher(self.index.routes())

    def _count_instances(self, service: str) -> None:
        metrics.INSTANCES.labels(self.settings.name, service).set(
            len(self.pins.instances(service)))

    def _drop_instance(self, instance: str, service: str, reason: str | None,
                       forget: bool = True) -> None:
        """Forget an instance: unpin its sockets (re-pinned on their next message)."""
        if forget:
            self.index.remove(instance)
        leased = self._leased.pop(instance, None)
        if leased is not None:
            _instance_gone(leased, service)
        for socket_id in self.pins.remove_instance(instance):
            # If the instance is only slow, not dead, this frees the socket's state there.
            self._publish_deliver(instance, gm.Deliver(
                kind="close", gateway=self.id, socket=socket_id, encoding=self.codec.name,
                code=1001, reason="moved to another instance"))
        self._deliver_subjects.pop(instance, None)
        for sock in self.sockets.values():
            if sock.awaiting:
                for key in [k for k, v in sock.awaiting.items() if v == instance]:
                    del sock.awaiting[key]
        if reason is not None:
            metrics.DELIVERY_FAILURES.labels(self.settings.name, service, reason).inc()
        self._count_instances(service)
        self._rebuild()

    # -- client messages ----------------------------------------------------------------

    def new_socket_id(self) -> str:
        return f"{self.id}-{next(self._socket_ids)}"

    def socket_opened(self, sock: GatewaySocket) -> None:
        self.sockets[sock.id] = sock
        self._sockets_gauge.inc()

    def socket_closed(self, sock: GatewaySocket, code: int, reason: str) -> None:
        if self.sockets.pop(sock.id, None) is None:
            return
        self._sockets_gauge.dec()
        for instance in self.pins.release(sock.id).values():
            self._publish_deliver(instance, gm.Deliver(
                kind="close", gateway=self.id, socket=sock.id, encoding=self.codec.name,
                code=code, reason=reason))
        leases = sock.leases
        if leases is not None:  # provisioned instances end with their socket
            sock.leases = None
            for lease in leases.values():
                self._leased.pop(lease.instance_id, None)
                lease.release()
        self.log_socket(sock, code, reason, leases)

    def log_socket(self, sock: GatewaySocket, code: int, reason: str,
                   leases: dict[str, Lease] | None) -> None:
        """The socket's access record: who, how long, how it ended, which backends served it."""
        access = self.access
        if access is None:
            return
        if not access.enabled:
            access.count(self.settings.listener, code in FAILURE_CLOSE_CODES)
            return
        record: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "kind": "gateway",
            "listener": self.settings.listener,
            "client": sock.peer,
            "socket": sock.id,
            "frames_in": sock.frames,  # control frames (the close) included
            "duration_ms": round((time.monotonic() - sock.started) * 1000, 3),
            "code": code,
            "reason": reason,
        }
        if leases:
            record["backend_ids"] = {name: lease.backend_id for name, lease in leases.items()}
            record["lease_wait_ms"] = round(max(lease.waited for lease in leases.values())
                                            * 1000, 3)
        access.write(record)

    # -- provisioned services -----------------------------------------------------------

    def provision_socket(self, sock: GatewaySocket, response: Response) -> None:
        """Lease ``sock`` its instances; the handshake ``response`` waits for them."""
        assert self.loop is not None
        task = self.loop.create_task(self._lease(sock, response))
        sock.lease_task = task
        self._leasing[task] = sock
        task.add_done_callback(self._leasing.pop)

    async def _lease(self, sock: GatewaySocket, response: Response) -> None:
        services = list(self.provision)
        results = await asyncio.gather(*(self.provision[name].acquire() for name in services),
                                       return_exceptions=True)
        sock.lease_task = None
        leases = {name: r for name, r in zip(services, results, strict=True)
                  if isinstance(r, Lease)}
        refused = [r for r in results if not isinstance(r, Lease)]
        if refused or sock.transport is None or not self.running:
            for lease in leases.values():
                lease.release()
            for error in refused:
                if not isinstance(error, PoolExhausted | asyncio.CancelledError):
                    log.error("gateway %s: leasing an instance failed: %r",
                              self.settings.name, error)
            if sock.transport is not None:
                sock.refuse(response, PoolExhausted.close_code, PoolExhausted.close_reason)
                self.log_socket(sock, PoolExhausted.close_code, "pool_exhausted", None)
            return
        sock.leases = leases
        for lease in leases.values():
            self._leased[lease.instance_id] = sock
            lease.on_revoke = lambda reason: sock.close(1001, f"provision_{reason}")
            lease.activity = lambda: sock.frames
        sock.accepted(response)

    def on_message(self, sock: GatewaySocket, frame: bytes) -> None:
        """Route one complete client message."""
        codec = self.codec
        try:
            env = codec.decode(frame)
        except EnvelopeError as exc:
            sock.send_error(None, BAD_ENVELOPE, exc.message)
            return
        if env.id is not None:
            sock.expects_reply = True
        awaiting = sock.awaiting
        if awaiting and env.id in awaiting:
            asker = awaiting.pop(env.id)
            service = self.pins.service_of(asker)
            if service is not None:
                self._deliver(sock, asker, service, "message", env.path, env.id, env.data)
                return
        if not env.path:
            sock.send_error(env.id, BAD_ENVELOPE, "the envelope has no path")
            return
        found = self.matcher.match(env.path)
        if found is None:
            sock.send_error(env.id, NOT_FOUND, f"no service serves {env.path!r}")
            return
        target = found.value
        pins = self.pins
        instance = pins.pinned(sock.id, target.service)
        kind: gm.DeliverKind = "message"
        if instance is None:
            leases = sock.leases
            if leases is not None and target.service in leases:  # its own, and only that
                instance = pins.pin(sock.id, target.service, (leases[target.service].instance_id,))
                if instance is None:  # gone between its announcement and now
                    sock.send_error(env.id, UNAVAILABLE,
                                    f"the {target.service!r} instance of this socket is gone")
                    _instance_gone(sock, target.service)
                    return
            elif target.service not in self.provision:
                instance = pins.pin(sock.id, target.service, target.instances)
            if instance is None:
                sock.send_error(env.id, UNAVAILABLE,
                                f"no instance of {target.service!r} is available")
                return
            kind = "open"
        record = self.index.get(instance)
        if record is not None and record.encoding != codec.name:
            sock.send_error(env.id, ENCODING_MISMATCH,
                            f"service {target.service!r} speaks {record.encoding}, "
                            f"this gateway {codec.name}")
            return
        self._deliver(sock, instance, target.service, kind, env.path, env.id, env.data)

    def _deliver(self, sock: GatewaySocket, instance: str, service: str, kind: gm.DeliverKind,
                 path: str, message_id: str | int | None, data: bytes) -> None:
        seq = next(self._seq)
        self._pending[seq] = (sock, instance, service, message_id)
        self._deadlines[seq] = time.monotonic() + self.settings.delivery_timeout
        payload = gm.encode(gm.Deliver(kind=kind, gateway=self.id, socket=sock.id,
                                       encoding=self.codec.name, path=path, id=message_id,
                                       data=data))
        self.transport.publish(self._subject(instance), payload, self._ack_prefix + str(seq))
        counter = self._routed.get(service)
        if counter is None:
            counter = self._routed[service] = metrics.MESSAGES.labels(self.settings.name, service)
        counter.inc()
        sock.inflight += 1
        if sock.inflight >= self.settings.max_inflight:
            sock.pause()

    def _subject(self, instance: str) -> str:
        subject = self._deliver_subjects.get(instance)
        if subject is None:
            subject = self._deliver_subjects[instance] = gm.instance_subject(instance)
        return subject

    def _publish_deliver(self, instance: str, deliver: gm.Deliver) -> None:
        self.transport.publish(self._subject(instance), gm.encode(deliver))

    async def _on_inbox(self, msg: Msg) -> None:
        if msg.subject == self._out_subject:
            self._on_to_gateway(msg.data)
        elif msg.subject.startswith(self._ack_prefix):
            self._on_ack(msg)

    def _on_ack(self, msg: Msg) -> None:
        try:
            seq = int(msg.subject[len(self._ack_prefix):])
        except ValueError:
            return
        entry = self._pending.pop(seq, None)
        if entry is None:
            return
        self._deadlines.pop(seq, None)
        sock = entry[0]
        sock.inflight -= 1
        if sock.paused and sock.inflight <= self.settings.max_inflight * RESUME_FRACTION:
            sock.resume()
        if msg.no_responders:
            self._delivery_failed(entry, "no_responders")
        elif msg.data:
            try:
                reply = gm.decode(msg.data, gm.DeliverReply)
            except (msgspec.DecodeError, msgspec.ValidationError):
                reply = gm.DeliverReply(
                    error=gm.CallError("rejected", "the service rejected the message"))
            if reply.error is not None:
                metrics.DELIVERY_FAILURES.labels(self.settings.name, entry[2], "rejected").inc()
                sock.send_error(entry[3], reply.error.code, reply.error.message)
            if reply.out is not None:
                self._output(reply.out)

    def _delivery_failed(self, entry: _Pending, reason: str) -> None:
        sock, instance, service, message_id = entry
        if reason == "timeout":
            sock.inflight -= 1
            if sock.paused and sock.inflight <= self.settings.max_inflight * RESUME_FRACTION:
                sock.resume()
        if self._offline or not self.transport.connected:
            sock.send_error(message_id, UNAVAILABLE,
                            "the message bus is unreachable; try again shortly")
            return
        if instance in self.index or self.pins.service_of(instance) is not None:
            log.warning("gateway %s: instance %s of %s failed (%s); re-pinning its sockets",
                        self.settings.name, instance, service, reason)
            self._drop_instance(instance, service, reason)
        sock.send_error(message_id, INSTANCE_FAILED,
                        f"the {service!r} instance serving this socket failed ({reason}); "
                        "the socket moves to another instance with the next message")

    # -- service output -----------------------------------------------------------------

    def _on_to_gateway(self, payload: bytes) -> None:
        try:
            out = gm.decode(payload, gm.ToGateway)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self._output(out)

    def _output(self, out: gm.ToGateway) -> None:
        sock = self.sockets.get(out.socket)
        if sock is None:
            # The client is gone; make sure the instance frees the socket's state.
            self._publish_deliver(out.instance, gm.Deliver(
                kind="close", gateway=self.id, socket=out.socket, encoding=self.codec.name,
                code=1006, reason="socket already closed"))
            return
        if out.frame:
            if out.awaiting is not None:
                awaiting = sock.awaiting
                if awaiting is None:
                    awaiting = sock.awaiting = {}
                elif len(awaiting) >= MAX_AWAITING:
                    del awaiting[next(iter(awaiting))]
                awaiting[out.awaiting] = out.instance
            sock.send_frame(out.frame)
        if out.close:
            sock.close(out.close, out.reason)

    def stats(self) -> dict[str, Any]:
        """A snapshot for tests and the admin side."""
        return {
            "id": self.id,
            "sockets": len(self.sockets),
            "pending": len(self._pending),
            "instances": {i: self.pins.connections(i) for i in self.pins.instances()},
        }


def _instance_gone(sock: GatewaySocket, service: str) -> None:
    """Close a socket whose provisioned ``service`` instance went away (its state went too)."""
    sock.close(INSTANCE_GONE, f"the {service} instance of this socket is gone")


class GatewaySocket(asyncio.Protocol):
    """One client connection: HTTP upgrade, then envelopes in WebSocket messages."""

    __slots__ = ("awaiting", "binary", "closing", "expects_reply", "fragments", "frames",
                 "gateway", "id", "inflight", "lease_task", "leases", "opened", "paused", "peer",
                 "started", "transport", "ws")

    def __init__(self, gateway: Gateway) -> None:
        # Shared
        self.gateway = gateway
        self.binary = gateway.codec.binary
        # Per connection
        self.transport: asyncio.Transport | None = None
        self.ws = ServerProtocol(max_size=gateway.settings.max_message_size)
        self.id = ""
        self.opened = False
        self.closing = False
        self.paused = False
        self.inflight = 0
        # The client's last message carried an id and nothing was sent back since:
        # a graceful quit lets such a socket have its answer before saying 1001.
        self.expects_reply = False
        self.fragments: list[bytes] | None = None
        self.awaiting: dict[str | int | None, str] | None = None
        self.frames = 0
        self.started = 0.0
        self.peer = ""
        self.lease_task: asyncio.Task[None] | None = None
        self.leases: dict[str, Lease] | None = None  # provisioned service -> its instance

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.started = time.monotonic()
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lease_task is not None:
            self.lease_task.cancel()
            self.lease_task = None
        if self.opened:
            rcvd = self.ws.close_rcvd
            code = rcvd.code if rcvd is not None else 1006
            reason = rcvd.reason if rcvd is not None else "connection lost"
            self.gateway.socket_closed(self, code, reason)
        self.transport = None

    # -- events -------------------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        gateway = self.gateway
        path = request.path.split("?", 1)[0]
        ws = self.ws
        if path != gateway.settings.path:
            ws.send_response(_static_response(gateway.site, request))
            return
        if len(gateway.sockets) >= gateway.settings.max_connections:
            ws.send_response(ws.reject(503, "too many connections\n"))
            return
        response = ws.accept(request)
        if response.status_code == 101 and gateway.provision:
            if self.transport is not None:
                self.transport.pause_reading()  # nothing to read before the 101 anyway
            gateway.provision_socket(self, response)
            return
        ws.send_response(response)
        if response.status_code == 101:
            self.id = gateway.new_socket_id()
            self.opened = True
            gateway.socket_opened(self)

    def accepted(self, response: Response) -> None:
        """The held handshake ``response`` goes out: the socket is open (provisioned)."""
        transport = self.transport
        if transport is None:
            return
        self.ws.send_response(response)
        self.id = self.gateway.new_socket_id()
        self.opened = True
        self.gateway.socket_opened(self)
        self._flush()
        transport.resume_reading()

    def refuse(self, response: Response, code: int, reason: str) -> None:
        """Complete the handshake only to close with ``code``: a browser's WebSocket
        sees a refused handshake as 1006, but a close frame's code reaches page code."""
        if self.transport is None:
            return
        self.ws.send_response(response)
        self.close(code, reason)
        self.transport.resume_reading()

    def _on_frame(self, frame: Frame) -> None:
        self.frames += 1
        opcode = frame.opcode
        data = bytes(frame.data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if opcode is Opcode.BINARY and not self.binary:
                self.fail(1007, "binary frames are not JSON envelopes")
                return
            if frame.fin:
                self.gateway.on_message(self, data)
            else:
                self.fragments = [data]
        elif opcode is Opcode.CONT and self.fragments is not None:
            self.fragments.append(data)
            if frame.fin:
                message = b"".join(self.fragments)
                self.fragments = None
                self.gateway.on_message(self, message)

    # -- output -------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                self._close_transport()
                return

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        loop = self.gateway.loop
        if loop is not None:
            loop.call_later(CLOSE_TIMEOUT, transport.abort)

    def send_frame(self, frame: bytes) -> None:
        """Write one envelope; a client that does not keep up is closed with 1008."""
        ws = self.ws
        if ws.state is not State.OPEN or self.transport is None:
            return
        self.expects_reply = False
        if self.binary:
            ws.send_binary(frame)
        else:
            ws.send_text(frame)
        self._flush()
        transport = self.transport
        if transport is not None and \
                transport.get_write_buffer_size() > self.gateway.settings.queue_bytes:
            self.fail(1008, "client too slow: send queue full")

    def send_error(self, message_id: str | int | None, code: str, message: str) -> None:
        self.send_frame(self.gateway.codec.encode(id=message_id, error=(code, message)))

    def fail(self, code: int, reason: str) -> None:
        if self.ws.state is State.OPEN:
            self.ws.fail(code, reason)
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
            self._flush()
            # The server closes TCP once the client answers; don't wait forever.
            loop = self.gateway.loop
            transport = self.transport
            if loop is not None and transport is not None:
                loop.call_later(CLOSE_TIMEOUT, transport.abort)

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()


def _static_response(site: StaticFiles | None, request: Request) -> Response:
    """Plain GETs outside the WebSocket path: files under the static folder (if any), else 404."""
    if site is None:
        answer = StaticResponse(404, ((b"content-type", b"text/plain"),
                                      (b"content-length", b"10")), body=b"not found\n")
    else:
        headers = {name.lower().encode("latin-1"): value.encode("latin-1")
                   for name, value in request.headers.raw_items()}
        answer = site.respond(b"GET", request.path.encode("latin-1", "replace"), headers)
    body = answer.body
    if answer.path is not None and answer.length:
        with open(answer.path, "rb") as file:
            file.seek(answer.offset)
            body = file.read(answer.length)
    fields = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in answer.headers]
    fields += [("Cache-Control", "no-cache"), ("Connection", "close")]
    return Response(answer.status, HTTPStatus(answer.status).phrase, Headers(fields), body)


def _valid_pattern(pattern: str) -> bool:
    try:
        compile_pattern(pattern)
    except PatternError:
        return False
    return True


def socket_factory(gateway: Gateway) -> Callable[[], GatewaySocket]:
    return lambda: GatewaySocket(gateway)
