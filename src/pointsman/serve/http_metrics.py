"""Prometheus metrics of the HTTP listeners, counted in plain dicts on the hot path.

prometheus_client's labelled children take a lock and a dict lookup per
call; a proxy finishing tens of thousands of requests a second cannot afford
that on every request. Each listener counts into an ``HttpStats`` (a dict
increment and a bucket increment), and one collector registered with the
default registry turns them into metric families when scraped:

* ``pointsman_http_requests_total{listener,route,status}``
* ``pointsman_http_request_duration_seconds{listener}`` (histogram)
* ``pointsman_http_upstream_errors_total{listener,kind}``
* ``pointsman_http_active_connections{listener}``
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

__all__ = ["BUCKETS", "HttpStats", "register"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpStats:
    """One listener's counters; read by the collector, written by requests."""

    __slots__ = ("active", "buckets", "errors", "latency_sum", "name", "requests")

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.active = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def upstream_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Collector:
    """Yields the families of every live ``HttpStats``."""

    def __init__(self) -> None:
        self.stats: list[HttpStats] = []

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("pointsman_http_requests", "HTTP requests answered",
                                       labels=["listener", "route", "status"])
        latency = HistogramMetricFamily("pointsman_http_request_duration_seconds",
                                        "Time from request head to end of response",
                                        labels=["listener"])
        errors = CounterMetricFamily("pointsman_http_upstream_errors",
                                     "Upstream failures by kind", labels=["listener", "kind"])
        active = GaugeMetricFamily("pointsman_http_active_connections",
                                   "Open client connections", labels=["listener"])
        for stats in list(self.stats):
            for (route, status), count in list(stats.requests.items()):
                requests.add_metric([stats.name, route, str(status)], count)
            cumulative = 0
            buckets = []
            for bound, count in zip((*BUCKETS, float("inf")), stats.buckets, strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([stats.name], buckets, stats.latency_sum)
            for kind, count in list(stats.errors.items()):
                errors.add_metric([stats.name, kind], count)
            active.add_metric([stats.name], stats.active)
        yield requests
        yield latency
        yield errors
        yield active


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)


def register(stats: HttpStats) -> None:
    """Expose ``stats``; a listener with the same name (after a reload) replaces the old one."""
    _COLLECTOR.stats = [s for s in _COLLECTOR.stats if s.name != stats.name] + [stats]
