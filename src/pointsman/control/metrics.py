"""One Prometheus ``/metrics`` for a leader and all its workers.

Each worker sends its own exposition (``generate_latest``) with its stats
every second; the leader parses them and sums samples with the same name and
labels. Counters of workers that have exited (reloads, crashes) are kept and
added in, so a total never goes backwards because a worker was replaced.
Families the leader exports itself (the route registry, which every process
holds a copy of) are taken from the leader alone, not summed N times, and
per-process families (``process_*``, ``python_*``) are left out. The
leader's registry builds no route table, so it exports no
``pointsman_registry_publishes`` (the workers' sum shows instead) and its
``pointsman_registry_published_routes`` is the fewest any worker routes by.

Also here: the process model's own families (workers, reloads, restarts,
and per-listener connections, requests and errors).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["Aggregator", "render"]

PER_PROCESS_PREFIXES = ("process_", "python_")
SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})

SampleKey = tuple[str, str, str, tuple[tuple[str, str], ...]]  # family, type, sample, labels


def _samples(text: str) -> Iterator[tuple[SampleKey, str, float]]:
    for family in text_string_to_metric_families(text):
        if family.name.startswith(PER_PROCESS_PREFIXES):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = tuple(sorted(sample.labels.items()))
            yield (family.name, family.type, sample.name, labels), family.documentation, \
                sample.value


class Aggregator:
    """Sums worker expositions; remembers the counters of workers that are gone."""

    def __init__(self) -> None:
        self.retired: dict[SampleKey, float] = defaultdict(float)
        self.retired_requests: dict[str, int] = defaultdict(int)
        self.retired_errors: dict[str, int] = defaultdict(int)
        self.docs: dict[str, str] = {}

    def retire(self, stats: dict[str, Any]) -> None:
        """A worker exited: keep its last counters."""
        for key, doc, value in _samples(str(stats.get("metrics", ""))):
            if key[1] in SUMMED_TYPES:
                self.retired[key] += value
                self.docs[key[0]] = doc
        for name, count in (stats.get("requests") or {}).items():
            self.retired_requests[name] += int(count)
        for name, count in (stats.get("errors") or {}).items():
            self.retired_errors[name] += int(count)

    def totals(self, live: Iterable[dict[str, Any]], field: str) -> dict[str, int]:
        retired = self.retired_requests if field == "requests" else self.retired_errors
        out: dict[str, int] = defaultdict(int, retired)
        for stats in live:
            for name, count in (stats.get(field) or {}).items():
                out[name] += int(count)
        return dict(out)

    def families(self, live: Iterable[dict[str, Any]], skip: set[str]) -> list[Metric]:
        summed: dict[SampleKey, float] = defaultdict(float, self.retired)
        docs = dict(self.docs)
        for stats in live:
            for key, doc, value in _samples(str(stats.get("metrics", ""))):
                summed[key] += value
                docs[key[0]] = doc
        grouped: dict[tuple[str, str], Metric] = {}
        for (family, kind, sample, labels), value in sorted(summed.items()):
            if family in skip:
                continue
            metric = grouped.get((family, kind))
            if metric is None:
                metric = Metric(family, docs.get(family, ""), kind)
                grouped[(family, kind)] = metric
            metric.add_sample(sample, dict(labels), value)
        return list(grouped.values())


class _Static(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def process_families(status: dict[str, Any], requests: dict[str, int],
                     errors: dict[str, int], active: dict[str, int],
                     restarts: int) -> list[Metric]:
    workers = GaugeMetricFamily("pointsman_workers", "Worker processes alive")
    workers.add_metric([], len(status["workers"]))
    reloads = CounterMetricFamily("pointsman_reloads", "Reloads completed")
    reloads.add_metric([], status["reloads"])
    crashed = CounterMetricFamily("pointsman_worker_restarts",
                                  "Workers restarted after they crashed")
    crashed.add_metric([], restarts)
    total = CounterMetricFamily("pointsman_listener_requests",
                                "Connections (TCP), requests (HTTP) or sockets (gateway) handled",
                                labels=["listener"])
    failed = CounterMetricFamily("pointsman_listener_errors",
                                 "Connections or requests the router failed (5xx, no "
                                 "endpoint, connect errors)", labels=["listener"])
    open_now = GaugeMetricFamily("pointsman_listener_active_connections",
                                 "Connections open now", labels=["listener"])
    for name in sorted(set(requests) | set(active)):
        total.add_metric([name], requests.get(name, 0))
        failed.add_metric([name], errors.get(name, 0))
        open_now.add_metric([name], active.get(name, 0))
    return [workers, reloads, crashed, total, failed, open_now]


def render(*groups: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static([metric for group in groups for metric in group]))
    return generate_latest(registry)


def family_names(registry: CollectorRegistry) -> set[str]:
    return {metric.name for metric in registry.collect()}
