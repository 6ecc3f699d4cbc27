"""The bus between gateways and services, and its in-process implementation.

A transport is the part of NATS the gateway protocol needs: subject
publish/subscribe with ``*``/``>`` wildcards and queue groups, request/reply,
and "no responders" when a request's subject has no subscriber. ``publish``
is synchronous: it queues and returns, so protocol callbacks (which must not
await) can publish without creating a coroutine per message.

``LocalTransport`` gives the same semantics inside one process for tests and
single-process deployments; ``NatsTransport`` (``nats_transport.py``) is the
production one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pointsman.service.errors import NoResponders, TransportTimeout

__all__ = ["Callback", "LocalTransport", "Msg", "Subscription", "Transport", "subject_matches"]

log = logging.getLogger("pointsman.service.transport")


@dataclass(frozen=True, slots=True)
class Msg:
    """One message as a subscriber sees it."""

    subject: str
    data: bytes
    reply: str = ""
    no_responders: bool = False


Callback = Callable[[Msg], Awaitable[None]]


class Subscription(ABC):
    @abstractmethod
    async def unsubscribe(self) -> None: ...


class Transport(ABC):
    """Publish, subscribe and request on subjects."""

    @abstractmethod
    async def connect(self) -> None:
        """Idempotent: a transport shared by a gateway and services connects once."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """Queue one message; never blocks. Order per transport is kept."""

    @abstractmethod
    async def subscribe(self, subject: str, callback: Callback, queue: str = "") -> Subscription:
        """Callbacks of one subscription run one at a time, in arrival order."""

    @abstractmethod
    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        """Send and wait for one reply; ``NoResponders`` or ``TransportTimeout`` otherwise."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until everything published so far has left this process."""

    @property
    def connected(self) -> bool:
        """False while the bus is unreachable: silence then says nothing about peers."""
        return True


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` is one or more."""
    want = pattern.split(".")
    have = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


class _LocalSubscription(Subscription):
    def __init__(self, owner: LocalTransport, subject: str, queue: str,
                 callback: Callback) -> None:
        self.owner = owner
        self.subject = subject
        self.queue = queue
        self.callback = callback
        self.inbox: asyncio.Queue[Msg] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            msg = await self.inbox.get()
            try:
                await self.callback(msg)
            except Exception:
                log.exception("subscriber of %s failed", self.subject)

    async def unsubscribe(self) -> None:
        self.owner._remove(self)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class LocalTransport(Transport):
    """An in-process bus with NATS semantics; share one instance between gateway and services."""

    def __init__(self) -> None:
        self._subs: list[_LocalSubscription] = []
        self._turn = itertools.count()
        self._inbox_ids = itertools.count(1)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        for sub in list(self._subs):
            await sub.unsubscribe()

    def _remove(self, sub: _LocalSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        plain: list[_LocalSubscription] = []
        groups: dict[str, list[_LocalSubscription]] = {}
        for sub in self._subs:
            if subject_matches(sub.subject, subject):
                if sub.queue:
                    groups.setdefault(sub.queue, []).append(sub)
                else:
                    plain.append(sub)
        chosen = plain + [members[next(self._turn) % len(members)] for members in groups.values()]
        if not chosen:
            if reply:
                self._no_responders(reply)
            return
        msg = Msg(subject, data, reply)
        for sub in chosen:
            sub.inbox.put_nowait(msg)

    def _no_responders(self, reply: str) -> None:
        status = Msg(reply, b"", "", no_responders=True)
        for sub in self._subs:
            if subject_matches(sub.subject, reply):
                sub.inbox.put_nowait(status)

    async def subscribe(self, subject: str, callback: Callback, queue: str = "") -> Subscription:
        sub = _LocalSubscription(self, subject, queue, callback)
        self._subs.append(sub)
        return sub

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        inbox = f"_INBOX.local.{next(self._inbox_ids)}"
        answer: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

        async def receive(msg: Msg) -> None:
            if not answer.done():
                answer.set_result(msg)

        sub = await self.subscribe(inbox, receive)
        try:
            self.publish(subject, data, reply=inbox)
            try:
                msg = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                raise TransportTimeout(subject, timeout) from None
        finally:
            await sub.unsubscribe()
        if msg.no_responders:
            raise NoResponders(subject)
        return msg.data

    async def flush(self) -> None:
        await asyncio.sleep(0)
