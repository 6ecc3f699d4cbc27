"""Medians, costs, ratios and targets: the arithmetic behind every table."""

from __future__ import annotations

import pytest
from bench.model import PeerSummary, Sample, Target, Units, ratio, summarise

PER_GIB = Units("throughput", "Gbit/s", "CPU-s/GiB", "GiB")
PER_CONN = Units("connections", "conn/s", "CPU-µs/conn", "connections", cost_scale=1e6)


def test_cost_scales_cpu_by_work() -> None:
    assert Sample("p", 1, rate=10.0, work=4.0, cpu_s=2.0).cost(PER_GIB) == 0.5
    assert Sample("p", 1, rate=1e4, work=50_000, cpu_s=5.0).cost(PER_CONN) == pytest.approx(100)
    assert Sample("direct", 1, rate=30.0, work=4.0, cpu_s=None).cost(PER_GIB) is None
    assert Sample("p", 1, rate=0.0, work=0.0, cpu_s=1.0).cost(PER_GIB) is None


def test_summary_takes_medians_and_sums_errors() -> None:
    samples = [
        Sample("p", 1, rate=10.0, work=10.0, cpu_s=3.0, errors=1,
               details={"other_load_pct": 4.0}),
        Sample("p", 2, rate=30.0, work=10.0, cpu_s=1.0, details={"other_load_pct": 9.5}),
        Sample("p", 3, rate=20.0, work=10.0, cpu_s=2.0, errors=2),
    ]
    summary = summarise("p", samples, PER_GIB, peak_rss_mib=12.5)
    assert (summary.rate, summary.cost, summary.best_rate) == (20.0, 0.2, 30.0)
    assert summary.errors == 3
    assert summary.other_load_pct == 9.5
    assert summary.peak_rss_mib == 12.5
    assert summary.status == "ok"


def test_summary_leaves_out_disturbed_samples() -> None:
    samples = [
        Sample("p", 1, rate=10.0, work=10.0, cpu_s=3.0, details={"other_load_pct": 50.0}),
        Sample("p", 2, rate=30.0, work=10.0, cpu_s=1.0, details={"other_load_pct": 5.0}),
        Sample("p", 3, rate=20.0, work=10.0, cpu_s=2.0, details={"other_load_pct": 10.0}),
    ]
    summary = summarise("p", samples, PER_GIB, None, max_other_load_pct=20.0)
    assert (summary.rate, summary.used) == (25.0, 2)
    assert summary.cost == pytest.approx(0.15)
    assert summary.other_load_pct == 10.0
    assert len(summary.samples) == 3


def test_summary_uses_all_samples_when_all_were_disturbed() -> None:
    samples = [
        Sample("p", 1, rate=10.0, work=10.0, cpu_s=3.0, details={"other_load_pct": 50.0}),
        Sample("p", 2, rate=30.0, work=10.0, cpu_s=1.0, details={"other_load_pct": 40.0}),
    ]
    summary = summarise("p", samples, PER_GIB, None, max_other_load_pct=20.0)
    assert (summary.rate, summary.used, summary.other_load_pct) == (20.0, 2, 50.0)


def test_summary_of_nothing_is_a_failure() -> None:
    summary = summarise("p", [], PER_GIB, None)
    assert summary.status == "failed"
    assert summary.rate is None


def test_ratio_guards_missing_and_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


def _peers() -> dict[str, PeerSummary]:
    return {
        "pointsman": PeerSummary("pointsman", rate=15.0, cost=0.1),
        "haproxy": PeerSummary("haproxy", rate=10.0, cost=0.3),
        "direct": PeerSummary("direct", rate=30.0),
    }


def test_rate_target() -> None:
    outcome = Target("rate", "haproxy", ">=", 1.5).evaluate("pointsman", _peers(), PER_GIB)
    assert outcome.label == "pointsman throughput / haproxy"
    assert outcome.wanted == ">= 1.5x"
    assert outcome.measured == 1.5
    assert outcome.passed is True


def test_rate_target_missed() -> None:
    outcome = Target("rate", "direct", ">=", 0.7).evaluate("pointsman", _peers(), PER_GIB)
    assert outcome.measured == 0.5
    assert outcome.passed is False


def test_cost_target() -> None:
    outcome = Target("cost", "haproxy", "<=", 0.5).evaluate("pointsman", _peers(), PER_GIB)
    assert outcome.label == "pointsman CPU-s/GiB / haproxy"
    assert outcome.measured == pytest.approx(1 / 3)
    assert outcome.passed is True


def test_target_without_measurements_is_undecided() -> None:
    peers = _peers()
    del peers["haproxy"]
    outcome = Target("rate", "haproxy", ">=", 1.5).evaluate("pointsman", peers, PER_GIB)
    assert outcome.measured is None
    assert outcome.passed is None
    no_cost = Target("cost", "direct", "<=", 1.0).evaluate("pointsman", _peers(), PER_GIB)
    assert no_cost.passed is None
