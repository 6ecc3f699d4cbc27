"""Admin-API routes in a JetStream KV bucket: one set for every router on a NATS cluster.

When ``[nats]`` is configured (and ``routes_bucket`` is not ``""``), the
leader keeps the routes operators add or remove through the admin API in the
bucket, one key per ``(uri, endpoint)`` whose value is the one-uri
``router.register`` body. Every router of the cluster watches the bucket, so
a route added on one appears on all of them (within one watch delivery,
milliseconds) and survives a restart of any of them, on any machine.

The local state file (``control.admin_state``) stays what it was, a cache:
it is written after every change, from this router or from the bucket, and
is what a router starts with when NATS is unreachable. The bucket decides
once it is reachable:

* at each (re)connection the changes made here while NATS was down are
  written first, then a fresh watcher reads the whole bucket, the local set
  is made equal to it (routes another router removed meanwhile go), and
  later updates are applied as they arrive;
* a bucket that does not exist yet is created and seeded from the local
  set, so turning NATS on keeps the routes a router already had;
* a change made here while NATS is down is queued in memory and written at
  the next connection; one made and then lost with the process before that
  stays only in the local file, and the bucket wins over it.

Drained endpoints stay local to each router (they are in the state file).
The connection is the leader's NATS client (``discovery.nats_registry``);
this module only watches whether it is connected, every ``POLL`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from pointsman.control.admin_state import AdminState, route_entries
from pointsman.wire.gorouter import MalformedRegistration, RegistryMessage, decode_registration

__all__ = ["POLL", "RETRY", "AdminKv", "kv_key"]

POLL = 0.2
"""Seconds between two looks at the connection (reconnects restart the watch)."""
RETRY = 2.0
"""Seconds before trying again after the bucket could not be used."""
TIMEOUT = 5.0
"""Seconds a JetStream request, or the bucket's first full read, may take."""
KEY_PREFIX = "route."
_DELETED = ("DEL", "PURGE")

Apply = Callable[[str, RegistryMessage], None]


def kv_key(uri: str, endpoint: str) -> str:
    """A KV key for one route: the bucket allows only ``[-/_=.A-Za-z0-9]`` in keys."""
    raw = f"{uri} {endpoint}".encode()
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class AdminKv:
    """Keeps ``state.routes`` and the bucket equal; ``apply`` changes this router's table."""

    def __init__(self, bucket: str, client: Callable[[], Client | None], state: AdminState,
                 apply: Apply, events: Any) -> None:
        self.bucket = bucket
        self.client = client
        self.state = state
        self.apply = apply
        self.events = events
        self.synced = asyncio.Event()
        self.error = ""
        self.applied = 0
        # Local changes not yet in the bucket, in order: KV key -> body, or None to delete.
        self._pending: dict[str, str | None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- what the leader calls ----------------------------------------------------------

    async def start(self, wait: float) -> None:
        """Run in the background; wait up to ``wait`` s for a first sync if NATS is up now."""
        self._task = asyncio.create_task(self._run())
        client = self.client()
        if client is not None and client.is_connected and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.synced.wait(), wait)

    def changed(self, op: str, message: RegistryMessage) -> None:
        """An admin-API change this router made: into the bucket, now or once reachable."""
        for (uri, endpoint), body in route_entries(message):
            self._pending[kv_key(uri, endpoint)] = body if op == "register" else None
        self._wake.set()

    async def stop(self) -> None:
        """Write what is still pending (briefly, if connected), then stop watching."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), TIMEOUT)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def describe(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "synced": self.synced.is_set(),
                "pending": len(self._pending), "applied": self.applied, "error": self.error}

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            client = self.client()
            if client is None or not client.is_connected:
                self.synced.clear()
                await self._sleep(POLL)
                continue
            try:
                await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.synced.clear()
                error = f"{type(exc).__name__}: {exc}"
                if error != self.error:
                    self.events.event("warning", "routes_bucket_unavailable",
                                      bucket=self.bucket, error=error,
                                      detail="admin routes kept in the local file meanwhile")
                self.error = error
                await self._sleep(RETRY)

    async def _session(self, client: Client) -> None:
        """One connection's worth: flush, read everything, follow updates until it changes."""
        reconnects = client.stats["reconnects"]
        kv = await self._open(client)
        await self._flush(kv)
        watcher = await kv.watchall()
        try:
            snapshot: dict[str, str] = {}
            while True:
                entry = await watcher.updates(timeout=TIMEOUT)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                if entry.operation not in _DELETED and entry.value:
                    snapshot[entry.key] = entry.value.decode()
            self._reconcile(snapshot)
            self.synced.set()
            if self.error:
                self.events.event("info", "routes_bucket_available", bucket=self.bucket)
            self.error = ""
            self.events.event("debug", "routes_bucket_synced", bucket=self.bucket,
                              routes=len(snapshot))
            follower = asyncio.create_task(self._follow(watcher))
            try:
                while not self._stopping and client.is_connected \
                        and client.stats["reconnects"] == reconnects and not follower.done():
                    await self._flush(kv)
                    await self._sleep(POLL)
                await self._flush(kv)
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower  # re-raises what broke the watch, if anything did
        finally:
            self.synced.clear()
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _open(self, client: Client) -> KeyValue:
        js = client.jetstream(timeout=TIMEOUT)
        try:
            return await js.key_value(self.bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(bucket=self.bucket, history=1,
                                           description="pointsman admin-API routes")
            for (uri, endpoint), body in self.state.routes.items():  # seed it from here
                self._pending.setdefault(kv_key(uri, endpoint), body)
            self.events.event("info", "routes_bucket_created", bucket=self.bucket,
                              seeded=len(self.state.routes))
            return kv

    async def _flush(self, kv: KeyValue) -> None:
        while self._pending:
            key, body = next(iter(self._pending.items()))
            if body is None:
                await kv.delete(key)
            else:
                await kv.put(key, body.encode())
            if self._pending.get(key, "") == body:  # unchanged while we wrote it
                del self._pending[key]
        self._wake.clear()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None or entry.key in self._pending:
                continue  # our own newer change is on its way to the bucket
            if entry.operation in _DELETED or not entry.value:
                self._remove(entry.key)
            else:
                self._add(entry.key, entry.value.decode())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- making this router's set equal to the bucket --------------------------------------

    def _local(self) -> dict[str, tuple[tuple[str, str], str]]:
        return {kv_key(uri, endpoint): ((uri, endpoint), body)
                for (uri, endpoint), body in self.state.routes.items()}

    def _reconcile(self, snapshot: dict[str, str]) -> None:
        for key in set(self._local()) - set(snapshot):
            if key not in self._pending:
                self._remove(key)
        for key, body in snapshot.items():
            if key not in self._pending:
                self._add(key, body)

    def _add(self, key: str, body: str) -> None:
        local = self._local().get(key)
        if local is not None and local[1] == body:
            return  # already so (our own change coming back, or nothing new)
        message = _decode(body)
        if message is not None:
            self.applied += 1
            self.apply("register", message)

    def _remove(self, key: str) -> None:
        local = self._local().get(key)
        if local is None:
            return
        message = _decode(local[1])
        if message is not None:
            self.applied += 1
            self.apply("unregister", message)


def _decode(body: str) -> RegistryMessage | None:
    try:
        return decode_registration(body.encode())
    except MalformedRegistration:
        return None
