"""Route table: key form, exact/wildcard/path matching, snapshots, and size independence."""

from __future__ import annotations

import time

from pointsman.routing.table import Endpoint, RoutePool, RouteTable, TableHolder, route_key

E1 = Endpoint("127.0.0.1", 8001, app="a", instance_id="i1", instance_index="0")
E2 = Endpoint("127.0.0.1", 8002)


def pool(key: str, *endpoints: Endpoint) -> RoutePool:
    return RoutePool(route_key(key), endpoints or (E1,))


def test_route_key_follows_gorouter() -> None:
    assert route_key("App.Example.COM/Foo/?x=1") == "app.example.com/foo"
    assert route_key("app.example.com/") == "app.example.com"
    assert route_key("app.example.com") == "app.example.com"


def test_endpoint_address() -> None:
    assert E1.address == "127.0.0.1:8001"
    assert Endpoint("::1", 80).address == "[::1]:80"


def test_exact_host_with_port_and_case() -> None:
    table = RouteTable.build([pool("app.example.com")])
    assert table.lookup("APP.example.com:8080", "/x") is not None
    assert table.lookup("other.example.com", "/") is None


def test_wildcards_ordered_and_exact_wins() -> None:
    exact = pool("a.b.c", E1)
    near = pool("*.b.c", E2)
    far = pool("*.c", Endpoint("h", 1))
    table = RouteTable.build([exact, near, far])
    assert table.lookup("a.b.c", "/") is exact
    assert table.lookup("x.b.c", "/") is near
    assert table.lookup("x.y.c", "/") is far
    assert table.lookup("c", "/") is None


def test_longest_path_prefix_by_segment() -> None:
    root = pool("h.com")
    foo = pool("h.com/foo")
    deep = pool("h.com/foo/bar/baz")
    table = RouteTable.build([root, foo, deep])
    assert table.lookup("h.com", "/foo") is foo
    assert table.lookup("h.com", "/FOO/bar") is foo
    assert table.lookup("h.com", "/foobar") is root
    assert table.lookup("h.com", "/foo/bar/baz/qux") is deep
    assert table.lookup("h.com", "/foo/bar/bazz") is foo
    assert table.lookup("h.com", "/") is root
    assert table.lookup("h.com", "") is root


def test_empty_pools_fall_through() -> None:
    table = RouteTable.build([RoutePool("h.com/foo", ()), pool("h.com"),
                              RoutePool("x.h.com", ()), pool("*.h.com")])
    assert table.lookup("h.com", "/foo/1") is not None
    assert table.lookup("h.com", "/foo/1").key == "h.com"  # type: ignore[union-attr]
    assert table.lookup("x.h.com", "/").key == "*.h.com"  # type: ignore[union-attr]


def test_path_only_host_falls_to_wildcard() -> None:
    table = RouteTable.build([pool("a.h.com/api"), pool("*.h.com")])
    assert table.lookup("a.h.com", "/api/v1").key == "a.h.com/api"  # type: ignore[union-attr]
    assert table.lookup("a.h.com", "/web").key == "*.h.com"  # type: ignore[union-attr]


def test_with_changes_is_a_new_snapshot() -> None:
    old = RouteTable.build([pool("a.com"), pool("b.com/x")], version=3)
    new = old.with_changes([pool("c.com"), pool("b.com/y")], ["a.com", "nope.com"])
    assert (old.version, new.version) == (3, 4)
    assert len(old) == 2 and len(new) == 3
    assert old.lookup("a.com", "/") is not None and new.lookup("a.com", "/") is None
    assert new.lookup("b.com", "/y/1") is not None and old.lookup("b.com", "/y") is None
    assert {p.key for p in new} == {"b.com/x", "b.com/y", "c.com"}
    gone = new.with_changes([], ["b.com/x", "b.com/y", "c.com"])
    assert len(gone) == 0 and list(gone) == []
    wild = gone.with_changes([pool("*.w.com")], [])
    assert wild.lookup("q.w.com", "/") is not None
    assert wild.with_changes([], ["*.w.com"]).lookup("q.w.com", "/") is None


def test_holder_swaps() -> None:
    holder = TableHolder()
    assert len(holder.table) == 0
    holder.table = RouteTable.build([pool("a.com")])
    assert holder.table.lookup("a.com", "/") is not None


def _lookup_cost(table: RouteTable, hosts: list[str]) -> float:
    start = time.perf_counter()
    for _ in range(20):
        for host in hosts:
            table.lookup(host, "/some/path")
    return time.perf_counter() - start


def test_100k_hosts_lookup_time_independent_of_size() -> None:
    start = time.perf_counter()
    big = RouteTable.build(pool(f"app{i}.apps.example.com") for i in range(100_000))
    build = time.perf_counter() - start
    small = RouteTable.build(pool(f"app{i}.apps.example.com") for i in range(10))
    assert len(big) == 100_000
    assert build < 5.0
    probes = [f"app{i}.apps.example.com" for i in range(10)] * 100
    # Minimums over several runs, and ratios rather than absolute times, so other
    # work on the machine does not decide the outcome.
    small_cost = min(_lookup_cost(small, probes) for _ in range(7))
    big_cost = min(_lookup_cost(big, probes) for _ in range(7))
    assert big_cost < small_cost * 3, (small_cost, big_cost)
    start = time.perf_counter()
    changed = big.with_changes([pool("new.example.com")], ["app5.apps.example.com"])
    change = time.perf_counter() - start
    assert len(changed) == 100_000
    assert change < build / 20, (change, build)  # proportional to the change, not the table


def test_lookup_empty_finds_the_emptied_pool_lookup_skips() -> None:
    empty = RoutePool("gone.com/api", ())
    table = RouteTable.build([empty, pool("gone.com/api/v2"), RoutePool("*.w.com", ()),
                              pool("x.w.com")])
    assert table.lookup("gone.com", "/api/v1") is None
    assert table.lookup_empty("GONE.com:80", "/API/v1") is empty
    assert table.lookup_empty("gone.com", "/api/v2/x") is None  # served: no empty answer
    assert table.lookup_empty("gone.com", "/other") is None
    assert table.lookup_empty("y.w.com", "/") is not None  # wildcards too
    assert table.lookup("x.w.com", "/") is not None
    assert table.lookup_empty("nothing.com", "/") is None
