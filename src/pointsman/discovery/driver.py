"""The registry on an event loop: coalesced publishing and the pruning timer.

``Registry`` is pure; this puts it on a clock. Every source (NATS, the admin
API, a reload) calls ``register``/``unregister`` here. A change schedules one
publish ``PUBLISH_DELAY`` later, so a burst of ten thousand registrations
costs one snapshot, not ten thousand, and a route is routable a few
milliseconds after its message arrives. Sources that answer a person (the
admin API) call ``publish_now`` so their reply reflects the change.

Pruning runs every ``prune_interval`` (and a TLS endpoint a request failed
to reach goes at once, ``endpoint_failed``); ``suspend`` stops it (NATS is
unreachable) and ``resume_after`` restarts it after a delay, freshening
every endpoint first, as gorouter does after a reconnect.

A registry that publishes no table (a leader's) gets the same timers and
heap upkeep; its changes just schedule no publish.

Empty pools the registry keeps (``empty_pool_timeout``) are deleted by a
timer of their own, armed for the oldest one, so a worker (which never
prunes) drops them on time too. Messages stamped with
``endpoint_updated_at_ns`` feed the ``route_registration_latency`` histogram.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any, Protocol

from pointsman.discovery.latency import RegistrationLatency
from pointsman.discovery.registry import Registration, Registry, Source
from pointsman.wire.gorouter import RegistryMessage

__all__ = [
    "GC_FREEZE_GROWTH",
    "MAX_PUBLISH_DELAY",
    "PUBLISH_DELAY",
    "PUBLISH_DUTY",
    "RegistryDriver",
]

PUBLISH_DELAY = 0.005
"""Seconds between a change and its snapshot when publishing is cheap."""

PUBLISH_DUTY = 4.0
"""Wait at least this many times the last publish's duration before the next one.

A snapshot costs about the number of table shards a batch touches, so under a
flood of registrations bigger batches are cheaper per change: spacing
publishes by their own cost keeps publishing under a fifth of the loop's time.
"""

GC_FREEZE_GROWTH = 10_000
"""After the registry grows by this many endpoints, collect once and freeze the heap.

The table's objects live long and hold no cycles, but every full collection of
the cycle collector walks them all: ingesting 100k routes from an empty table
spent most of its time there. ``gc.freeze`` moves what exists into the
permanent generation, so later collections walk only newer objects. A
collection runs just before each freeze so no garbage is frozen with it.
"""

MAX_PUBLISH_DELAY = 0.5
"""However costly publishing gets, a change is routable within this (plus one publish).

Only a flood into a large table gets near it: a batch that touches every
shard copies the whole table, so publishing at a fixed short period would
spend the loop copying (at 300k routes a 50 ms cap cost a third more CPU per
registration). An idle table publishes ``PUBLISH_DELAY`` after a change.
"""


class _Events(Protocol):
    def event(self, level: str, name: str, **fields: Any) -> None: ...


class RegistryDriver:
    """Owns the timers around one ``Registry``; call ``start`` then ``stop``."""

    def __init__(self, registry: Registry, loop: asyncio.AbstractEventLoop,
                 prune_interval: float, events: _Events | None = None,
                 publish_delay: float = PUBLISH_DELAY) -> None:
        self.registry = registry
        self.loop = loop
        self.prune_interval = prune_interval
        self.publish_delay = publish_delay
        self.events = events
        self.publishes = 0
        self.last_publish_seconds = 0.0
        self.latency = RegistrationLatency()
        # Called after each snapshot is published (a worker tells its leader what it routes).
        self.on_publish: Callable[[], None] | None = None
        self._frozen_at = 0
        self._publish_handle: asyncio.TimerHandle | None = None
        self._prune_handle: asyncio.TimerHandle | None = None
        self._resume_handle: asyncio.TimerHandle | None = None
        self._empty_handle: asyncio.TimerHandle | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.publish_now()
        self._prune_handle = self.loop.call_later(self.prune_interval, self._prune_tick)

    def stop(self) -> None:
        for handle in (self._publish_handle, self._prune_handle, self._resume_handle,
                       self._empty_handle):
            if handle is not None:
                handle.cancel()
        self._publish_handle = self._prune_handle = self._resume_handle = None
        self._empty_handle = None
        self.publish_now()
        if self._empty_handle is not None:  # armed by that last publish
            self._empty_handle.cancel()
            self._empty_handle = None

    # -- changes --------------------------------------------------------------------

    def now(self) -> float:
        return self.loop.time()

    def register(self, message: RegistryMessage, source: Source = "nats") -> int:
        if message.endpoint_updated_at_ns and source == "nats":
            self.latency.observe_stamp(message.endpoint_updated_at_ns, time.time_ns())
        changed = self.registry.register(message, self.loop.time(), source)
        if changed:
            self.changed()
        return changed

    def unregister(self, message: RegistryMessage, source: Source = "nats") -> int:
        changed = self.registry.unregister(message, self.loop.time(), source)
        if changed:
            self.changed()
        return changed

    def changed(self) -> None:
        """Something is dirty: publish soon, once, whatever else arrives meanwhile.

        A registry that publishes no table has nothing to wait for: only its upkeep runs.
        """
        if not self.registry.publishes:
            self._upkeep()
            return
        if self._publish_handle is None:
            delay = min(MAX_PUBLISH_DELAY,
                        max(self.publish_delay, PUBLISH_DUTY * self.last_publish_seconds))
            self._publish_handle = self.loop.call_later(delay, self.publish_now)

    def publish_now(self) -> None:
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        if self.registry.pending:
            started = time.perf_counter()
            self.registry.publish()
            self.last_publish_seconds = time.perf_counter() - started
            self.publishes += 1
            if self.on_publish is not None:
                self.on_publish()
        self._upkeep()

    def _upkeep(self) -> None:
        """After changes: the empty-pool timer, and the heap frozen as the registry grows."""
        registry = self.registry
        if registry.keep_empty_pools:
            self._arm_empty()
        if registry.endpoint_count - self._frozen_at >= GC_FREEZE_GROWTH:
            gc.collect()
            gc.freeze()
            self._frozen_at = registry.endpoint_count
        elif registry.endpoint_count < self._frozen_at:
            self._frozen_at = registry.endpoint_count

    # -- empty pools ----------------------------------------------------------------

    def _arm_empty(self) -> None:
        """Wake when the oldest kept empty pool is due (if no wake-up is set yet)."""
        if self._empty_handle is not None:
            return
        due = self.registry.next_empty_expiry
        if due is not None:
            self._empty_handle = self.loop.call_at(due, self._expire_empty)

    def _expire_empty(self) -> None:
        self._empty_handle = None
        expired = self.registry.expire_empty_pools(self.loop.time())
        if expired:
            self.publish_now()
            self._event("info", "empty_pools_deleted", count=len(expired), routes=expired[:20])
        self._arm_empty()

    # -- pruning --------------------------------------------------------------------

    def suspend(self) -> None:
        """Stop pruning until ``resume_after``; a pending resume is called off."""
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if not self.registry.pruning_suspended:
            self.registry.suspend_pruning()
            self._event("warning", "registry_pruning_suspended")

    def resume_after(self, delay: float) -> None:
        """Resume pruning in ``delay`` seconds, giving clients time to re-register."""
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        self._resume_handle = self.loop.call_later(delay, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        if self.registry.pruning_suspended:
            self.registry.resume_pruning(self.loop.time())
            self._event("info", "registry_pruning_resumed")

    def prune(self) -> int:
        pruned = self.registry.prune(self.loop.time())
        if pruned:
            self.publish_now()
            self._event("info", "routes_pruned", count=len(pruned),
                        routes=[f"{key} {entry.endpoint.address}" for key, entry in pruned[:20]])
            self.removed(pruned)
        return len(pruned)

    def endpoint_failed(self, key: str, address: str) -> bool:
        """A request failed to reach a TLS endpoint: it leaves the table (``prune_failed``)."""
        entry = self.registry.prune_failed(key, address, self.loop.time())
        if entry is None:
            return False
        self.changed()  # batched like registrations: a failing cell is one snapshot
        self._event("warning", "tls_endpoint_pruned", route=key, endpoint=address)
        self.removed([(key, entry)])
        return True

    def removed(self, entries: list[tuple[str, Registration]]) -> None:
        """NATS endpoints this driver removed on its own (pruned); a leader tells its workers."""

    def _prune_tick(self) -> None:
        self._prune_handle = self.loop.call_later(self.prune_interval, self._prune_tick)
        self.prune()

    def _event(self, level: str, name: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.event(level, name, **fields)
