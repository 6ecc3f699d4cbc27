"""The announcement index: gateway names, refresh, change, prune, route table."""

from __future__ import annotations

from pointsman.discovery.announce import AnnouncementIndex, Change, RouteTarget
from pointsman.wire.gateway_messages import ServiceAnnounce


def ann(instance: str, name: str = "svc", routes: tuple[str, ...] = ("/a",),
        **kw: object) -> ServiceAnnounce:
    return ServiceAnnounce(name=name, instance=instance, routes=list(routes), interval=1.0,
                           encoding="json", **kw)  # type: ignore[arg-type]


def test_lifecycle() -> None:
    index = AnnouncementIndex("gw")
    assert index.observe(ann("i1"), 0.0) is Change.ADDED
    assert index.observe(ann("i1"), 1.0) is Change.REFRESHED
    assert index.observe(ann("i1", routes=("/a", "/b")), 1.5) is Change.CHANGED
    assert index.fresh(3.0) == ["i1"]
    assert index.prune(3.9) == []
    assert [r.instance for r in index.prune(4.1)] == ["i1"]
    assert len(index) == 0


def test_gateway_names_filter() -> None:
    index = AnnouncementIndex("public")
    assert index.observe(ann("i1", gateway_names=["internal"]), 0) is Change.IGNORED
    assert index.observe(ann("i2", gateway_names=["public"]), 0) is Change.ADDED
    assert index.observe(ann("i3"), 0) is Change.ADDED


def test_stopping_removes_at_once() -> None:
    index = AnnouncementIndex("gw")
    index.observe(ann("i1"), 0)
    assert index.observe(ann("i1", stopping=True), 0.1) is Change.REMOVED
    assert "i1" not in index


def test_route_table_is_per_instance_and_deterministic() -> None:
    index = AnnouncementIndex("gw")
    index.observe(ann("i1", routes=("/a", "/old")), 0)
    index.observe(ann("i2", routes=("/a",)), 0)
    index.observe(ann("z1", name="zeta", routes=("/a", "/z")), 0)
    routes = index.routes()
    assert routes["/a"] == RouteTarget("svc", ("i1", "i2"))  # "svc" < "zeta"
    assert routes["/old"] == RouteTarget("svc", ("i1",))  # only the instance that has it
    assert routes["/z"] == RouteTarget("zeta", ("z1",))
