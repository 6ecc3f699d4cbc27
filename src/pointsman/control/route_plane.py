"""The HTTP route plane of one process: the registry, its timers and its NATS link.

The runtime creates one ``RoutePlane`` for its whole life (reloads included):
it owns the ``TableHolder`` every HTTP listener reads, seeds it with the
file's routes (``[[routes]]`` and each listener's ``[[listeners.routes]]``)
and, when ``[nats]`` is configured, keeps it in step with gorouter-style
registrations. Admin-fed and file routes work without NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from pointsman.config import Config
from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.metrics import RegistryCollector
from pointsman.discovery.nats_registry import NatsRegistry
from pointsman.discovery.registry import Registry
from pointsman.discovery.static import static_messages
from pointsman.routing.table import TableHolder

__all__ = ["RoutePlane"]


class RoutePlane:
    # The driver type; a leader's plane uses one that forwards changes to its workers.
    driver_class: type[RegistryDriver] = RegistryDriver
    # Whether the registry builds route tables; a leader's serves no request, so it does not.
    publishes_tables = True

    def __init__(self, config: Config, events: Any,
                 metrics: CollectorRegistry = REGISTRY) -> None:
        self.config = config
        self.events = events
        self.metrics = metrics
        self.holder = TableHolder()
        self.registry = Registry.from_settings(config.registry, holder=self.holder,
                                               publishes=self.publishes_tables)
        self.driver: RegistryDriver | None = None
        self.nats: NatsRegistry | None = None
        # What requests are routed by, when not this registry's table (a leader's workers').
        self.published_routes: Callable[[], int] | None = None
        self._collector: RegistryCollector | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.config.registry
        self.driver = self._new_driver(loop)
        self.registry.replace_static(static_messages(self.config), loop.time())
        self.driver.start()
        if self.config.nats is not None:
            self.nats = NatsRegistry(self.config.nats, settings, self.driver, self.events,
                                     base_dir=self.config.source)
            # Returns once the router.* subscriptions are in place (or NATS is not
            # reachable yet), so the "ready" that follows means routable.
            await self.nats.start()
        self._collector = RegistryCollector(self.driver, self.nats, self.published_routes)
        self.metrics.register(self._collector)

    def _new_driver(self, loop: asyncio.AbstractEventLoop) -> RegistryDriver:
        return self.driver_class(self.registry, loop, self.config.registry.prune_interval,
                                 self.events)

    def endpoint_failed(self, key: str, address: str) -> bool:
        """A request could not reach a TLS endpoint: a NATS-registered one leaves the table."""
        return self.driver is not None and self.driver.endpoint_failed(key, address)

    def reload(self, config: Config) -> None:
        """Take the new file's ``[[routes]]``; NATS and timing settings need a restart."""
        self.config = config
        if self.driver is None:
            return
        changed = self.registry.replace_static(static_messages(config), self.driver.now())
        self.driver.publish_now()
        self.events.event("info", "static_routes_reloaded", changed=changed,
                          routes=len(config.routes))

    async def stop(self) -> None:
        if self._collector is not None:
            self.metrics.unregister(self._collector)
            self._collector = None
        if self.nats is not None:
            await self.nats.stop()
        if self.driver is not None:
            self.driver.stop()
