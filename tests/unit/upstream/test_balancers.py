"""Balancers pick available endpoints and skip the ones that are down or full."""

from __future__ import annotations

from collections import Counter

from pointsman.upstream.balancers import (
    EndpointState,
    HashBalancer,
    LeastConnBalancer,
    RoundRobinBalancer,
)
from pointsman.upstream.pool import Pool


def _pool() -> list[EndpointState]:
    return [EndpointState("10.0.0.1", 80), EndpointState("10.0.0.2", 80),
            EndpointState("10.0.0.3", 80)]


def test_round_robin_takes_turns_and_skips_down() -> None:
    endpoints = _pool()
    balancer = RoundRobinBalancer()
    picks = Counter(balancer.select(endpoints, "", 0.0) for _ in range(300))
    assert set(picks.values()) == {100}
    endpoints[1].down_until = 10.0
    picks = Counter(balancer.select(endpoints, "", 5.0) for _ in range(300))
    assert endpoints[1] not in picks and set(picks.values()) == {150}
    assert balancer.select(endpoints, "", 11.0) is not None


def test_least_conn_prefers_the_idle_and_respects_limits() -> None:
    endpoints = _pool()
    endpoints[0].active, endpoints[1].active, endpoints[2].active = 5, 1, 3
    assert LeastConnBalancer().select(endpoints, "", 0.0) is endpoints[1]
    endpoints[1].max_connections = 1
    assert LeastConnBalancer().select(endpoints, "", 0.0) is endpoints[2]


def test_least_conn_spreads_ties() -> None:
    endpoints = _pool()
    picks = Counter(LeastConnBalancer().select(endpoints, "", 0.0) for _ in range(600))
    assert len(picks) == 3 and min(picks.values()) > 120


def test_hash_is_stable_and_moves_only_the_lost_keys() -> None:
    endpoints = _pool()
    balancer = HashBalancer()
    before = {f"client{i}": balancer.select(endpoints, f"client{i}", 0.0) for i in range(200)}
    assert before == {k: balancer.select(endpoints, k, 0.0) for k in before}
    endpoints[0].down_until = 10.0
    after = {k: balancer.select(endpoints, k, 5.0) for k in before}
    moved = [k for k in before if before[k] is not after[k]]
    assert all(before[k] is endpoints[0] for k in moved)


def test_exclusions_and_nothing_available() -> None:
    endpoints = _pool()
    for balancer in (RoundRobinBalancer(), LeastConnBalancer(), HashBalancer()):
        assert balancer.select(endpoints, "k", 0.0, frozenset(endpoints[:2])) is endpoints[2]
        assert balancer.select(endpoints, "k", 0.0, frozenset(endpoints)) is None


def test_pool_failure_policy() -> None:
    pool = Pool.from_addresses("p", [("a", 1), ("b", 2)], "round_robin", max_fails=2,
                               fail_timeout=10.0)
    first = pool.endpoints[0]
    pool.failed(first, 0.0)
    assert first.available(1.0)
    pool.failed(first, 0.0)
    assert not first.available(1.0) and first.available(11.0)
    pool.succeeded(first)
    assert first.fails == 0 and first.available(1.0)
