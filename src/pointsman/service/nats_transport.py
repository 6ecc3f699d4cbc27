"""The production transport: NATS through nats-py.

``publish`` is synchronous (see ``transport.py``), so messages go into an
outbox drained by one pump task: a burst of deliveries costs one task wake-up,
not a coroutine per message. ``request`` drains the outbox first so that a
request never overtakes a message published before it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

import nats
import nats.errors

from pointsman.service.errors import NoResponders, TransportError, TransportTimeout
from pointsman.service.transport import Callback, Msg, Subscription, Transport

__all__ = ["NatsTransport"]

log = logging.getLogger("pointsman.service.nats")

_STATUS_NO_RESPONDERS = "503"


class _NatsSubscription(Subscription):
    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()


class NatsTransport(Transport):
    """The gateway/service bus over NATS (``nats://host:port``; comma-separate a cluster)."""

    def __init__(self, url: str = "nats://127.0.0.1:4222", *, name: str = "pointsman") -> None:
        self.url = url
        self.name = name
        self._nc: Any = None
        self._outbox: collections.deque[tuple[str, bytes, str]] = collections.deque()
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def client(self) -> Any:
        """The underlying nats-py client (after ``connect``)."""
        return self._nc

    @property
    def connected(self) -> bool:
        return self._nc is not None and bool(self._nc.is_connected)

    async def connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._nc is not None:
                return
            servers = [part.strip() for part in self.url.split(",") if part.strip()]
            self._nc = await nats.connect(
                servers=servers,
                name=self.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                error_cb=self._on_error,
            )
            self._wake = asyncio.Event()
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def close(self) -> None:
        if self._nc is None:
            return
        with contextlib.suppress(Exception):
            await self._drain_outbox()
            await self._nc.flush(timeout=2)
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        with contextlib.suppress(Exception):
            await self._nc.close()
        self._nc = None

    def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self._outbox.append((subject, data, reply))
        self._wake.set()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain_outbox()

    async def _drain_outbox(self) -> None:
        outbox = self._outbox
        publish = self._nc.publish
        while outbox:
            subject, data, reply = outbox.popleft()
            try:
                await publish(subject, data, reply=reply)
            except nats.errors.Error as exc:
                log.warning("nats: dropped a message to %s: %s", subject, exc)

    async def subscribe(self, subject: str, callback: Callback, queue: str = "") -> Subscription:
        if self._nc is None:
            raise TransportError("subscribe before connect")

        async def adapt(msg: Any) -> None:
            headers = msg.headers
            no_responders = bool(headers) and headers.get("Status") == _STATUS_NO_RESPONDERS
            await callback(Msg(msg.subject, msg.data, msg.reply or "", no_responders))

        sub = await self._nc.subscribe(subject, queue=queue, cb=adapt)
        return _NatsSubscription(sub)

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        if self._nc is None:
            raise TransportError("request before connect")
        await self._drain_outbox()
        try:
            msg = await self._nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise TransportTimeout(subject, timeout) from None
        data_out: bytes = msg.data
        return data_out

    async def flush(self) -> None:
        if self._nc is None:
            return
        await self._drain_outbox()
        await self._nc.flush(timeout=5)
