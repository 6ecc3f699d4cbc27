"""What a benchmark run measured, and the pure arithmetic on it.

A scenario's load run yields a ``LoadResult``: a rate (what the reader wants
high) and an amount of work (bytes, requests) that the proxy's CPU time is
divided by to give a cost (what the reader wants low). Several interleaved
rounds give several ``Sample``s per peer; a ``PeerSummary`` keeps their
median, and ``Target``s compare the subject's medians with a named peer's as
ratios that pass or fail. Nothing here runs or reads anything.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "LoadResult",
    "PeerSummary",
    "Sample",
    "ScenarioResult",
    "Target",
    "TargetOutcome",
    "Units",
    "ratio",
    "summarise",
]

Metric = Literal["rate", "cost"]
Status = Literal["ok", "unavailable", "failed"]


@dataclass(frozen=True, slots=True)
class Units:
    """How a scenario names its numbers.

    ``cost = cpu_seconds / work * cost_scale``: CPU-seconds per GiB has scale
    1 and work in GiB; CPU-microseconds per request has scale 1e6 and work in
    requests.
    """

    rate_name: str
    rate_unit: str
    cost_unit: str
    work_unit: str
    cost_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One bounded load run through one peer."""

    rate: float
    work: float
    errors: int = 0
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    """One load run with the proxy's CPU seconds spent during it (``None``: no proxy)."""

    peer: str
    round: int
    rate: float
    work: float
    cpu_s: float | None
    errors: int = 0
    details: dict[str, float] = field(default_factory=dict)

    def cost(self, units: Units) -> float | None:
        if self.cpu_s is None or self.work <= 0:
            return None
        return self.cpu_s / self.work * units.cost_scale


@dataclass(slots=True)
class PeerSummary:
    """A peer's medians over its samples, or why it has none."""

    peer: str
    status: Status = "ok"
    reason: str = ""
    rate: float | None = None
    cost: float | None = None
    best_rate: float | None = None
    peak_rss_mib: float | None = None
    errors: int = 0
    other_load_pct: float | None = None
    used: int = 0
    samples: list[Sample] = field(default_factory=list)


def summarise(
    peer: str,
    samples: list[Sample],
    units: Units,
    peak_rss_mib: float | None,
    max_other_load_pct: float | None = None,
) -> PeerSummary:
    """Median rate and median cost over the undisturbed ``samples``.

    A sample during which other work took more than ``max_other_load_pct`` of
    the machine is left out when at least one sample was not disturbed; all
    samples stay in ``samples`` (and the JSON file). Medians resist the one
    noisy round that remains.
    """
    if not samples:
        return PeerSummary(peer, status="failed", reason="no samples", peak_rss_mib=peak_rss_mib)
    used = samples
    if max_other_load_pct is not None:
        clean = [s for s in samples if _other_load(s) <= max_other_load_pct]
        used = clean or samples
    costs = [c for c in (s.cost(units) for s in used) if c is not None]
    loads = [s.details["other_load_pct"] for s in used if "other_load_pct" in s.details]
    return PeerSummary(
        peer,
        rate=statistics.median(s.rate for s in used),
        cost=statistics.median(costs) if costs else None,
        best_rate=max(s.rate for s in samples),
        peak_rss_mib=peak_rss_mib,
        errors=sum(s.errors for s in samples),
        other_load_pct=max(loads) if loads else None,
        used=len(used),
        samples=samples,
    )


def _other_load(sample: Sample) -> float:
    return sample.details.get("other_load_pct", 0.0)


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or ``None`` when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """A target with the measured ratio and whether it was met (``None``: not measured)."""

    label: str
    wanted: str
    measured: float | None
    passed: bool | None


@dataclass(frozen=True, slots=True)
class Target:
    """``subject.metric / peer.metric`` against ``factor``: ``>=`` for rates, ``<=`` for costs."""

    metric: Metric
    peer: str
    op: Literal[">=", "<="]
    factor: float

    def label(self, subject: str, units: Units) -> str:
        name = units.rate_name if self.metric == "rate" else units.cost_unit
        return f"{subject} {name} / {self.peer}"

    def evaluate(
        self, subject: str, summaries: dict[str, PeerSummary], units: Units
    ) -> TargetOutcome:
        mine = summaries.get(subject)
        theirs = summaries.get(self.peer)
        measured = None
        if mine is not None and theirs is not None:
            measured = ratio(getattr(mine, self.metric), getattr(theirs, self.metric))
        passed = None
        if measured is not None:
            passed = measured >= self.factor if self.op == ">=" else measured <= self.factor
        return TargetOutcome(
            self.label(subject, units), f"{self.op} {self.factor:g}x", measured, passed
        )


@dataclass(slots=True)
class ScenarioResult:
    """Everything one scenario run produced, as written to JSON and markdown."""

    scenario: str
    title: str
    command: str
    started: str
    finished: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    units: Units
    subject: str
    reference: str
    baseline: str
    peers: list[PeerSummary]
    targets: list[TargetOutcome]
    notes: list[str] = field(default_factory=list)

    def by_peer(self) -> dict[str, PeerSummary]:
        return {summary.peer: summary for summary in self.peers}
