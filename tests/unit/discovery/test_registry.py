"""The route registry: heartbeats, thresholds, pruning, sources and publishing."""

from __future__ import annotations

from typing import Any

import pytest

from pointsman.config import Config, RouteConfig, loads
from pointsman.discovery.registry import ModificationTag, PutResult, Registry
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


def test_a_failed_tls_endpoint_is_pruned_but_only_from_nats() -> None:
    registry = Registry()
    registry.register(msg("tls.com", tls_port=443), 0.0)
    registry.register(msg("tls.com", host="10.0.0.2", tls_port=443), 0.0)
    registry.register(msg("plain.com"), 0.0)
    registry.register(msg("file.com", tls_port=443), 0.0, source="static")
    registry.publish()
    for key, address in (("plain.com", "10.0.0.1:8080"), ("file.com", "10.0.0.1:443"),
                         ("tls.com", "10.0.0.9:443"), ("none.com", "10.0.0.1:443")):
        assert registry.prune_failed(key, address, 1.0) is None, key
    entry = registry.prune_failed("TLS.com", "10.0.0.1:443", 1.0)
    assert entry is not None and entry.endpoint.address == "10.0.0.1:443"
    assert registry.pruned == 1
    registry.publish()
    assert addresses(registry, "tls.com") == ["10.0.0.2:443"]
    assert addresses(registry, "file.com") == ["10.0.0.1:443"]


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


# -- gorouter's sharding by isolation segment ----------------------------------------


def test_sharding_modes_follow_endpoint_in_router_shard() -> None:
    cases = {
        "all": {"": True, "seg-a": True, "seg-b": True},
        "segments": {"": False, "seg-a": True, "seg-b": False},
        "shared-and-segments": {"": True, "seg-a": True, "seg-b": False},
    }
    for mode, expected in cases.items():
        registry = Registry(sharding_mode=mode, isolation_segments=["seg-a"])
        for port, (segment, accepted) in enumerate(expected.items(), start=1):
            changed = registry.register(msg("a.com", port=port, isolation_segment=segment), 0.0)
            assert changed == int(accepted), (mode, segment)
        registry.publish()
        taken = sum(expected.values())
        assert len(addresses(registry, "a.com")) == taken, mode
        assert registry.outside_shard == len(expected) - taken, mode
        assert registry.registrations == taken


def test_unregister_outside_the_shard_is_ignored_and_counted() -> None:
    registry = Registry(sharding_mode="segments", isolation_segments=["seg-a"])
    registry.register(msg("a.com", isolation_segment="seg-a"), 0.0)
    assert registry.unregister(msg("a.com", isolation_segment="seg-b"), 1.0) == 0
    assert registry.outside_shard == 1 and registry.endpoint_count == 1
    assert registry.unregister(msg("a.com", isolation_segment="seg-a"), 1.0) == 1


def test_file_routes_are_never_filtered_by_segment() -> None:
    registry = Registry(sharding_mode="segments", isolation_segments=["seg-a"])
    assert registry.register(msg("a.com"), 0.0, "static") == 1
    assert registry.accepts(msg("a.com"), "static")
    assert not registry.accepts(msg("a.com"), "admin")


def test_unknown_sharding_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="routing_table_sharding_mode"):
        Registry(sharding_mode="some")


def test_from_settings_reads_the_registry_section() -> None:
    config = loads('[registry]\nrouting_table_sharding_mode = "shared-and-segments"\n'
                   'isolation_segments = ["x"]\nempty_pool_response_code_503 = true\n'
                   'empty_pool_timeout = 7\n')
    registry = Registry.from_settings(config.registry)
    assert registry.sharding_mode == "shared-and-segments"
    assert registry.isolation_segments == frozenset({"x"})
    assert registry.keep_empty_pools == 7.0
    no_503 = loads("[registry]\nempty_pool_timeout = 7\n")
    assert Registry.from_settings(no_503.registry).keep_empty_pools == 0.0


# -- Put results and modification tags -----------------------------------------------


def test_put_reports_added_updated_and_refused() -> None:
    registry = Registry()
    assert registry.put("a.com", msg("a.com"), 0.0) is PutResult.ADDED
    assert registry.put("a.com", msg("a.com"), 1.0) is PutResult.UPDATED
    assert registry.put("a.com", msg("a.com", app="new"), 2.0) is PutResult.UPDATED
    registry.publish()
    pool = registry.table.lookup("a.com", "/")
    assert pool is not None and pool.endpoints[0].app == "new"
    registry.put("b.com", msg("b.com"), 0.0, "static")
    assert registry.put("b.com", msg("b.com"), 1.0, "nats") is PutResult.REFUSED


def test_an_older_tag_does_not_overwrite_but_still_heartbeats() -> None:
    registry = Registry()
    newer, older = ModificationTag("g", 5), ModificationTag("g", 4)
    registry.put("a.com", msg("a.com", app="v5"), 0.0, tag=newer)
    assert registry.put("a.com", msg("a.com", app="v4"), 10.0, tag=older) is PutResult.UNMODIFIED
    entry = registry.registrations_of("a.com")[0]
    assert entry.endpoint.app == "v5" and entry.updated == 10.0
    assert registry.unmodified == 1
    assert registry.put("a.com", msg("a.com", app="v6"), 11.0,
                        tag=ModificationTag("g", 6)) is PutResult.UPDATED
    # Another guid (the route was recreated) or no tag at all: no order, the put wins.
    assert registry.put("a.com", msg("a.com", app="h"), 12.0,
                        tag=ModificationTag("h", 0)) is PutResult.UPDATED
    assert registry.put("a.com", msg("a.com", app="none"), 13.0) is PutResult.UPDATED


def test_unregister_needs_the_same_or_a_newer_tag() -> None:
    registry = Registry()
    registry.register(msg("a.com"), 0.0, tag=ModificationTag("g", 5))
    assert registry.unregister(msg("a.com"), 1.0, tag=ModificationTag("g", 4)) == 0
    assert registry.endpoint_count == 1 and registry.unmodified == 1
    assert registry.unregister(msg("a.com"), 1.0, tag=ModificationTag("g", 5)) == 1
    registry.register(msg("a.com"), 2.0, tag=ModificationTag("g", 5))
    assert registry.unregister(msg("a.com"), 3.0, tag=ModificationTag("g", 9)) == 1
    registry.register(msg("a.com"), 4.0, tag=ModificationTag("g", 5))
    assert registry.unregister(msg("a.com"), 5.0) == 1  # untagged (NATS): always removes


def test_endpoint_updated_at_ns_does_not_order_updates() -> None:
    """gorouter uses it for the latency metric only: an older stamp still replaces."""
    registry = Registry()
    registry.register(msg("a.com", app="new", endpoint_updated_at_ns=2_000), 0.0)
    assert registry.register(msg("a.com", app="old", endpoint_updated_at_ns=1_000), 1.0) == 1
    assert registry.registrations_of("a.com")[0].endpoint.app == "old"
    assert registry.unregister(msg("a.com", endpoint_updated_at_ns=1), 2.0) == 1


def test_http2_is_listed_as_http1_other_protocols_as_sent() -> None:
    registry = Registry()
    registry.register(msg("a.com", protocol="http2"), 0.0)
    registry.register(msg("b.com"), 0.0)
    assert registry.describe(0.0)["a.com"][0]["protocol"] == "http1"
    assert registry.describe(0.0)["b.com"][0]["protocol"] == "http1"
    assert registry.register(msg("a.com", protocol="http2"), 1.0) == 0  # a heartbeat


# -- empty pools (empty_pool_response_code_503 / empty_pool_timeout) -----------------


def test_without_keeping_an_emptied_pool_is_deleted_at_once() -> None:
    registry = Registry()
    registry.register(msg("a.com"), 0.0)
    registry.unregister(msg("a.com"), 1.0)
    registry.publish()
    assert len(registry) == 0 and registry.table.get("a.com") is None
    assert registry.next_empty_expiry is None


def test_a_kept_empty_pool_answers_empty_then_expires() -> None:
    registry = Registry(keep_empty_pools=10.0)
    registry.register(msg("a.com", "b.com"), 0.0)
    registry.register(msg("b.com", port=2), 0.0)
    registry.unregister(msg("a.com", "b.com"), 1.0)
    registry.publish()
    assert registry.table.lookup("a.com", "/") is None
    empty = registry.table.lookup_empty("a.com", "/x")
    assert empty is not None and empty.endpoints == ()
    assert registry.table.lookup_empty("b.com", "/") is None  # still has an endpoint
    assert registry.describe(1.0)["a.com"] == []
    assert registry.next_empty_expiry == 11.0
    assert registry.expire_empty_pools(10.9) == []
    # Refilled in time: no longer empty, so never expired.
    registry.register(msg("a.com", port=3), 5.0)
    registry.unregister(msg("a.com", port=3), 6.0)
    assert registry.next_empty_expiry == 16.0
    assert registry.expire_empty_pools(16.0) == ["a.com"]
    registry.publish()
    assert registry.table.get("a.com") is None and registry.empty_pools_expired == 1


def test_pruning_the_last_endpoint_keeps_the_pool_too() -> None:
    registry = Registry(prune_threshold=10, keep_empty_pools=5.0)
    registry.register(msg("a.com"), 0.0)
    assert len(registry.prune(11.0)) == 1
    registry.publish()
    assert registry.table.lookup_empty("a.com", "/") is not None
    assert registry.next_empty_expiry == 16.0


def test_a_pool_loses_its_route_service_with_the_registration_that_named_it() -> None:
    registry = Registry()
    registry.register(msg("rs.com", route_service_url="https://rs.example.com"), 0.0)
    registry.register(msg("rs.com", port=2), 0.0)
    registry.publish()
    pool = registry.table.lookup("rs.com", "/")
    assert pool is not None and pool.route_service_url == "https://rs.example.com"
    registry.unregister(msg("rs.com", route_service_url="https://rs.example.com"), 1.0)
    registry.publish()
    pool = registry.table.lookup("rs.com", "/")
    assert pool is not None and [e.port for e in pool.endpoints] == [2]
    assert not pool.route_service_url


def test_a_route_service_pool_keeps_its_service_while_something_is_drained() -> None:
    """A drain elsewhere once published such pools without their service: never again."""
    registry = Registry()
    registry.register(msg("rs.com", route_service_url="https://rs.example.com"), 0.0)
    registry.register(msg("rs.com", port=2), 0.0)
    registry.register(msg("one.com", port=3, route_service_url="https://rs.example.com"), 0.0)
    registry.register(msg("b.com", port=4), 0.0)
    registry.set_drained("b.com", "10.0.0.1:4", True)  # any drain anywhere
    registry.publish()
    for host in ("rs.com", "one.com"):
        pool = registry.table.lookup(host, "/")
        assert pool is not None and pool.route_service_url == "https://rs.example.com", host


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


def test_a_registry_that_publishes_no_table_keeps_its_bookkeeping() -> None:
    registry = Registry(prune_threshold=10, keep_empty_pools=5.0, publishes=False)
    assert registry.register(msg("a.com", "b.com/api"), 0.0) == 2
    assert registry.register(msg("a.com", port=9090, stale_threshold_in_seconds=1), 0.0) == 1
    assert registry.set_drained("a.com", "10.0.0.1:8080", True)
    assert not registry.pending and registry.publish() is None
    assert len(registry.table) == 0  # never built
    assert len(registry) == 2 and registry.endpoint_count == 3
    described = registry.describe(0.0)
    assert sorted(row["address"] for row in described["a.com"]) == \
        ["10.0.0.1:8080", "10.0.0.1:9090"]
    assert [row["draining"] for row in described["a.com"]
            if row["address"] == "10.0.0.1:8080"] == [True]
    assert [key for key, _ in registry.prune(2.0)] == ["a.com"]  # the 1 s threshold
    assert registry.unregister(msg("b.com/api"), 3.0) == 1
    assert registry.next_empty_expiry == 8.0
    assert registry.expire_empty_pools(8.0) == ["b.com/api"]
    assert not registry.pending and len(registry.table) == 0


def test_a_route_service_pool_keeps_its_endpoints_and_its_service() -> None:
    registry = Registry()
    registry.register(msg("rs.com", route_service_url="https://rs.example.com"), 0.0)
    registry.register(msg("rs.com", port=2), 0.0)
    registry.register(msg("plain.com", port=3), 0.0)
    registry.publish()
    pool = registry.table.lookup("rs.com", "/")
    assert pool is not None and pool.route_service_url == "https://rs.example.com"
    assert sorted(e.port for e in pool.endpoints) == [2, 8080]
    plain = registry.table.lookup("plain.com", "/")
    assert plain is not None and not plain.route_service_url


def test_drained_endpoints_leave_a_route_service_pool_and_its_service_stays() -> None:
    registry = Registry()
    registry.register(msg("rs.com", route_service_url="https://rs.example.com"), 0.0)
    registry.register(msg("rs.com", port=2, route_service_url="https://rs.example.com"), 0.0)
    registry.set_drained("rs.com", "10.0.0.1:8080", True)
    registry.publish()
    pool = registry.table.lookup("rs.com", "/")
    assert pool is not None and [e.port for e in pool.endpoints] == [2]
    registry.set_drained("rs.com", "10.0.0.1:2", True)
    registry.publish()
    assert registry.table.lookup("rs.com", "/") is None  # nothing left to send to
    kept = registry.table.lookup_empty("rs.com", "/")
    assert kept is not None and kept.route_service_url == "https://rs.example.com"
