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
  ones, which gorouter prunes only on a failed request;
* while pruning is suspended (NATS unreachable) nothing is pruned, and
  ``resume_pruning`` first marks every endpoint fresh (``freshenRoutes``);
* a valid ``options.loadbalancing`` sets the whole pool's balancing; an
  invalid one is counted and the pool keeps what it had.

Changes are cheap and publishing is separate: ``register`` and friends mark
route keys dirty, and ``publish`` turns only those keys into a new
``RouteTable`` snapshot. A heartbeat that changes nothing marks nothing, and
many changes between two publishes cost one snapshot. Time is always passed
in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from pointsman.routing.table import Endpoint, RoutePool, RouteTable, TableHolder, route_key
from pointsman.wire.gorouter import LOAD_BALANCING, RegistryMessage

__all__ = ["RANKS", "Registration", "Registry", "Source", "endpoint_of"]

Source = Literal["nats", "admin", "static"]
RANKS: dict[str, int] = {"nats": 0, "admin": 1, "static": 2}

_GOROUTER_BALANCE = {ours: theirs for theirs, ours in LOAD_BALANCING.items()}


def endpoint_of(message: RegistryMessage) -> Endpoint:
    """The routing table's view of one registration."""
    return Endpoint(
        host=message.host, port=message.endpoint_port, tls=message.tls, app=message.app,
        instance_id=message.private_instance_id,
        instance_index=message.private_instance_index, tags=message.tag_items,
        server_cert_domain_san=message.server_cert_domain_san,
        route_service_url=message.route_service_url)


class Registration(msgspec.Struct, gc=False):
    """One endpoint under one route key, and what only the registry needs to know.

    Not tracked by the cycle collector (it holds no cycles): with 100k routes
    the registry's objects would otherwise make every full collection slow.
    """

    endpoint: Endpoint
    source: str
    updated: float
    stale_after: float
    availability_zone: str = ""
    isolation_segment: str = ""
    protocol: str = ""

    def same_as(self, endpoint: Endpoint, source: str, message: RegistryMessage) -> bool:
        """Equal in everything a request or ``/routes`` can see, apart from age."""
        return (self.endpoint == endpoint and self.source == source
                and self.availability_zone == message.availability_zone
                and self.isolation_segment == message.isolation_segment
                and self.protocol == message.protocol)


class _Pool:
    __slots__ = ("balance", "entries")

    def __init__(self, balance: str) -> None:
        self.entries: dict[str, Registration] = {}
        self.balance = balance


class Registry:
    """Endpoints by route key; publishes changed keys into ``holder`` on ``publish``."""

    def __init__(self, prune_threshold: float = 120.0, default_balance: str = "round_robin",
                 holder: TableHolder | None = None) -> None:
        self.prune_threshold = prune_threshold
        self.default_balance = default_balance
        self.holder = holder if holder is not None else TableHolder()
        self._pools: dict[str, _Pool] = {}
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
        self.last_update: float | None = None

    # -- changes --------------------------------------------------------------------

    def register(self, message: RegistryMessage, now: float, source: Source = "nats") -> int:
        """Add or refresh ``message``'s endpoint under each of its uris.

        Returns how many route keys changed in a way requests can see (0 for a
        pure heartbeat), so the caller knows whether a publish is due.
        """
        self.registrations += 1
        self.last_update = now
        threshold = message.stale_threshold_in_seconds
        if threshold <= 0 or threshold > self.prune_threshold:
            stale_after = self.prune_threshold
        else:
            stale_after = float(threshold)
        endpoint = endpoint_of(message)
        address = endpoint.address
        balance = LOAD_BALANCING.get(message.load_balancing) if message.load_balancing else None
        if message.load_balancing and balance is None:
            self.invalid_balancing += 1
        rank = RANKS[source]
        pools = self._pools
        changed = 0
        for uri in message.uris:
            key = route_key(uri)
            if not key:
                continue
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = _Pool(self.default_balance)
            entries = pool.entries
            old = entries.get(address)
            if old is not None and old.same_as(endpoint, source, message):
                old.updated = now
                old.stale_after = stale_after
                dirty = False
            elif old is not None and RANKS[old.source] > rank:
                self.refused += 1
                continue
            else:
                # One Registration per key: each key's copy ages on its own.
                if old is None:
                    self.endpoint_count += 1
                entries[address] = Registration(
                    endpoint, source, now, stale_after, message.availability_zone,
                    message.isolation_segment, message.protocol)
                dirty = True
            if balance is not None and balance != pool.balance:
                pool.balance = balance
                dirty = True
            if dirty:
                self._dirty.add(key)
                changed += 1
        return changed

    def unregister(self, message: RegistryMessage, now: float, source: Source = "nats") -> int:
        """Remove ``message``'s endpoint from each of its uris; how many keys changed."""
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
            self._remove(key, pool, address)
            changed += 1
        return changed

    def _remove(self, key: str, pool: _Pool, address: str) -> None:
        del pool.entries[address]
        self.endpoint_count -= 1
        if not pool.entries:
            del self._pools[key]
        self._dirty.add(key)

    def replace_static(self, messages: Iterable[RegistryMessage], now: float) -> int:
        """Make the ``static`` endpoints exactly ``messages`` (a config reload)."""
        messages = list(messages)
        wanted = {(route_key(uri), endpoint_of(m).address) for m in messages for uri in m.uris}
        stale = [(key, address) for key, pool in self._pools.items()
                 for address, entry in pool.entries.items()
                 if entry.source == "static" and (key, address) not in wanted]
        for key, address in stale:
            self._remove(key, self._pools[key], address)
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
        if item[0] in self._pools:
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
            self._remove(key, self._pools[key], address)
        self.pruned += len(expired)
        return [(key, entry) for key, _address, entry in expired]

    # -- publishing -----------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Changes not yet published."""
        return bool(self._dirty)

    @property
    def table(self) -> RouteTable:
        return self.holder.table

    def publish(self) -> RouteTable | None:
        """Put the changed keys into a new snapshot in ``holder``; ``None`` if none changed."""
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
            elif drained:
                endpoints = tuple(entry.endpoint for address, entry in pool.entries.items()
                                  if (key, address) not in drained)
                upserts.append(RoutePool(key, endpoints, pool.balance))
            else:
                endpoints = tuple(entry.endpoint for entry in pool.entries.values())
                upserts.append(RoutePool(key, endpoints, pool.balance))
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
                    "availability_zone": entry.availability_zone,
                    "protocol": entry.protocol or "http1",
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
