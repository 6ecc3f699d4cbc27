"""Prometheus metrics of the route registry, read at scrape time.

The registry keeps plain integer counters (no per-message lock or label
lookup on the ingest path); this collector turns them into metric families
when ``/metrics`` is scraped. Names follow gorouter's where it has one
(``total_routes``, ``ms_since_last_registry_update``, ``routes_pruned``,
``route_registration_latency``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pointsman.discovery.driver import RegistryDriver

__all__ = ["NatsStats", "RegistryCollector"]


class NatsStats(Protocol):
    malformed: int
    starts_published: int

    @property
    def connected(self) -> bool: ...


class RegistryCollector(Collector):
    """Exposes one driver's registry (and its NATS link, when there is one).

    ``published`` counts the route keys requests are routed by, when that is
    not this registry's own table: a leader's registry builds none, and its
    workers' tables are what serve.
    """

    def __init__(self, driver: RegistryDriver, nats: NatsStats | None = None,
                 published: Callable[[], int] | None = None) -> None:
        self.driver = driver
        self.nats = nats
        self.published = published

    def collect(self) -> Iterator[Any]:
        registry = self.driver.registry
        yield _counter("pointsman_registry_registrations",
                       "router.register messages (and admin/static registrations) applied",
                       registry.registrations)
        yield _counter("pointsman_registry_unregistrations",
                       "router.unregister messages (and admin deletions) applied",
                       registry.unregistrations)
        yield _counter("pointsman_registry_routes_pruned",
                       "endpoints removed because they stopped heartbeating, or (TLS ones) "
                       "because a request could not reach them", registry.pruned)
        yield _counter("pointsman_registry_invalid_load_balancing",
                       "registrations whose options.loadbalancing was not understood",
                       registry.invalid_balancing)
        yield _counter("pointsman_registry_refused",
                       "changes refused because a higher-ranked source owns the endpoint",
                       registry.refused)
        yield _counter("pointsman_registry_outside_shard",
                       "registrations and unregistrations ignored because their "
                       "isolation_segment is not served (routing_table_sharding_mode)",
                       registry.outside_shard)
        yield _counter("pointsman_registry_unmodified",
                       "puts and unregisters ignored because the endpoint has a newer "
                       "modification tag", registry.unmodified)
        yield _counter("pointsman_registry_empty_pools_deleted",
                       "empty pools deleted after empty_pool_timeout",
                       registry.empty_pools_expired)
        if registry.publishes:  # else the tables are elsewhere (a leader's workers' sum)
            yield _counter("pointsman_registry_publishes", "route table snapshots published",
                           self.driver.publishes)
        latency = self.driver.latency
        histogram = HistogramMetricFamily(
            "pointsman_registry_route_registration_latency_seconds",
            "age of router.register messages stamped with endpoint_updated_at_ns on arrival")
        histogram.add_metric([], latency.buckets(), latency.total)
        yield histogram
        yield _gauge("pointsman_registry_total_routes", "route keys in the table", len(registry))
        published = self.published() if self.published is not None else len(registry.table)
        yield _gauge("pointsman_registry_published_routes",
                     "route keys in the published table (what requests see; with workers, "
                     "the fewest any serving worker routes by)", published)
        yield _gauge("pointsman_registry_endpoints", "registered endpoints over all routes",
                     registry.endpoint_count)
        yield _gauge("pointsman_registry_pruning_suspended",
                     "1 while pruning is suspended (NATS unreachable)",
                     int(registry.pruning_suspended))
        if registry.last_update is not None:
            since = (self.driver.now() - registry.last_update) * 1000.0
            yield _gauge("pointsman_registry_ms_since_last_registry_update",
                         "milliseconds since the last registration or unregistration", since)
        if self.nats is not None:
            yield _counter("pointsman_registry_malformed_messages",
                           "router.register/unregister payloads that could not be used",
                           self.nats.malformed)
            yield _counter("pointsman_registry_router_starts",
                           "router.start messages published", self.nats.starts_published)
            yield _gauge("pointsman_nats_connected", "1 while connected to NATS",
                         int(self.nats.connected))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family
