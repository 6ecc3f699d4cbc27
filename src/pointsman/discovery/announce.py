"""What the gateway knows from service announcements: instances, their routes, their age.

Each instance announces itself at start and every ``interval`` seconds; the
announcement is also its heartbeat. An instance is *fresh* while its last
announcement is less than ``HEARTBEAT_TOLERANCE`` intervals old and is pruned
after that. Instances are keyed by instance id, never by service name, so a
quiet instance is never hidden by a chatty sibling (the Eurus bug recorded in
reference/eurus.md). Time is passed in by the caller; nothing here reads a
clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pointsman.wire.gateway_messages import HEARTBEAT_TOLERANCE, ServiceAnnounce

__all__ = ["AnnouncementIndex", "Change", "InstanceRecord", "RouteTarget"]


class Change(enum.Enum):
    """What one announcement did to the index."""

    ADDED = "added"
    CHANGED = "changed"  # same instance, different routes or encoding
    REFRESHED = "refreshed"
    REMOVED = "removed"  # a stopping announcement
    IGNORED = "ignored"  # meant for other gateways


@dataclass(slots=True)
class InstanceRecord:
    service: str
    instance: str
    routes: tuple[str, ...]
    encoding: str
    interval: float
    last_seen: float

    def expires(self) -> float:
        return self.last_seen + self.interval * HEARTBEAT_TOLERANCE


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """Who serves one pattern: one service, and which of its instances announced it."""

    service: str
    instances: tuple[str, ...]


class AnnouncementIndex:
    """Instances seen by one gateway (filtered by its name), with their routes."""

    def __init__(self, gateway_name: str) -> None:
        self.gateway_name = gateway_name
        self._records: dict[str, InstanceRecord] = {}
        self.version = 0

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, instance: object) -> bool:
        return instance in self._records

    def get(self, instance: str) -> InstanceRecord | None:
        return self._records.get(instance)

    def records(self) -> list[InstanceRecord]:
        return list(self._records.values())

    def observe(self, announce: ServiceAnnounce, now: float) -> Change:
        """Take one announcement into account."""
        if announce.gateway_names and self.gateway_name not in announce.gateway_names:
            return Change.IGNORED
        if announce.stopping:
            return Change.REMOVED if self.remove(announce.instance) else Change.IGNORED
        routes = tuple(sorted(set(announce.routes)))
        interval = max(announce.interval, 0.001)
        record = self._records.get(announce.instance)
        if record is None:
            self._records[announce.instance] = InstanceRecord(
                announce.name, announce.instance, routes, announce.encoding, interval, now)
            self.version += 1
            return Change.ADDED
        record.last_seen = now
        record.interval = interval
        if record.routes != routes or record.encoding != announce.encoding:
            record.routes = routes
            record.encoding = announce.encoding
            self.version += 1
            return Change.CHANGED
        return Change.REFRESHED

    def remove(self, instance: str) -> InstanceRecord | None:
        record = self._records.pop(instance, None)
        if record is not None:
            self.version += 1
        return record

    def prune(self, now: float) -> list[InstanceRecord]:
        """Remove and return the instances whose heartbeat is overdue."""
        dead = [r for r in self._records.values() if r.expires() < now]
        for record in dead:
            self.remove(record.instance)
        return dead

    def touch(self, now: float) -> None:
        """Count every instance as just seen: after a bus outage, their silence was not theirs."""
        for record in self._records.values():
            record.last_seen = now

    def fresh(self, now: float) -> list[str]:
        """Instance ids still within their heartbeat, for the gateway's own announcement."""
        return [r.instance for r in self._records.values() if r.expires() >= now]

    def routes(self) -> dict[str, RouteTarget]:
        """Pattern -> target. When services overlap on one exact pattern the
        alphabetically first service wins, so every gateway agrees."""
        by_pattern: dict[str, dict[str, list[str]]] = {}
        for record in self._records.values():
            for pattern in record.routes:
                by_pattern.setdefault(pattern, {}).setdefault(record.service, []).append(
                    record.instance)
        table: dict[str, RouteTarget] = {}
        for pattern, services in by_pattern.items():
            service = min(services)
            table[pattern] = RouteTarget(service, tuple(services[service]))
        return table
