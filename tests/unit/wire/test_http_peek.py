"""http_peek: request heads as clients send them, the smuggling refusals, limits, fuzzing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire import http_peek
from pointsman.wire.http_peek import NEED_DATA, HttpHeadTooLarge, HttpPeekError, RequestHead


def three_ways(parse: Callable[[bytes], Any], data: bytes, trailing: bytes = b"body") -> Any:
    """Feed ``data`` whole, as every prefix, and with trailing bytes; expect one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(bytearray(data)) == whole
    return whole


CURL = (
    b"GET /path?q=1 HTTP/1.1\r\nHost: App.Example.com:8080\r\n"
    b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
)


def test_curl_request() -> None:
    head = three_ways(http_peek.parse, CURL)
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version) == ("GET", "/path?q=1", "HTTP/1.1")
    assert head.host == "App.Example.com:8080"
    assert head.hostname == "app.example.com"
    assert head.headers[1] == ("user-agent", "curl/7.88.1")
    assert head.length == len(CURL)


@pytest.mark.parametrize(
    ("data", "hostname"),
    [
        (b"GET / HTTP/1.0\n\n", None),  # 1.0 without Host, bare LF
        (b"\r\nGET / HTTP/1.1\r\nhost:a.example.\r\n\r\n", "a.example"),
        (b"GET http://b.example:81/x HTTP/1.1\r\nHost: a.example\r\n\r\n", "b.example"),
        (b"GET http://u@b.example?q HTTP/1.1\r\nHost: a\r\n\r\n", "b.example"),
        (b"CONNECT c.example:443 HTTP/1.1\r\nHost: c.example:443\r\n\r\n", "c.example"),
        (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX: \t\r\n\r\n", "::1"),
        (b"OPTIONS * HTTP/1.1\r\nHost: \r\n\r\n", None),
    ],
)
def test_request_shapes(data: bytes, hostname: str | None) -> None:
    head = three_ways(http_peek.parse, data)
    assert head.hostname == hostname


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00",  # TLS
        b"\x00\x00\x00\x08",  # PostgreSQL
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 prior knowledge
        b"GET / HTTP/1.1\r\n\r\n",  # 1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # duplicate Host
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # space before colon
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET / HTTP/1.1 x\r\n",
        b"GET /\x01 HTTP/1.1\r\n",
        b"GET / HTTP/3.0",
        b"G(T / HTTP/1.1\r\n",
        b"\n\n\n\n\nGET",
        b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n",  # refused before the head ends
    ],
)
def test_not_an_http_request(data: bytes) -> None:
    with pytest.raises(HttpPeekError):
        http_peek.parse(data)


def test_git_request_line_is_refused_once_it_has_a_space() -> None:
    assert http_peek.parse(b"0044git-upload-pack") is NEED_DATA  # still a token
    with pytest.raises(HttpPeekError):
        http_peek.parse(b"0044git-upload-pack /a/b\x00host=x\x00")


def test_head_size_limit() -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * http_peek.MAX_HEAD_BYTES
    with pytest.raises(HttpHeadTooLarge) as info:
        http_peek.parse(big)
    assert info.value.status_hint == 431
    with pytest.raises(HttpHeadTooLarge):
        http_peek.parse(b"GET /" + b"a" * http_peek.MAX_HEAD_BYTES)
    small = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 100 + b"\r\n\r\n"
    with pytest.raises(HttpHeadTooLarge):
        http_peek.parse(small, max_size=64)
    assert isinstance(http_peek.parse(small, max_size=len(small)), RequestHead)


def test_split_host() -> None:
    assert http_peek.split_host("a.example:80") == ("a.example", 80)
    assert http_peek.split_host("a.example") == ("a.example", None)
    assert http_peek.split_host("[::1]:9") == ("::1", 9)
    assert http_peek.split_host("[::1]") == ("::1", None)
    assert http_peek.split_host("::1") == ("::1", None)


# -- properties ---------------------------------------------------------------

tokens = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-!#$%&'*+.^_`|~", min_size=1, max_size=10
)
header_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
header_values = st.text(header_chars, max_size=20).map(str.strip)
header_names = tokens.filter(lambda t: t.lower() != "host")


@settings(max_examples=100, deadline=None)
@given(
    method=tokens,
    path=st.text("abcxyz/?=&%0123456789", max_size=20),
    host=st.from_regex(r"\A[a-z0-9.-]{1,20}(:[0-9]{1,5})?\Z", fullmatch=True),
    headers=st.lists(st.tuples(header_names, header_values), max_size=4),
    crlf=st.booleans(),
)
def test_generated_requests_parse_the_same_every_way(
    method: str, path: str, host: str, headers: list[tuple[str, str]], crlf: bool
) -> None:
    eol = "\r\n" if crlf else "\n"
    text = f"{method} /{path} HTTP/1.1{eol}Host: {host}{eol}"
    text += "".join(f"{k}: {v}{eol}" for k, v in headers) + eol
    head = three_ways(http_peek.parse, text.encode("latin-1"))
    assert head.host == host
    assert head.headers[1:] == tuple((k.lower(), v) for k, v in headers)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120), st.binary(max_size=80).map(lambda b: b"GET / HTTP/1.1\r\n" + b)
    )
)
def test_arbitrary_bytes_raise_only_http_peek_error(data: bytes) -> None:
    with contextlib.suppress(HttpPeekError):
        http_peek.parse(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=60).map(lambda b: b"GET / HTTP/1.1\r\n" + b))
def test_an_early_refusal_is_final(data: bytes) -> None:
    """Once a prefix is refused, every longer buffer is refused too (routers rely on it)."""
    for cut in range(len(data) + 1):
        try:
            http_peek.parse(data[:cut])
        except HttpPeekError:
            with pytest.raises(HttpPeekError):
                http_peek.parse(data)
            return
