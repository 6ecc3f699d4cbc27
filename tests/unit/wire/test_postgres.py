"""postgres: the startup packets libpq sends, their limits, and fuzzing."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire import postgres
from pointsman.wire.postgres import (
    NEED_DATA,
    CancelRequest,
    GSSENCRequest,
    PostgresError,
    SSLRequest,
    StartupMessage,
)


def three_ways(parse: Callable[[bytes], Any], data: bytes, trailing: bytes = b"Q\x00\x00") -> Any:
    """Feed ``data`` whole, as every prefix, and with trailing bytes; expect one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(memoryview(data)) == whole
    return whole


def startup(params: list[tuple[str, str]], version: int = 196608) -> bytes:
    body = b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in params) + b"\x00"
    return struct.pack("!iI", len(body) + 8, version) + body


SSL = struct.pack("!ii", 8, 80877103)
GSS = struct.pack("!ii", 8, 80877104)


def test_ssl_and_gssenc_requests() -> None:
    assert three_ways(postgres.parse, SSL) == SSLRequest()
    assert three_ways(postgres.parse, GSS) == GSSENCRequest()
    assert SSLRequest().length == 8


def test_cancel_request_3_0_and_3_2_keys() -> None:
    data = struct.pack("!iiii", 16, 80877102, 4242, 0x01020304)
    event = three_ways(postgres.parse, data)
    assert event == CancelRequest(4242, b"\x01\x02\x03\x04", 16)
    long_key = bytes(range(32))
    data = struct.pack("!iii", 12 + 32, 80877102, 7) + long_key
    assert three_ways(postgres.parse, data) == CancelRequest(7, long_key, 44)


def test_startup_message_like_psql() -> None:
    params = [
        ("user", "alice"),
        ("database", "orders"),
        ("application_name", "psql"),
        ("client_encoding", "UTF8"),
        ("options", "-c search_path=app"),
    ]
    data = startup(params)
    event = three_ways(postgres.parse, data)
    assert isinstance(event, StartupMessage)
    assert event.protocol == (3, 0)
    assert event.parameters == tuple(params)
    assert (event.user, event.database, event.application_name) == ("alice", "orders", "psql")
    assert event.options == "-c search_path=app"
    assert event.length == len(data)


def test_database_defaults_to_user_and_protocol_3_2() -> None:
    event = postgres.parse(startup([("user", "bob")], version=(3 << 16) | 2))
    assert isinstance(event, StartupMessage)
    assert event.database == "bob"
    assert event.protocol == (3, 2)
    assert event.application_name is None


def test_ssl_request_then_startup_in_one_buffer() -> None:
    data = SSL + startup([("user", "u"), ("database", "d")])
    first = postgres.parse(data)
    assert first == SSLRequest()
    second = postgres.parse(data[first.length :])
    assert isinstance(second, StartupMessage) and second.database == "d"


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello (direct SSL negotiation)
        b"\x00\x00\x00\x04",  # length below 8
        struct.pack("!i", postgres.MAX_STARTUP_PACKET + 1),
        struct.pack("!ii", 8, 0x00020000),  # protocol 2.0
        b"\x00\x00\x00\x08\x07",  # no code starts with 0x07
        b"\x00\x00\x00\x10\x00\x02",  # protocol 2 seen early
        struct.pack("!ii", 12, 80877103) + b"\x00" * 4,  # SSLRequest with a body
        struct.pack("!iii", 12, 80877102, 1),  # cancel key too short
        startup([("user", "a")])[:-1] + b"x",  # no terminator
        struct.pack("!iI", 9, 196608) + b"\x00",  # no parameters
        startup([("database", "d")]),  # no user
        startup([("user", "a"), ("", "v")]),  # empty name
        struct.pack("!iI", 16, 196608) + b"user\x00\xff\x00\x00",  # not UTF-8
    ],
)
def test_not_a_startup_packet(data: bytes) -> None:
    with pytest.raises(PostgresError):
        postgres.parse(data)


def test_partial_packet_with_an_empty_name_fails_before_the_end() -> None:
    data = startup([("user", "a"), ("x", "y")])
    broken = data[:8] + b"user\x00a\x00\x00"  # terminator in the middle
    with pytest.raises(PostgresError):
        postgres.parse(broken)


def test_error_response_layout() -> None:
    msg = postgres.error_response('database "nope" does not exist', code="3D000")
    assert msg[:1] == b"E"
    (length,) = struct.unpack("!i", msg[1:5])
    assert length == len(msg) - 1
    fields = msg[5:-2].split(b"\x00")
    assert fields == [b"SFATAL", b"VFATAL", b"C3D000", b'Mdatabase "nope" does not exist']
    assert msg.endswith(b"\x00\x00")
    with_extra = postgres.error_response("m", detail="d", hint="h")
    assert b"Dd\x00Hh\x00\x00" in with_extra


# -- properties ---------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@settings(max_examples=100, deadline=None)
@given(user=names, extra=st.lists(st.tuples(names, values), max_size=4))
def test_generated_startups_parse_the_same_every_way(
    user: str, extra: list[tuple[str, str]]
) -> None:
    params = [("user", user), *extra]
    event = three_ways(postgres.parse, startup(params))
    assert event.parameters == tuple(params)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_postgres_error(data: bytes) -> None:
    with contextlib.suppress(PostgresError):
        postgres.parse(data)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([SSL, GSS, startup([("user", "a"), ("database", "b")])]),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=3),
)
def test_mutated_packets_raise_only_postgres_error(
    base: bytes, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    refused_at = None
    for cut in range(len(data) + 1):
        try:
            postgres.parse(bytes(data[:cut]))
        except PostgresError:
            refused_at = cut if refused_at is None else refused_at
        else:  # a refusal is final: routers.first relies on it
            assert refused_at is None, f"refused {refused_at} bytes, accepted {cut}"


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=60))
def test_an_early_refusal_is_final(data: bytes) -> None:
    """Once a prefix is refused, every longer buffer is refused too (routers rely on it)."""
    for cut in range(len(data) + 1):
        try:
            postgres.parse(data[:cut])
        except PostgresError:
            with pytest.raises(PostgresError):
                postgres.parse(data)
            return
