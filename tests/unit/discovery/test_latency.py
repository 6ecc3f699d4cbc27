"""route_registration_latency: a plain-integer histogram of registration ages."""

from __future__ import annotations

from pointsman.discovery.latency import LATENCY_BUCKETS, RegistrationLatency


def test_ages_land_in_cumulative_buckets() -> None:
    latency = RegistrationLatency()
    assert latency.observe_stamp(0, 3_000_000) == 0.003
    latency.observe_stamp(0, 1_000_000_000)  # exactly 1 s: the 1.0 bucket (le)
    latency.observe_stamp(0, 100 * 10**9)  # beyond every bound
    buckets = dict(latency.buckets())
    assert list(buckets) == [*map(str, LATENCY_BUCKETS), "+Inf"]
    assert buckets["0.001"] == 0 and buckets["0.005"] == 1
    assert buckets["1.0"] == 2 and buckets["30.0"] == 2 and buckets["+Inf"] == 3
    assert latency.count == 3 and abs(latency.total - 101.003) < 1e-9


def test_a_stamp_from_the_future_counts_as_zero() -> None:
    latency = RegistrationLatency()
    assert latency.observe_stamp(10**9, 0) == 0.0
    assert dict(latency.buckets())["0.001"] == 1
