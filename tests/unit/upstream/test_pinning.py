"""Pins per service and least-connections choice."""

from __future__ import annotations

from pointsman.upstream.pinning import PinIndex


def index() -> PinIndex:
    pins = PinIndex()
    for name in ("a", "b", "c"):
        pins.add_instance("svc", name)
    pins.add_instance("other", "o")
    return pins


def test_least_connections_with_ties_to_the_first_registered() -> None:
    pins = index()
    picks = [pins.pin(f"s{i}", "svc", ["a", "b", "c"]) for i in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]
    pins.release("s1")
    assert pins.pin("new", "svc", ["a", "b", "c"]) == "b"


def test_a_pin_is_sticky_and_per_service() -> None:
    pins = index()
    assert pins.pin("s", "svc", ["a", "b"]) == "a"
    assert pins.pin("s", "svc", ["b"]) == "a"
    assert pins.pin("s", "other", ["o"]) == "o"
    assert pins.pins_of("s") == {"svc": "a", "other": "o"}


def test_candidates_must_belong_to_the_service() -> None:
    pins = index()
    assert pins.pin("s", "svc", ["o", "zzz"]) is None
    assert pins.pin("s", "svc", ["c"]) == "c"


def test_removing_an_instance_unpins_its_sockets() -> None:
    pins = index()
    pins.pin("s1", "svc", ["a"])
    pins.pin("s1", "other", ["o"])
    pins.pin("s2", "svc", ["a"])
    assert pins.remove_instance("a") == {"s1", "s2"}
    assert pins.pinned("s1", "svc") is None and pins.pinned("s1", "other") == "o"
    assert pins.pin("s1", "svc", ["a", "b"]) == "b"
    assert pins.instances("svc") == ["b", "c"]


def test_release_returns_every_pin() -> None:
    pins = index()
    pins.pin("s", "svc", ["b"])
    pins.pin("s", "other", ["o"])
    assert pins.release("s") == {"svc": "b", "other": "o"}
    assert pins.connections("b") == 0 and pins.connections("o") == 0
    assert pins.unpin("s", "svc") is None
