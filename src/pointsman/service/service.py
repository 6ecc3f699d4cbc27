"""A service instance: announces its public routes, takes deliveries, runs the router.

One ``Service`` object is one instance with a random instance id. It
subscribes to its own delivery subject, to gateway announcements (to answer a
gateway that does not know it yet), to ``call.<name>`` in a queue group (one
instance answers) and to ``broadcast.<name>`` (every instance hears it).
Subjects and payloads are documented in ``pointsman.wire.gateway_messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import string
import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from pointsman.service.context import Connection, Context
from pointsman.service.errors import ServiceError
from pointsman.service.router import Router
from pointsman.service.transport import Msg, Subscription, Transport
from pointsman.wire import gateway_messages as gm
from pointsman.wire.envelope import Codec, MsgpackCodec, codec_for

__all__ = ["DEFAULT_INTERVAL", "Service", "new_id"]

log = logging.getLogger("pointsman.service")

#: Seconds between announcements (the heartbeat).
DEFAULT_INTERVAL: Final = 2.0
#: Seconds a service-to-service call waits by default.
DEFAULT_CALL_TIMEOUT: Final = 5.0

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(size: int = 16) -> str:
    """A random id that is safe as a NATS subject token."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(size))


class Service:
    """One instance of a named service behind gateways."""

    def __init__(self, name: str, transport: Transport, router: Router,
                 gateway_names: Sequence[str] | None = None, *, encoding: str = "json",
                 interval: float = DEFAULT_INTERVAL, instance: str | None = None) -> None:
        self.name = name
        self.transport = transport
        self.router = router
        self.gateway_names = list(gateway_names or [])
        self.codec: Codec = codec_for(encoding)
        self.interval = interval
        self.instance = instance or new_id()
        self._call_codec = MsgpackCodec()
        self._connections: dict[str, Connection] = {}
        self._gateways: dict[str, float] = {}  # gateway id -> deadline
        self._gateway_subjects: dict[str, str] = {}
        self._unacked: dict[str, str] = {}  # socket id -> reply subject of its latest delivery
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.started = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, subscribe, announce; returns once the instance can be reached."""
        if self.started:
            return
        await self.transport.connect()
        t = self.transport
        self._subs = [
            await t.subscribe(gm.instance_subject(self.instance), self._on_deliver),
            await t.subscribe(gm.GATEWAY_ANNOUNCE, self._on_gateway_announce),
            await t.subscribe(gm.call_subject(self.name), self._on_call, queue=self.name),
            await t.subscribe(gm.broadcast_subject(self.name), self._on_broadcast),
        ]
        self.started = True
        self.announce()
        await t.flush()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        """Say goodbye to gateways, end every socket (close hooks run), unsubscribe."""
        if not self.started:
            return
        self.started = False
        self.announce(stopping=True)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []
        for socket_id in list(self._connections):
            await self._end(socket_id)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.transport.flush()

    def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop, close the transport. Blocks."""
        try:
            import uvloop
            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            runner = asyncio.run
        runner(self._run())

    async def _run(self) -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, done.set)
        # A signal while the transport is still trying to connect (NATS down)
        # ends the wait for it too: start() alone would retry forever.
        starting = loop.create_task(self.start())
        signalled = loop.create_task(done.wait())
        try:
            await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                log.info("service %s instance %s started", self.name, self.instance)
                await signalled
        finally:
            for task in (starting, signalled):
                task.cancel()
            await asyncio.gather(starting, signalled, return_exceptions=True)
            await self.stop()
            await self.transport.close()

    @property
    def connections(self) -> int:
        """Sockets currently pinned to this instance."""
        return len(self._connections)

    # -- announcing -------------------------------------------------------------------

    def announce(self, *, stopping: bool = False) -> None:
        message = gm.ServiceAnnounce(
            name=self.name, instance=self.instance, routes=self.router.public_patterns(),
            interval=self.interval, encoding=self.codec.name, gateway_names=self.gateway_names,
            stopping=stopping)
        self.transport.publish(gm.SERVICE_ANNOUNCE, gm.encode(message))

    async def _tick(self) -> None:
        offline = False
        while True:
            await asyncio.sleep(self.interval)
            self.announce()
            now = time.monotonic()
            if not self.transport.connected:
                offline = True
                continue  # a gateway's silence means nothing while the bus is down
            if offline:
                offline = False
                grace = now + self.interval * 10 * gm.HEARTBEAT_TOLERANCE
                for gateway in self._gateways:
                    self._gateways[gateway] = max(self._gateways[gateway], grace)
            for gateway, deadline in list(self._gateways.items()):
                if deadline < now:
                    del self._gateways[gateway]
                    await self._end_gateway(gateway)

    def _allowed(self, gateway_name: str) -> bool:
        return not self.gateway_names or gateway_name in self.gateway_names

    async def _on_gateway_announce(self, msg: Msg) -> None:
        try:
            a = gm.decode(msg.data, gm.GatewayAnnounce)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if not self._allowed(a.name):
            return
        if a.stopping:
            self._gateways.pop(a.gateway, None)
            await self._end_gateway(a.gateway)
            return
        self._gateways[a.gateway] = time.monotonic() + a.interval * gm.HEARTBEAT_TOLERANCE
        if self.instance not in a.instances:
            self.announce()

    async def _end_gateway(self, gateway: str) -> None:
        for socket_id in [s for s, c in self._connections.items() if c.gateway == gateway]:
            await self._end(socket_id)

    # -- sockets ----------------------------------------------------------------------

    async def _on_deliver(self, msg: Msg) -> None:
        try:
            d = gm.decode(msg.data, gm.Deliver)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._ack(msg, gm.CallError("bad_delivery", str(exc)))
            return
        if d.kind == "close":
            await self._end(d.socket)
            return
        if d.encoding != self.codec.name:
            self._ack(msg, gm.CallError(
                "encoding_mismatch",
                f"service {self.name} speaks {self.codec.name}, the gateway {d.encoding}"))
            return
        conn = self._connections.get(d.socket)
        if conn is None:
            # Ack before the open hooks, which may take their time.
            self._ack(msg, None)
            conn = self._connections[d.socket] = Connection(self, d.gateway, d.socket)
            self._gateways.setdefault(
                d.gateway, time.monotonic() + self.interval * 10 * gm.HEARTBEAT_TOLERANCE)
            ctx = Context(self, self.codec, d.path, d.id, b"", conn)
            try:
                await self.router.run_open(ctx)
            except Exception:
                log.exception("open hook failed for socket %s", d.socket)
            acked = True
        else:
            acked = False
        if isinstance(d.id, str) and conn.pending and conn.answer(d.id, d.data):
            if not acked:
                self._ack(msg, None)
            return
        ctx = Context(self, self.codec, d.path, d.id, d.data, conn)
        task = asyncio.get_running_loop().create_task(self._handle(ctx))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not acked:
            self._ack_soon(msg.reply, d.socket)  # after the task: a quick reply rides along

    def _ack(self, msg: Msg, error: gm.CallError | None) -> None:
        if msg.reply:
            payload = b"" if error is None else gm.encode(gm.DeliverReply(error=error))
            self.transport.publish(msg.reply, payload)

    def _ack_soon(self, reply: str, socket_id: str) -> None:
        """Ack at the end of this loop iteration; a reply made before then rides along.

        The handler's task was scheduled before this callback, so a handler
        that answers without awaiting anything answers inside the ack: one
        bus message instead of two, and the gateway reads acks and output in
        one ordered stream, so nothing is reordered.
        """
        if not reply:
            return
        earlier = self._unacked.get(socket_id)
        if earlier is not None:
            self.transport.publish(earlier, b"")
        self._unacked[socket_id] = reply
        asyncio.get_running_loop().call_soon(self._flush_ack, socket_id, reply)

    def _flush_ack(self, socket_id: str, reply: str) -> None:
        if self._unacked.get(socket_id) == reply:
            del self._unacked[socket_id]
            self.transport.publish(reply, b"")

    async def _handle(self, ctx: Context) -> None:
        try:
            await self.router.dispatch(ctx, public_only=True)
        except ServiceError as exc:
            ctx.fail(exc.code, exc.message)
        except Exception:
            log.exception("handler for %s failed", ctx.path)
            ctx.fail("internal", "the service failed to handle this message")

    async def _end(self, socket_id: str) -> None:
        conn = self._connections.pop(socket_id, None)
        if conn is None:
            return
        conn.end()
        ctx = Context(self, self.codec, "", None, b"", conn)
        try:
            await self.router.run_close(ctx)
        except Exception:
            log.exception("close hook failed for socket %s", socket_id)

    def _to_gateway(self, conn: Connection, frame: bytes, awaiting: str | None, *,
                    close: int = 0, reason: str = "") -> None:
        message = gm.ToGateway(socket=conn.id, instance=self.instance, frame=frame,
                               binary=self.codec.binary, awaiting=awaiting, close=close,
                               reason=reason)
        reply = self._unacked.pop(conn.id, None)
        if reply is not None:
            self.transport.publish(reply, gm.encode(gm.DeliverReply(out=message)))
            return
        subject = self._gateway_subjects.get(conn.gateway)
        if subject is None:
            subject = self._gateway_subjects[conn.gateway] = gm.gateway_subject(conn.gateway)
        self.transport.publish(subject, gm.encode(message))

    def send_to(self, socket_id: str, data: Any, path: str | None = None) -> bool:
        """Push to a socket pinned to this instance; ``False`` if it is not (or no longer) here."""
        conn = self._connections.get(socket_id)
        if conn is None or conn.closed.is_set():
            return False
        conn.write(self.codec.encode(path=path, data=self.codec.encode_data(data)))
        return True

    # -- calls between services -------------------------------------------------------

    async def call(self, path: str, data: Any = None, *, service: str | None = None,
                   timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Run a route (public or private) and return what it replied.

        Without ``service`` the route runs in this process; with it, one
        instance of that service runs it (over the transport, msgpack data).
        A ``ServiceError`` raised by the route is raised here.
        """
        if service is None:
            ctx = Context(self, self._call_codec, path, None, b"", None, data)
            await self.router.dispatch(ctx, public_only=False)
            return ctx.result
        payload = gm.encode(gm.Call(path=path, data=self._call_codec.encode_data(data)))
        raw = await self.transport.request(gm.call_subject(service), payload, timeout)
        reply = gm.decode(raw, gm.CallReply)
        if reply.error is not None:
            raise ServiceError(reply.error.code, reply.error.message)
        return self._call_codec.decode_data(reply.data) if reply.data else None

    def broadcast(self, path: str, data: Any = None, *, service: str | None = None) -> None:
        """Run a route on every instance of a service (this one by default), no answers."""
        payload = gm.encode(gm.Call(path=path, data=self._call_codec.encode_data(data)))
        self.transport.publish(gm.broadcast_subject(service or self.name), payload)

    async def _run_call(self, msg: Msg) -> gm.CallReply:
        try:
            call = gm.decode(msg.data, gm.Call)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return gm.CallReply(error=gm.CallError("bad_call", str(exc)))
        ctx = Context(self, self._call_codec, call.path, None, call.data, None)
        try:
            await self.router.dispatch(ctx, public_only=False)
        except ServiceError as exc:
            return gm.CallReply(error=gm.CallError(exc.code, exc.message))
        except Exception:
            log.exception("call to %s failed", call.path)
            return gm.CallReply(error=gm.CallError("internal", "the call failed"))
        data = b"" if ctx.result is None else self._call_codec.encode_data(ctx.result)
        return gm.CallReply(data=data)

    async def _on_call(self, msg: Msg) -> None:
        reply = await self._run_call(msg)
        if msg.reply:
            self.transport.publish(msg.reply, gm.encode(reply))

    async def _on_broadcast(self, msg: Msg) -> None:
        await self._run_call(msg)
