"""NATS registrations reach every worker through the leader.

Only the leader talks to NATS: gorouter clients then see one router (one
``router.start``, one answer to ``router.greet``) however many workers
there are. The leader's registry applies each ``router.register`` and
``router.unregister`` and forwards the ones that changed something, and each
endpoint its pruning removes (by age, or a TLS endpoint a worker failed to
reach), to every worker over its channel; a worker's
own registry never prunes NATS routes itself. A new worker (reload, crash)
starts from a snapshot of the leader's NATS routes. Changes reach workers
within one channel write, a few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from pointsman.config import Config
from pointsman.control.channel import RouteChange, RouteOp
from pointsman.control.route_plane import RoutePlane
from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.registry import Registration, Registry, Source
from pointsman.wire.gorouter import LOAD_BALANCING, Options, RegistryMessage, encode_registration

__all__ = ["FanoutDriver", "LeaderRoutePlane", "nats_snapshot", "worker_routing_config"]

NEVER = 10.0 ** 9

_GOROUTER_BALANCE = {ours: theirs for theirs, ours in LOAD_BALANCING.items()}


class FanoutDriver(RegistryDriver):
    """A driver that tells ``forward`` about every NATS change it applied."""

    forward: Callable[[RouteChange], None] | None = None

    def register(self, message: RegistryMessage, source: Source = "nats") -> int:
        changed = super().register(message, source)
        if changed and source == "nats":
            self._send("register", message)
        return changed

    def unregister(self, message: RegistryMessage, source: Source = "nats") -> int:
        changed = super().unregister(message, source)
        if changed and source == "nats":
            self._send("unregister", message)
        return changed

    def removed(self, entries: list[tuple[str, Registration]]) -> None:
        for key, entry in entries:
            self._send("unregister", message_of(key, entry, self.registry))

    def _send(self, op: RouteOp, message: RegistryMessage) -> None:
        if self.forward is not None:
            self.forward(RouteChange(op, "nats", message))


class LeaderRoutePlane(RoutePlane):
    """The leader's plane: its driver forwards to ``forward`` from its first message.

    Its registry builds no route table (the leader serves no request): what
    requests are routed by is the workers' tables, whose sizes the leader
    learns from the workers (``published_routes``).

    ``forward`` is set before ``start`` because NATS delivers as soon as the
    subscriptions exist, inside ``start``: clients answer ``router.start`` at
    once, and a registration applied before forwarding began would reach no
    worker (its heartbeats change nothing, so they are not forwarded either).
    """

    driver_class = FanoutDriver
    publishes_tables = False  # the workers route; the leader keeps the registry alone
    forward: Callable[[RouteChange], None] | None = None

    def _new_driver(self, loop: asyncio.AbstractEventLoop) -> RegistryDriver:
        driver = super()._new_driver(loop)
        if isinstance(driver, FanoutDriver):
            driver.forward = self.forward
        return driver


def message_of(key: str, entry: Registration, registry: Registry) -> RegistryMessage:
    """A registration message that recreates ``entry`` under ``key`` in another registry."""
    endpoint = entry.endpoint
    balance = registry.balance_of(key) or ""
    balancing = _GOROUTER_BALANCE.get(balance, "")
    return RegistryMessage(
        host=endpoint.host, port=0 if endpoint.tls else endpoint.port,
        tls_port=endpoint.port if endpoint.tls else 0, uris=(key,), app=endpoint.app,
        availability_zone=endpoint.zone, isolation_segment=entry.isolation_segment,
        private_instance_id=endpoint.instance_id, private_instance_index=endpoint.instance_index,
        protocol=entry.protocol, route_service_url=endpoint.route_service_url,
        server_cert_domain_san=endpoint.server_cert_domain_san,
        stale_threshold_in_seconds=int(entry.stale_after), tags=dict(endpoint.tags),
        options=Options(loadbalancing=balancing) if balancing else None)


def nats_snapshot(registry: Registry, now: float) -> list[str]:
    """Every NATS-registered endpoint now, as registration bodies."""
    bodies = []
    for key in registry.describe(now):
        for entry in registry.registrations_of(key):
            if entry.source == "nats":
                bodies.append(encode_registration(message_of(key, entry, registry)).decode())
    return bodies


def worker_routing_config(config: Config) -> Config:
    """A worker's view: no NATS connection of its own and no pruning of NATS routes."""
    registry = msgspec.structs.replace(config.registry, prune_interval=NEVER)
    return msgspec.structs.replace(config, nats=None, registry=registry)
