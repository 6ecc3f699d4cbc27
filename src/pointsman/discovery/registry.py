"""The route registry: every registered endpoint, with gorouter's lifecycle rules.

This is the one writer of the HTTP route table. Registrations arrive from
three sources, ranked so an operator's intent is never undone by a heartbeat:

* ``static`` (the TOML file) -- never pruned; changed only by a reload;
* ``admin`` (the admin API) -- never pruned; removed by the admin API;
* ``nats`` (``router.register``) -- a heartbeat; pruned when it stops.

A source may change or remove only what its own rank or a lower one put there.

An operator may *drain* one endpoint of one route key (``set_drained``): it
stays registered and listed (``draining: true``) but is left out of the
published pool, so no worker picks it for a new request while requests it
is already serving finish. The intent outlives the endpoint: a drained
endpoint that is unregistered and registered again is still drained. Drained
endpoints never reach the per-request path, which therefore pays nothing.

The rules follow gorouter's registry.go and route/pool.go:

* an endpoint is keyed per route key by ``host:port`` (``tls_port`` when set);
  registering it again is a heartbeat that refreshes its age;
* ``stale_threshold_in_seconds`` of 0, or above the router's threshold, means
  the router's threshold;
* ``prune(now)`` removes NATS endpoints older than their threshold, except TLS
  ones, which gorouter prunes only on a failed request (``prune_failed``);
* while pruning is suspended (NATS unreachable) nothing is pruned by age, and
  ``resume_pruning`` first marks every endpoint fresh (``freshenRoutes``); a
  TLS endpoint that fails a request still goes, as in gorouter, and comes
  back with its first heartbeat after NATS does;
* a valid ``options.loadbalancing`` sets the whole pool's balancing; an
  invalid one is counted and the pool keeps what it had;
* a registration outside this router's shard (``routing_table_sharding_mode``
  and ``isolation_segments``) is counted and ignored, register or unregister;
  the file's own routes are never filtered;
* putting an endpoint that is already there returns ``UPDATED``, or
  ``UNMODIFIED`` when the stored ``ModificationTag`` is newer than the one
  given (the endpoint stays as it was); either way its heartbeat is
  refreshed. An unregister removes it only with the same or a newer tag.
  gorouter's NATS messages carry no tag (``endpoint_updated_at_ns`` only
  feeds the ``route_registration_latency`` metric), so over NATS every put
  is ``UPDATED`` and every unregister removes;
* a pool with a ``route_service_url`` is published with its endpoints (less
  the drained ones) and its service, as any pool: every request that finds
  it goes to the service first, or is refused with 502
  ``route_service_unsupported`` by a listener without route services (as
  gorouter answers when they are disabled), so a request never goes around
  the service meant to see it, nor past it to a shorter route;
* a pool whose last endpoint goes away is deleted at once, unless
  ``keep_empty_pools`` (``empty_pool_response_code_503`` with an
  ``empty_pool_timeout``) is set: then it stays, empty, for that long, so
  requests get 503 ``no_endpoints`` instead of 404, and ``expire_empty_pools``
  deletes it afterwards.

Changes are cheap and publishing is separate: ``register`` and friends mark
route keys dirty, and ``publish`` turns only those keys into a new
``RouteTable`` snapshot. A heartbeat that changes nothing marks nothing, and
many changes between two publishes cost one snapshot. Time is always passed
in; nothing here reads a clock or does I/O.

A registry made with ``publishes=False`` keeps the bookkeeping alone (the
endpoints, their ages, pruning, ``describe``) and never builds a table: a
leader process, which serves no request, answers ``/routes`` and forwards
changes from it, and building snapshots nobody reads cost it a third of its
time under a registration flood.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from pointsman.config import RegistryConfig
from pointsman.routing.table import Endpoint, RoutePool, RouteTable, TableHolder, route_key
from pointsman.wire.gorouter import LOAD_BALANCING, RegistryMessage

__all__ = [
    "RANKS",
    "SHARDING_MODES",
    "ModificationTag",
    "PutResult",
    "Registration",
    "Registry",
    "Source",
    "endpoint_of",
    "in_shard",
]

Source = Literal["nats", "admin", "static"]
RANKS: dict[str, int] = {"nats": 0, "admin": 1, "static": 2}
SHARDING_MODES = ("all", "segments", "shared-and-segments")

_GOROUTER_BALANCE = {ours: theirs for theirs, ours in LOAD_BALANCING.items()}


class PutResult(enum.Enum):
    """What putting one endpoint under one route key did (gorouter's ``PoolPutResult``).

    ``REFUSED`` is pointsman's: a higher-ranked source owns that endpoint.
    """

    ADDED = "added"
    UPDATED = "updated"
    UNMODIFIED = "unmodified"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ModificationTag:
    """gorouter's ``models.ModificationTag``: which of two versions of an endpoint is newer.

    Versions with different ``guid``s are unordered (the newer one is whichever
    arrives), and an empty ``guid`` orders nothing, as in gorouter.
    """

    guid: str = ""
    index: int = 0

    def succeeded_by(self, other: ModificationTag | None) -> bool:
        """Whether ``other`` may replace a version tagged ``self`` (``SucceededBy``)."""
        if other is None or not self.guid or not other.guid:
            return True
        return self.guid != other.guid or self.index < other.index


def _replaceable(old: ModificationTag | None, new: ModificationTag | None) -> bool:
    return old is None or old.succeeded_by(new)


def _removable(old: ModificationTag | None, new: ModificationTag | None) -> bool:
    """The same tag or a newer one may remove an endpoint."""
    return old is None or old == new or old.succeeded_by(new)


def in_shard(segment: str, mode: str, segments: Collection[str]) -> bool:
    """gorouter's ``endpointInRouterShard``: does this router take that segment's endpoints."""
    if mode == "segments":
        return segment in segments
    if mode == "shared-and-segments":
        return not segment or segment in segments
    return True


def _protocol(protocol: str) -> str:
    """``""`` reads as ``http1``; ``http2`` too, as in gorouter with ``enable_http2`` off.

    pointsman speaks HTTP/1.1 to its backends, so an ``http2`` endpoint is
    reached (and listed) as ``http1``, which gorouter does when HTTP/2 is disabled.
    """
    return "http1" if protocol in ("", "http1", "http2") else protocol


def endpoint_of(message: RegistryMessage) -> Endpoint:
    """The routing table's view of one registration (made once per registration)."""
    tls_port = message.tls_port
    return Endpoint(message.host, tls_port or message.port, tls_port != 0, message.app,
                    message.private_instance_id, message.private_instance_index,
                    message.tag_items, message.server_cert_domain_san,
                    message.route_service_url, message.availability_zone)


class Registration(msgspec.Struct, gc=False):
    """One endpoint under one route key, and what only the registry needs to know.

    Not tracked by the cycle collector (it holds no cycles): with 100k routes
    the registry's objects would otherwise make every full collection slow.
    """

    endpoint: Endpoint
    source: str
    updated: float
    stale_after: float
    isolation_segment: str = ""
    protocol: str = "http1"
    tag: ModificationTag | None = None

    def same_as(self, endpoint: Endpoint, source: str, message: RegistryMessage) -> bool:
        """Equal in everything a request or ``/routes`` can see, apart from age."""
        return (self.endpoint == endpoint and self.source == source
                and self.isolation_segment == message.isolation_segment
                and self.protocol == _protocol(message.protocol))


class _Pool(msgspec.Struct):
    """One route key's endpoints by address, and how the key balances."""

    balance: str
    entries: dict[str, Registration] = msgspec.field(default_factory=dict)


class _Put(msgspec.Struct, gc=False):
    """What every route key of one registration shares, worked out once."""

    message: RegistryMessage
    endpoint: Endpoint
    address: str
    source: str
    rank: int
    stale_after: float
    balance: str | None
    tag: ModificationTag | None


class Registry:
    """Endpoints by route key; publishes changed keys into ``holder`` on ``publish``."""

    def __init__(self, prune_threshold: float = 120.0, default_balance: str = "round_robin",
                 holder: TableHolder | None = None, *, sharding_mode: str = "all",
                 isolation_segments: Iterable[str] = (),
                 keep_empty_pools: float = 0.0, publishes: bool = True) -> None:
        if sharding_mode not in SHARDING_MODES:
            raise ValueError(f"unknown routing_table_sharding_mode {sharding_mode!r}")
        self.prune_threshold = prune_threshold
        self.default_balance = default_balance
        self.holder = holder if holder is not None else TableHolder()
        self.sharding_mode = sharding_mode
        self.isolation_segments = frozenset(isolation_segments)
        self.keep_empty_pools = keep_empty_pools
        self.publishes = publishes  # False: no table is built; ``pending`` stays False
        self._pools: dict[str, _Pool] = {}
        # Empty pools kept for ``keep_empty_pools``: key -> when it became empty.
        # Insertion order is emptying order, so the first one expires first.
        self._empty: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._drained: set[tuple[str, str]] = set()  # (route key, endpoint address)
        self._suspended = False
        self.endpoint_count = 0
        # Plain counters, read by the metrics collector at scrape time.
        self.registrations = 0
        self.unregistrations = 0
        self.pruned = 0
        self.invalid_balancing = 0
        self.refused = 0
        self.unmodified = 0
        self.outside_shard = 0
        self.empty_pools_expired = 0
        self.last_update: float | None = None

    @classmethod
    def from_settings(cls, settings: RegistryConfig, holder: TableHolder | None = None,
                      publishes: bool = True) -> Registry:
        """A registry for a ``RegistryConfig``: thresholds, sharding, empty-pool rule."""
        keep = settings.empty_pool_timeout if settings.empty_pool_response_code_503 else 0.0
        return cls(settings.prune_threshold, holder=holder,
                   sharding_mode=settings.routing_table_sharding_mode,
                   isolation_segments=settings.isolation_segments, keep_empty_pools=keep,
                   publishes=publishes)

    def accepts(self, message: RegistryMessage, source: Source = "nats") -> bool:
        """Whether ``message`` is in this router's shard (the file's routes always are)."""
        return source == "static" or in_shard(message.isolation_segment, self.sharding_mode,
                                              self.isolation_segments)

    # -- changes --------------------------------------------------------------------

    def register(self, message: RegistryMessage, now: float, source: Source = "nats",
                 tag: ModificationTag | None = None) -> int:
        """Add or refresh ``message``'s endpoint under each of its uris.

        Returns how many route keys changed in a way requests can see (0 for a
        pure heartbeat, or a message outside this router's shard), so the
        caller knows whether a publish is due.
        """
        if self.sharding_mode != "all" and not self.accepts(message, source):
            self.outside_shard += 1
            return 0
        self.registrations += 1
        self.last_update = now
        put = self._prepare(message, source, tag)
        changed = 0
        for uri in message.uris:
            key = route_key(uri)
            if key and self._put(key, put, now)[1]:
                if self.publishes:
                    self._dirty.add(key)
                changed += 1
        return changed

    def put(self, uri: str, message: RegistryMessage, now: float, source: Source = "nats",
            tag: ModificationTag | None = None) -> PutResult:
        """Put ``message``'s endpoint under ``uri`` alone; what that did (gorouter's ``Put``).

        Unlike ``register`` this neither counts a registration nor filters by shard.
        """
        key = route_key(uri)
        result, dirty = self._put(key, self._prepare(message, source, tag), now)
        if dirty and self.publishes:
            self._dirty.add(key)
        return result

    def _prepare(self, message: RegistryMessage, source: Source,
                 tag: ModificationTag | None) -> _Put:
        threshold = message.stale_threshold_in_seconds
        if threshold <= 0 or threshold > self.prune_threshold:
            stale_after = self.prune_threshold
        else:
            stale_after = float(threshold)
        balance = None
        if message.options is not None and (wanted := message.options.loadbalancing):
            balance = LOAD_BALANCING.get(wanted)
            if balance is None:
                self.invalid_balancing += 1
        endpoint = endpoint_of(message)
        return _Put(message, endpoint, endpoint.address, source, RANKS[source], stale_after,
                    balance, tag)

    def _put(self, key: str, put: _Put, now: float) -> tuple[PutResult, bool]:
        """Put one endpoint under one key: the result, and whether requests see a change."""
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self.default_balance)
        elif not pool.entries:
            self._empty.pop(key, None)
        entries = pool.entries
        endpoint = put.endpoint
        address = put.address
        old = entries.get(address)
        dirty = False
        if old is None:
            result = PutResult.ADDED
            self.endpoint_count += 1
        elif RANKS[old.source] > put.rank:
            self.refused += 1
            return PutResult.REFUSED, False
        elif not _replaceable(old.tag, put.tag):
            # gorouter keeps the newer endpoint, but the put still counts as a heartbeat.
            self.unmodified += 1
            old.updated = now
            return PutResult.UNMODIFIED, False
        else:
            result = PutResult.UPDATED
        if old is not None and old.same_as(endpoint, put.source, put.message):
            old.updated = now
            old.stale_after = put.stale_after
            old.tag = put.tag
        else:
            # One Registration per key: each key's copy ages on its own.
            message = put.message
            entries[address] = Registration(
                endpoint, put.source, now, put.stale_after, message.isolation_segment,
                _protocol(message.protocol), put.tag)
            dirty = True
        if put.balance is not None and put.balance != pool.balance:
            pool.balance = put.balance
            dirty = True
        return result, dirty

    def unregister(self, message: RegistryMessage, now: float, source: Source = "nats",
                   tag: ModificationTag | None = None) -> int:
        """Remove ``message``'s endpoint from each of its uris; how many keys changed.

        An endpoint stored with a newer ``tag`` than the one given stays.
        """
        if self.sharding_mode != "all" and not self.accepts(message, source):
            self.outside_shard += 1
            return 0
        self.unregistrations += 1
        self.last_update = now
        address = endpoint_of(message).address
        rank = RANKS[source]
        changed = 0
        for uri in message.uris:
            key = route_key(uri)
            pool = self._pools.get(key)
            if pool is None:
                continue
            old = pool.entries.get(address)
            if old is None:
                continue
            if RANKS[old.source] > rank:
                self.refused += 1
                continue
            if not _removable(old.tag, tag):
                self.unmodified += 1
                continue
            self._remove(key, pool, address, now)
            changed += 1
        return changed

    def _remove(self, key: str, pool: _Pool, address: str, now: float) -> None:
        del pool.entries[address]
        self.endpoint_count -= 1
        if not pool.entries:
            if self.keep_empty_pools > 0:
                self._empty[key] = now
            else:
                del self._pools[key]
        if self.publishes:
            self._dirty.add(key)

    def replace_static(self, messages: Iterable[RegistryMessage], now: float) -> int:
        """Make the ``static`` endpoints exactly ``messages`` (a config reload)."""
        messages = list(messages)
        wanted = {(route_key(uri), endpoint_of(m).address) for m in messages for uri in m.uris}
        stale = [(key, address) for key, pool in self._pools.items()
                 for address, entry in pool.entries.items()
                 if entry.source == "static" and (key, address) not in wanted]
        for key, address in stale:
            self._remove(key, self._pools[key], address, now)
        return len(stale) + sum(self.register(m, now, "static") for m in messages)

    # -- draining -------------------------------------------------------------------

    def set_drained(self, uri: str, address: str, on: bool) -> bool:
        """Drain (``on``) or undrain one endpoint of one route key; whether that changed."""
        item = (route_key(uri), address)
        if on == (item in self._drained):
            return False
        if on:
            self._drained.add(item)
        else:
            self._drained.discard(item)
        if item[0] in self._pools and self.publishes:
            self._dirty.add(item[0])
        return True

    @property
    def drained(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._drained)

    def is_drained(self, uri: str, address: str) -> bool:
        return (route_key(uri), address) in self._drained

    # -- pruning --------------------------------------------------------------------

    @property
    def pruning_suspended(self) -> bool:
        return self._suspended

    def suspend_pruning(self) -> None:
        self._suspended = True

    def resume_pruning(self, now: float) -> None:
        """Mark every endpoint fresh, then let ``prune`` work again (gorouter's freshenRoutes)."""
        for pool in self._pools.values():
            for entry in pool.entries.values():
                entry.updated = now
        self._suspended = False

    def prune(self, now: float) -> list[tuple[str, Registration]]:
        """Remove NATS endpoints (not TLS ones) not refreshed within their threshold."""
        if self._suspended:
            return []
        expired: list[tuple[str, str, Registration]] = []
        for key, pool in self._pools.items():
            for address, entry in pool.entries.items():
                if (now - entry.updated > entry.stale_after and entry.source == "nats"
                        and not entry.endpoint.tls):
                    expired.append((key, address, entry))
        for key, address, _entry in expired:
            self._remove(key, self._pools[key], address, now)
        self.pruned += len(expired)
        return [(key, entry) for key, _address, entry in expired]

    def prune_failed(self, key: str, address: str, now: float) -> Registration | None:
        """A request could not reach this TLS endpoint: remove it (gorouter's ``EndpointFailed``).

        gorouter never prunes TLS endpoints by age, but drops one from its pool
        when a request fails to connect or to agree on TLS with it; its next
        ``router.register`` brings it back. Only NATS endpoints go: a route
        from the file or the admin API is an operator's to remove.
        """
        key = route_key(key)
        pool = self._pools.get(key)
        entry = pool.entries.get(address) if pool is not None else None
        if pool is None or entry is None or entry.source != "nats" or not entry.endpoint.tls:
            return None
        self._remove(key, pool, address, now)
        self.pruned += 1
        return entry

    # -- empty pools ----------------------------------------------------------------

    @property
    def next_empty_expiry(self) -> float | None:
        """When the oldest kept empty pool is due for deletion; ``None`` if there is none."""
        for since in self._empty.values():
            return since + self.keep_empty_pools
        return None

    def expire_empty_pools(self, now: float) -> list[str]:
        """Delete the empty pools kept for ``keep_empty_pools`` or longer; their keys."""
        expired = []
        for key, since in self._empty.items():
            if now - since < self.keep_empty_pools:
                break
            expired.append(key)
        for key in expired:
            del self._empty[key]
            del self._pools[key]
        if self.publishes:
            self._dirty.update(expired)
        self.empty_pools_expired += len(expired)
        return expired

    # -- publishing -----------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Changes not yet published."""
        return bool(self._dirty)

    @property
    def table(self) -> RouteTable:
        return self.holder.table

    def publish(self) -> RouteTable | None:
        """Put the changed keys into a new snapshot in ``holder``; ``None`` if none changed.

        Always ``None`` for a registry made with ``publishes=False``: nothing is dirty.
        """
        if not self._dirty:
            return None
        dirty, self._dirty = self._dirty, set()
        upserts: list[RoutePool] = []
        removed: list[str] = []
        pools = self._pools
        drained = self._drained
        for key in dirty:
            pool = pools.get(key)
            if pool is None:
                removed.append(key)
                continue
            entries = pool.entries
            endpoints: tuple[Endpoint, ...]
            if len(entries) == 1:  # most keys: one endpoint, worked out without generators
                ((address, entry),) = entries.items()
                endpoint = entry.endpoint
                service = endpoint.route_service_url
                endpoints = () if drained and (key, address) in drained else (endpoint,)
            else:
                service = next((entry.endpoint.route_service_url for entry in entries.values()
                                if entry.endpoint.route_service_url), "")
                if drained:
                    endpoints = tuple(entry.endpoint for address, entry in entries.items()
                                      if (key, address) not in drained)
                else:
                    endpoints = tuple(entry.endpoint for entry in entries.values())
            upserts.append(RoutePool(key, endpoints, pool.balance, route_service_url=service))
        table = self.holder.table.with_changes(upserts, removed)
        self.holder.table = table
        return table

    # -- reading --------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of route keys."""
        return len(self._pools)

    def registrations_of(self, key: str) -> list[Registration]:
        pool = self._pools.get(route_key(key))
        return list(pool.entries.values()) if pool is not None else []

    def balance_of(self, key: str) -> str | None:
        pool = self._pools.get(route_key(key))
        return pool.balance if pool is not None else None

    def describe(self, now: float) -> dict[str, list[dict[str, Any]]]:
        """gorouter's ``/routes`` body: ``{uri: [endpoint, ...]}`` (pool.go ``MarshalJSON``).

        ``ttl`` is the endpoint's threshold in seconds, as gorouter reports it;
        ``source``, ``expires_in`` and ``draining`` are pointsman's additions.
        """
        drained = self._drained
        out: dict[str, list[dict[str, Any]]] = {}
        for key, pool in self._pools.items():
            balance = _GOROUTER_BALANCE.get(pool.balance, pool.balance)
            rows = []
            for address, entry in pool.entries.items():
                endpoint = entry.endpoint
                expires = None
                if entry.source == "nats" and not endpoint.tls:
                    expires = round(max(0.0, entry.updated + entry.stale_after - now), 3)
                rows.append({
                    "address": address,
                    "availability_zone": endpoint.zone,
                    "protocol": entry.protocol,
                    "tls": endpoint.tls,
                    "ttl": int(entry.stale_after),
                    "route_service_url": endpoint.route_service_url,
                    "tags": dict(endpoint.tags),
                    "isolation_segment": entry.isolation_segment,
                    "private_instance_id": endpoint.instance_id,
                    "private_instance_index": endpoint.instance_index,
                    "app": endpoint.app,
                    "server_cert_domain_san": endpoint.server_cert_domain_san,
                    "load_balancing_algorithm": balance,
                    "source": entry.source,
                    "expires_in": expires,
                    "draining": (key, address) in drained,
                })
            out[key] = rows
        return out
