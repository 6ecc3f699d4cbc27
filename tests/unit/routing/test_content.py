"""Every answer a route function may give, and the ones it may not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pointsman.routing.content import (
    CLOSE,
    NOOP,
    BadDecision,
    Remote,
    Route,
    normalise,
    parse_remote,
)


@pytest.mark.parametrize(("answer", "remote"), [
    ("10.0.0.1:5432", Remote("10.0.0.1", 5432)),
    (b"db.internal:5432", Remote("db.internal", 5432)),
    ("[::1]:9418", Remote("::1", 9418)),
    (("127.0.0.1", 80), Remote("127.0.0.1", 80)),
    ("@replicas", Remote(upstream="replicas")),
    (Remote("h", 1), Remote("h", 1)),
])
def test_addresses_in_every_spelling(answer: Any, remote: Remote) -> None:
    decision = normalise(answer)
    assert isinstance(decision, Route) and decision.remote == remote


def test_route_keeps_its_options_and_parses_its_remote() -> None:
    decision = normalise(Route(remote="h:1", data=b"x", reply=b"y", connect_timeout=2))
    assert isinstance(decision, Route)
    assert decision.remote == Remote("h", 1)
    assert (decision.data, decision.reply, decision.connect_timeout) == (b"x", b"y", 2)


def test_waiting_answers() -> None:
    assert normalise(None) is NOOP
    assert normalise(False) is NOOP
    assert normalise(NOOP) is NOOP
    assert normalise(CLOSE) is CLOSE
    held = Route(reply=b"N", data=b"")
    assert normalise(held) is held


@pytest.mark.parametrize("answer", [
    42, True, "nocolon", "host:", ":80", "host:99999", "host:port", ("h", "80"), "@",
    Route(), [1, 2], {"remote": "h:1"},
])
def test_garbage_is_a_bad_decision(answer: Any) -> None:
    with pytest.raises(BadDecision):
        normalise(answer)


@given(st.one_of(st.text(), st.binary(), st.integers(), st.tuples(st.text(), st.integers())))
def test_parse_remote_raises_only_bad_decision(value: Any) -> None:
    try:
        remote = parse_remote(value)
    except BadDecision:
        return
    assert remote.upstream or 0 < remote.port < 65536
