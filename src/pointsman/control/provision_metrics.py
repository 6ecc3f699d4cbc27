"""Prometheus metrics for provision pools, read from the pools when scraped.

The pools keep their own counts and histograms (``upstream.provision.Counters``),
so the hot path never touches prometheus-client; this collector turns them into
metric families at scrape time.

- ``pointsman_provision_backends{upstream,phase}``: starting, ready, busy, stopping
- ``pointsman_provision_waiting{upstream}``: connections queued for a backend
- ``pointsman_provision_started_total{upstream}``, ``..._leases_total{upstream}``
- ``pointsman_provision_failures_total{upstream,reason}``: failed starts by reason
- ``pointsman_provision_rejected_total{upstream,reason}``: connections refused
- ``pointsman_provision_revoked_total{upstream,reason}``: connections cut (lifetime, idle)
- ``pointsman_provision_start_seconds{upstream}``: start until the probe passed
- ``pointsman_provision_queue_wait_seconds{upstream}``: acquire until granted or refused
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import CollectorRegistry

from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.provision import Histogram, Phase

__all__ = ["ProvisionCollector", "register", "register_default"]


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(le, float(count)) for le, count in histogram.cumulative()]


class ProvisionCollector:
    """A prometheus-client collector over whatever pools ``pools()`` returns now."""

    def __init__(self, pools: Callable[[], Iterable[ProvisionPool]]) -> None:
        self.pools = pools

    def describe(self) -> list[Any]:
        return []  # families are dynamic; registering must not call collect early

    def collect(self) -> Iterator[Any]:
        backends = GaugeMetricFamily("pointsman_provision_backends",
                                     "Provisioned backends by phase.",
                                     labels=["upstream", "phase"])
        waiting = GaugeMetricFamily("pointsman_provision_waiting",
                                    "Connections waiting for a backend.", labels=["upstream"])
        started = CounterMetricFamily("pointsman_provision_started",
                                      "Backends that passed their readiness probe.",
                                      labels=["upstream"])
        leases = CounterMetricFamily("pointsman_provision_leases",
                                     "Backends handed to connections.", labels=["upstream"])
        failures = CounterMetricFamily("pointsman_provision_failures",
                                       "Backend starts that failed, by reason.",
                                       labels=["upstream", "reason"])
        rejected = CounterMetricFamily("pointsman_provision_rejected",
                                       "Connections refused for want of a backend.",
                                       labels=["upstream", "reason"])
        revoked = CounterMetricFamily("pointsman_provision_revoked",
                                      "Connections ended by lifetime, idle time or shutdown.",
                                      labels=["upstream", "reason"])
        start_seconds = HistogramMetricFamily("pointsman_provision_start_seconds",
                                              "Start of a backend until it is ready.",
                                              labels=["upstream"])
        queue_seconds = HistogramMetricFamily("pointsman_provision_queue_wait_seconds",
                                              "Wait for a backend, granted or refused.",
                                              labels=["upstream"])
        for pool in self.pools():
            name = pool.name
            counters = pool.machine.counters
            for phase in Phase:
                backends.add_metric([name, phase.value], pool.count(phase))
            waiting.add_metric([name], pool.machine.waiting)
            started.add_metric([name], counters.started)
            leases.add_metric([name], counters.leases)
            for family, table in ((failures, counters.failures), (rejected, counters.rejected),
                                  (revoked, counters.revoked)):
                for reason, count in sorted(table.items()):
                    family.add_metric([name, reason], count)
            start_seconds.add_metric([name], _buckets(counters.start_latency),
                                     counters.start_latency.sum)
            queue_seconds.add_metric([name], _buckets(counters.queue_wait),
                                     counters.queue_wait.sum)
        yield from (backends, waiting, started, leases, failures, rejected, revoked,
                    start_seconds, queue_seconds)


def register(registry: CollectorRegistry,
             pools: Callable[[], Iterable[ProvisionPool]]) -> ProvisionCollector:
    """Add the provision metrics to ``registry``; ``pools`` is read at every scrape."""
    collector = ProvisionCollector(pools)
    registry.register(collector)
    return collector


_SOURCES: list[Callable[[], Iterable[ProvisionPool]]] = []
_DEFAULT: ProvisionCollector | None = None


def _all_sources() -> list[ProvisionPool]:
    return [pool for source in _SOURCES for pool in source()]


def register_default(pools: Callable[[], Iterable[ProvisionPool]]) -> None:
    """Add ``pools`` to what the default registry reports (one collector per process)."""
    global _DEFAULT
    _SOURCES.append(pools)
    if _DEFAULT is None:
        from prometheus_client import REGISTRY

        _DEFAULT = register(REGISTRY, _all_sources)
