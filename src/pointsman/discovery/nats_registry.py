"""gorouter's registration protocol over NATS, feeding a ``RegistryDriver``.

What a gorouter client sees (mbus/subscriber.go, common/component.go):

* ``router.register`` / ``router.unregister`` are applied; a payload that
  cannot be used is counted and logged (at most once a second), never fatal;
* ``router.start`` is published once connected and again after every
  reconnect, so clients re-register at once; ``router.greet`` requests get the
  same body as their reply;
* ``start`` returns once the subscriptions are in place (the server has
  answered a PING sent after the SUBs), so a process that says ``ready``
  after it loses no registration published the moment it says so; it waits
  at most ``READY_WAIT`` seconds, and less when every configured server has
  failed one attempt, so an unreachable NATS does not hold start-up;
* the connection retries forever: the first connection every
  ``INITIAL_RETRY_WAIT`` seconds, reconnects with exponential backoff from
  ``RECONNECT_BASE`` capped at ``RECONNECT_MAX``, jittered so a fleet of routers
  does not reconnect in step;
* with ``suspend_pruning_if_nats_unavailable`` (the default), pruning stops on
  disconnect and resumes one ``minimum_register_interval`` after reconnecting,
  every endpoint freshened first: an outage never empties the table.
"""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nats.aio.client import Client, Server
from nats.aio.msg import Msg

from pointsman.config import NatsConfig, RegistryConfig
from pointsman.discovery.driver import RegistryDriver
from pointsman.wire.gorouter import (
    MalformedRegistration,
    RouterStart,
    decode_registration,
    encode_router_start,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "INITIAL_RETRY_WAIT",
    "READY_WAIT",
    "RECONNECT_BASE",
    "RECONNECT_MAX",
    "NatsRegistry",
    "reconnect_delay",
]

CONNECT_TIMEOUT = 2
INITIAL_RETRY_WAIT = 1
RECONNECT_BASE = 0.05
RECONNECT_MAX = 2.0
PING_INTERVAL = 20
MAX_OUTSTANDING_PINGS = 2
READY_WAIT = 5.0
"""The longest ``start`` waits for the subscriptions before going on without them.

Longer than one connection attempt (``CONNECT_TIMEOUT`` per step of the
handshake), so a slow but reachable server on a busy machine is still
subscribed before ``ready``; a refused or silent one ends the wait as soon as
every server has failed once, so this bound only matters for a cluster whose
servers keep half-answering.
"""
MALFORMED_LOG_INTERVAL = 1.0

_RNG = random.Random()

SUBJECT_REGISTER = "router.register"
SUBJECT_UNREGISTER = "router.unregister"
SUBJECT_START = "router.start"
SUBJECT_GREET = "router.greet"


def reconnect_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next try at a server that failed ``attempts`` times."""
    ceiling = min(RECONNECT_MAX, RECONNECT_BASE * (1 << min(attempts, 16)))
    return ceiling * (rng or _RNG).uniform(0.5, 1.0)


class NatsRegistry:
    """One NATS connection carrying gorouter's subjects for one router."""

    def __init__(self, config: NatsConfig, settings: RegistryConfig, driver: RegistryDriver,
                 events: Any, base_dir: str = "", index: int = 0) -> None:
        self.config = config
        self.settings = settings
        self.driver = driver
        self.events = events
        self.client = Client()
        self.start_message = RouterStart(
            id=f"{index}-{uuid.uuid4()}",
            hosts=[_local_ip(config.servers)],
            minimum_register_interval_in_seconds=round(settings.minimum_register_interval),
            prune_threshold_in_seconds=round(settings.prune_threshold))
        self._start_body = encode_router_start(self.start_message)
        self._credentials = None
        if config.credentials:
            path = Path(config.credentials)
            if not path.is_absolute() and base_dir:
                path = Path(base_dir).parent / path
            self._credentials = str(path)
        self._connect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failed_attempts = 0  # before the first connection: one per server tried
        self._every_server_failed = asyncio.Event()
        self._malformed_logged = -MALFORMED_LOG_INTERVAL
        self._malformed_quiet = 0
        self._errors_logged = 0
        self.malformed = 0
        self.starts_published = 0
        self.greets_answered = 0

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected)

    @property
    def subscribed(self) -> bool:
        """The server has processed this router's SUBs (they survive reconnects)."""
        task = self._connect_task
        return task is not None and task.done() and not task.cancelled() \
            and task.exception() is None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, wait: float = READY_WAIT) -> bool:
        """Connect in the background; wait until subscribed, or not longer than ``wait``.

        The wait also ends once every configured server has failed one attempt
        (refused, or silent for ``CONNECT_TIMEOUT``). Whether the
        subscriptions are in place on return; if not, a warning says so and
        the connection keeps being tried.
        """
        self._connect_task = asyncio.create_task(self._connect())
        self._connect_task.add_done_callback(self._connect_done)
        failed = asyncio.ensure_future(self._every_server_failed.wait())
        try:
            await asyncio.wait((self._connect_task, failed), timeout=wait,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if self.subscribed:
            return True
        self.events.event("warning", "nats_unavailable", servers=self.config.servers,
                          connected=self.connected, failed_attempts=self._failed_attempts,
                          detail="not connected to NATS yet: serving file and admin routes; "
                                 "still trying")
        return False

    async def _connect(self) -> None:
        await self.client.connect(
            servers=self.config.servers, name=self.config.name,
            user_credentials=self._credentials,
            allow_reconnect=True, max_reconnect_attempts=-1,
            connect_timeout=CONNECT_TIMEOUT, reconnect_time_wait=INITIAL_RETRY_WAIT,
            ping_interval=PING_INTERVAL, max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            reconnect_to_server_handler=self._next_server,
            error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected)
        await self.client.subscribe(SUBJECT_REGISTER, cb=self._on_register)
        await self.client.subscribe(SUBJECT_UNREGISTER, cb=self._on_unregister)
        await self.client.subscribe(SUBJECT_GREET, cb=self._on_greet)
        await self.client.flush()
        self.events.event("info", "nats_connected", server=self._server_name(),
                          id=self.start_message.id)
        await self._publish_start()

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.events.event("error", "nats_connect_failed", error=repr(task.exception()))

    async def stop(self) -> None:
        self._stopping = True
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        try:
            await self.client.close()
        except Exception as exc:  # closing a half-open client must not break shutdown
            self.events.event("warning", "nats_close_failed", error=repr(exc))

    # -- connection events ----------------------------------------------------------

    def _next_server(self, servers: list[Server],
                     info: dict[str, Any]) -> tuple[Server | None, float]:
        """nats-py's reconnect hook: the least-tried server, after a jittered backoff."""
        fewest = min(server.reconnects for server in servers)
        server = _RNG.choice([s for s in servers if s.reconnects == fewest])
        return server, reconnect_delay(server.reconnects)

    async def _on_error(self, error: Exception) -> None:
        if self._connect_task is not None and not self._connect_task.done() \
                and not self.client.is_connected:
            self._failed_attempts += 1  # nats-py reports each failed first attempt here
            if self._failed_attempts >= len(self.config.servers):
                self._every_server_failed.set()
        self._errors_logged += 1
        if self._errors_logged <= 3 or self._errors_logged % 100 == 0:
            self.events.event("warning", "nats_error", error=repr(error),
                              count=self._errors_logged)

    async def _on_disconnected(self) -> None:
        if self._stopping:
            return
        self.events.event("warning", "nats_disconnected")
        if self.settings.suspend_pruning_if_nats_unavailable:
            self.driver.suspend()

    async def _on_reconnected(self) -> None:
        self._errors_logged = 0
        self.events.event("info", "nats_reconnected", server=self._server_name())
        await self._publish_start()
        if self.settings.suspend_pruning_if_nats_unavailable:
            self.driver.resume_after(self.settings.minimum_register_interval)

    async def _publish_start(self) -> None:
        await self.client.publish(SUBJECT_START, self._start_body)
        self.starts_published += 1

    def _server_name(self) -> str:
        url = self.client.connected_url
        return url.netloc if url is not None else ""

    # -- messages -------------------------------------------------------------------

    async def _on_register(self, msg: Msg) -> None:
        try:
            message = decode_registration(msg.data)
        except MalformedRegistration as exc:
            self._reject(msg, exc)
            return
        self.driver.register(message)

    async def _on_unregister(self, msg: Msg) -> None:
        try:
            message = decode_registration(msg.data)
        except MalformedRegistration as exc:
            self._reject(msg, exc)
            return
        self.driver.unregister(message)

    async def _on_greet(self, msg: Msg) -> None:
        if msg.reply:
            await self.client.publish(msg.reply, self._start_body)
            self.greets_answered += 1

    def _reject(self, msg: Msg, error: MalformedRegistration) -> None:
        self.malformed += 1
        now = self.driver.now()
        if now - self._malformed_logged < MALFORMED_LOG_INTERVAL:
            self._malformed_quiet += 1
            return
        self.events.event("warning", "registration_malformed", subject=msg.subject,
                          error=str(error), payload=msg.data[:200].decode("utf-8", "replace"),
                          not_logged_since_last=self._malformed_quiet)
        self._malformed_logged = now
        self._malformed_quiet = 0


def _local_ip(servers: list[str]) -> str:
    """The address this host uses to reach NATS (no packet is sent), as gorouter's LocalIP."""
    for server in servers:
        host = urlparse(server if "://" in server else f"nats://{server}").hostname
        if not host:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 4222))
                return str(probe.getsockname()[0])
        except OSError:
            continue
    return "127.0.0.1"
