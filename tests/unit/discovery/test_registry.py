"""The route registry: heartbeats, thresholds, pruning, sources and publishing."""

from __future__ import annotations

from typing import Any

from pointsman.config import Config, RouteConfig
from pointsman.discovery.registry import Registry
from pointsman.discovery.static import static_messages
from pointsman.routing.table import Endpoint
from pointsman.wire.gorouter import Options, RegistryMessage


def msg(*uris: str, host: str = "10.0.0.1", port: int = 8080, **fields: Any) -> RegistryMessage:
    return RegistryMessage(host=host, port=port, uris=uris, **fields)


def addresses(registry: Registry, host: str, path: str = "/") -> list[str]:
    pool = registry.table.lookup(host, path)
    return [] if pool is None else [e.address for e in pool.endpoints]


def test_register_publishes_a_routable_pool() -> None:
    registry = Registry()
    assert registry.register(msg("App.Example.com/", app="guid", private_instance_id="i1",
                                 tags={"a": "b"}), 0.0) == 1
    assert registry.table.lookup("app.example.com", "/") is None  # not yet published
    table = registry.publish()
    assert table is not None
    pool = table.lookup("app.example.com", "/x")
    assert pool is not None
    assert pool.endpoints == (Endpoint("10.0.0.1", 8080, app="guid", instance_id="i1",
                                       tags=(("a", "b"),)),)


def test_heartbeat_changes_nothing_and_publishes_nothing() -> None:
    registry = Registry()
    registry.register(msg("a.com"), 0.0)
    first = registry.publish()
    assert registry.register(msg("a.com"), 5.0) == 0
    assert registry.publish() is None
    assert registry.table is first
    assert registry.registrations_of("a.com")[0].updated == 5.0


def test_changed_fields_replace_the_endpoint() -> None:
    registry = Registry()
    registry.register(msg("a.com", private_instance_index="0"), 0.0)
    registry.publish()
    assert registry.register(msg("a.com", private_instance_index="1"), 1.0) == 1
    registry.publish()
    pool = registry.table.lookup("a.com", "/")
    assert pool is not None and pool.endpoints[0].instance_index == "1"
    assert registry.endpoint_count == 1


def test_tls_port_makes_a_tls_endpoint_keyed_by_tls_port() -> None:
    registry = Registry()
    registry.register(msg("a.com", port=80, tls_port=443), 0.0)
    registry.publish()
    pool = registry.table.lookup("a.com", "/")
    assert pool is not None and pool.endpoints[0].tls and pool.endpoints[0].port == 443
    registry.unregister(msg("a.com", port=80, tls_port=443), 1.0)
    registry.publish()
    assert registry.table.lookup("a.com", "/") is None


def test_many_changes_coalesce_into_one_snapshot() -> None:
    registry = Registry()
    for port in range(1, 101):
        registry.register(msg("a.com", "b.com/api", port=port), 0.0)
    version = registry.table.version
    registry.publish()
    assert registry.table.version == version + 1
    assert len(addresses(registry, "a.com")) == 100
    assert len(addresses(registry, "b.com", "/api/v1")) == 100


def test_unregister_removes_the_endpoint_then_the_empty_pool() -> None:
    registry = Registry()
    registry.register(msg("a.com", port=1), 0.0)
    registry.register(msg("a.com", port=2), 0.0)
    registry.publish()
    assert registry.unregister(msg("a.com", port=1), 1.0) == 1
    registry.publish()
    assert addresses(registry, "a.com") == ["10.0.0.1:2"]
    registry.unregister(msg("a.com", port=2), 1.0)
    registry.publish()
    assert registry.table.lookup("a.com", "/") is None
    assert len(registry) == 0 and len(registry.table) == 0
    assert registry.unregister(msg("a.com", port=2), 1.0) == 0


def test_stale_threshold_zero_or_above_default_means_default() -> None:
    registry = Registry(prune_threshold=120)
    registry.register(msg("zero.com", stale_threshold_in_seconds=0), 0.0)
    registry.register(msg("big.com", stale_threshold_in_seconds=500), 0.0)
    registry.register(msg("own.com", stale_threshold_in_seconds=10), 0.0)
    assert registry.registrations_of("zero.com")[0].stale_after == 120
    assert registry.registrations_of("big.com")[0].stale_after == 120
    assert registry.registrations_of("own.com")[0].stale_after == 10


def test_prune_removes_stale_nats_endpoints_only() -> None:
    registry = Registry(prune_threshold=120)
    registry.register(msg("short.com", stale_threshold_in_seconds=1), 0.0)
    registry.register(msg("long.com"), 0.0)
    registry.register(msg("tls.com", tls_port=443, stale_threshold_in_seconds=1), 0.0)
    registry.register(msg("admin.com", stale_threshold_in_seconds=1), 0.0, source="admin")
    registry.register(msg("static.com", stale_threshold_in_seconds=1), 0.0, source="static")
    registry.publish()
    assert registry.prune(1.0) == []  # not older than the threshold yet
    pruned = registry.prune(1.5)
    assert [key for key, _ in pruned] == ["short.com"]
    assert registry.pruned == 1
    registry.publish()
    assert registry.table.lookup("short.com", "/") is None
    for host in ("long.com", "tls.com", "admin.com", "static.com"):
        assert registry.table.lookup(host, "/") is not None, host
    assert [k for k, _ in registry.prune(121.0)] == ["long.com"]


def test_heartbeat_keeps_an_endpoint_alive_per_uri() -> None:
    registry = Registry()
    registry.register(msg("a.com", "b.com", stale_threshold_in_seconds=1), 0.0)
    registry.register(msg("a.com", stale_threshold_in_seconds=1), 0.9)
    assert [key for key, _ in registry.prune(1.5)] == ["b.com"]


def test_suspended_pruning_keeps_routes_and_resume_freshens_them() -> None:
    registry = Registry()
    registry.register(msg("a.com", stale_threshold_in_seconds=1), 0.0)
    registry.suspend_pruning()
    assert registry.pruning_suspended
    assert registry.prune(100.0) == []
    registry.resume_pruning(100.0)
    assert registry.prune(100.5) == []
    assert [key for key, _ in registry.prune(101.5)] == ["a.com"]


def test_load_balancing_option_overrides_the_pool() -> None:
    registry = Registry()
    registry.register(msg("a.com", port=1), 0.0)
    registry.publish()
    assert registry.balance_of("a.com") == "round_robin"
    assert registry.register(msg("a.com", port=1, options=Options("least-connection")), 1.0) == 1
    registry.publish()
    pool = registry.table.lookup("a.com", "/")
    assert pool is not None and pool.balance == "least_conn"
    registry.register(msg("a.com", port=2, options=Options("fastest")), 1.0)
    assert registry.invalid_balancing == 1
    assert registry.balance_of("a.com") == "least_conn"


def test_static_routes_are_not_changed_by_nats_or_admin() -> None:
    registry = Registry()
    registry.register(msg("a.com"), 0.0, source="static")
    assert registry.register(msg("a.com", app="other"), 1.0) == 0
    assert registry.unregister(msg("a.com"), 1.0) == 0
    assert registry.unregister(msg("a.com"), 1.0, source="admin") == 0
    assert registry.refused == 3
    registry.publish()
    assert addresses(registry, "a.com") == ["10.0.0.1:8080"]


def test_admin_can_take_over_and_remove_a_nats_endpoint() -> None:
    registry = Registry()
    registry.register(msg("a.com"), 0.0)
    assert registry.register(msg("a.com"), 0.0, source="admin") == 1
    assert registry.registrations_of("a.com")[0].source == "admin"
    assert registry.unregister(msg("a.com"), 0.0) == 0  # nats cannot undo the operator
    assert registry.unregister(msg("a.com"), 0.0, source="admin") == 1


def test_replace_static_adds_and_removes_exactly() -> None:
    registry = Registry()
    first = [RouteConfig(uris=["a.com"], endpoints=["127.0.0.1:1", "127.0.0.1:2"],
                         balance="least_conn")]
    registry.replace_static(static_messages(Config(routes=first)), 0.0)
    registry.register(msg("a.com", host="127.0.0.1", port=3), 0.0)
    registry.publish()
    assert sorted(addresses(registry, "a.com")) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    second = [RouteConfig(uris=["a.com"], endpoints=["127.0.0.1:2"]),
              RouteConfig(uris=["b.com"], endpoints=["127.0.0.1:4"], tls=True)]
    registry.replace_static(static_messages(Config(routes=second)), 1.0)
    registry.publish()
    assert sorted(addresses(registry, "a.com")) == ["127.0.0.1:2", "127.0.0.1:3"]
    pool = registry.table.lookup("b.com", "/")
    assert pool is not None and pool.endpoints[0].tls


def test_describe_has_gorouters_routes_shape() -> None:
    registry = Registry(prune_threshold=120)
    registry.register(msg("a.com/api", private_instance_id="i1", tags={"k": "v"},
                          availability_zone="z1", stale_threshold_in_seconds=20,
                          options=Options("least-connection")), 0.0)
    body = registry.describe(5.0)
    assert body == {"a.com/api": [{
        "address": "10.0.0.1:8080", "availability_zone": "z1", "protocol": "http1",
        "tls": False, "ttl": 20, "route_service_url": "", "tags": {"k": "v"},
        "isolation_segment": "", "private_instance_id": "i1", "private_instance_index": "",
        "app": "", "server_cert_domain_san": "",
        "load_balancing_algorithm": "least-connection", "source": "nats", "expires_in": 15.0,
        "draining": False,
    }]}


def test_a_drained_endpoint_leaves_the_pool_but_stays_listed() -> None:
    registry = Registry()
    registry.register(msg("a.com", port=1), 0.0)
    registry.register(msg("a.com", port=2), 0.0)
    registry.publish()
    assert registry.set_drained("A.com/", "10.0.0.1:1", True)
    assert not registry.set_drained("a.com", "10.0.0.1:1", True)  # already
    registry.publish()
    assert addresses(registry, "a.com") == ["10.0.0.1:2"]
    assert [row["draining"] for row in registry.describe(0.0)["a.com"]] == [True, False]
    registry.unregister(msg("a.com", port=1), 1.0)  # the intent outlives the endpoint
    registry.register(msg("a.com", port=1), 2.0)
    registry.publish()
    assert addresses(registry, "a.com") == ["10.0.0.1:2"]
    assert registry.set_drained("a.com", "10.0.0.1:1", False)
    registry.publish()
    assert sorted(addresses(registry, "a.com")) == ["10.0.0.1:1", "10.0.0.1:2"]


def test_draining_every_endpoint_leaves_the_key_unroutable() -> None:
    registry = Registry()
    registry.register(msg("a.com", port=1), 0.0)
    registry.set_drained("a.com", "10.0.0.1:1", True)
    registry.publish()
    assert addresses(registry, "a.com") == []
    assert registry.drained == frozenset({("a.com", "10.0.0.1:1")})
