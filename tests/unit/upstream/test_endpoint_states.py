"""Live endpoint counters kept apart from the immutable route tables."""

from __future__ import annotations

from pointsman.routing.table import Endpoint, RoutePool
from pointsman.serve.http_choice import Chooser
from pointsman.upstream.pool import EndpointStates


def test_one_state_per_address_shared_by_routes() -> None:
    live = EndpointStates(max_connections=2)
    a = live.get("127.0.0.1", 1, "127.0.0.1:1")
    assert live.get("127.0.0.1", 1, "127.0.0.1:1") is a
    assert a.max_connections == 2 and len(live) == 1
    live.failed(a, now=100.0)
    assert not a.available(100.5)
    live.succeeded(a)
    assert a.available(100.5)


def test_sweep_keeps_busy_and_named_states() -> None:
    live = EndpointStates()
    busy = live.get("h", 1, "h:1")
    busy.active = 1
    live.get("h", 2, "h:2")
    live.get("h", 3, "h:3")
    live.sweep({"h:3"})
    assert len(live) == 2


def test_chooser_keeps_balancer_across_table_versions() -> None:
    chooser = Chooser(EndpointStates())
    e1, e2 = Endpoint("h", 1, instance_id="i1"), Endpoint("h", 2, instance_id="i2")
    first = chooser.route(RoutePool("k", (e1, e2)))
    assert chooser.route(first.pool) is first
    second = chooser.route(RoutePool("k", (e1, e2, Endpoint("h", 3))))
    assert second is not first and second.balancer is first.balancer
    assert second.states[0] is first.states[0]  # counters follow the address
    third = chooser.route(RoutePool("k", (e1,), balance="least_conn"))
    assert third.balancer is not first.balancer
    assert second.instance("i2") is second.states[1]
    assert second.instance("nope") is None
    picks = {second.balancer.select(second.states, "", 0.0).port  # type: ignore[union-attr]
             for _ in range(6)}
    assert picks == {1, 2, 3}
