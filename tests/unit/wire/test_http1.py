"""The request and response parsers: framing decisions and every smuggling probe.

Each case is fed whole, one byte at a time, and (for accepted messages) with
a second message behind it; the outcome must be the same each way.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire.errors import ProtocolError, RemoteProtocolError, TooLarge
from pointsman.wire.http1 import (
    KNOWN_REQUEST_BYTES,
    KNOWN_REQUESTS,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
)

Event = tuple[str, object]


class Recorder(RequestParser):
    def __init__(self, max_header_bytes: int = 16 * 1024) -> None:
        self.init_parser(max_header_bytes)
        self.events: list[Event] = []

    def request_received(self, head: RequestHead) -> None:
        self.events.append(("head", (head.method, head.target, head.content_length,
                                     head.chunked, head.host)))

    def body_received(self, data: bytes) -> None:
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + data)  # type: ignore[operator]
        else:
            self.events.append(("body", data))

    def request_ended(self) -> None:
        self.events.append(("end", None))


def feed(data: bytes, bytewise: bool) -> list[Event] | int:
    """The events, or the status hint of the error raised."""
    parser = Recorder()
    try:
        if bytewise:
            for i in range(len(data)):
                parser.receive_data(data[i:i + 1])
        else:
            parser.receive_data(data)
    except RemoteProtocolError as exc:
        return exc.status_hint
    return parser.events


SMUGGLING = {
    "content-length with transfer-encoding":
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
    "differing duplicate content-length":
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "content-length list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcd",
    "transfer-encoding not ending in chunked":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "transfer-encoding identity":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    "transfer-encoding lookalike":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "bad chunk size":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "chunk size overflow":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n",
    "chunk size with space":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n",
    "chunk without CRLF after data":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX0\r\n\r\n",
    "bare CR in a header": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
    "bare CR after request line": b"GET / HTTP/1.1\rHost: a\r\n\r\n",
    "bare LF line ends": b"GET / HTTP/1.1\nHost: a\n\n",
    "NUL in a value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "NUL in a name": b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n",
    "space before colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    "signed content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
    "transfer-encoding in HTTP/1.0":
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two Host fields": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no Host in HTTP/1.1": b"GET / HTTP/1.1\r\n\r\n",
    "relative target": b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_smuggling_probe_is_rejected_with_400(name: str, bytewise: bool) -> None:
    assert feed(SMUGGLING[name], bytewise) == 400


GOOD = b"POST /x?q=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello"
GOOD_CHUNKED = (b"POST /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_framing_decided_the_same_whole_or_bytewise(bytewise: bool) -> None:
    assert feed(GOOD, bytewise) == [("head", (b"POST", b"/x?q=1", 5, False, b"a.test")),
                                    ("body", b"hello"), ("end", None)]
    assert feed(GOOD_CHUNKED, bytewise) == [("head", (b"POST", b"/x", -1, True, b"a.test")),
                                            ("body", b"hello world"), ("end", None)]


def test_pipelined_messages_are_separate() -> None:
    events = feed(GOOD + GOOD_CHUNKED + b"GET / HTTP/1.1\r\nHost: b\r\n\r\n", False)
    assert isinstance(events, list)
    assert [kind for kind, _ in events] == ["head", "body", "end", "head", "body", "end",
                                            "head", "end"]


def test_only_an_http11_request_can_expect_100_continue() -> None:
    heads: list[RequestHead] = []
    parser = Recorder()
    parser.request_received = heads.append  # type: ignore[method-assign]
    for version in (b"1.1", b"1.0"):
        parser.receive_data(b"POST / HTTP/" + version + b"\r\nHost: a\r\nContent-Length: 0\r\n"
                            b"Expect: 100-continue\r\n\r\n")
    assert [head.expect_continue for head in heads] == [True, False]


def test_head_too_large_is_431() -> None:
    parser = Recorder(max_header_bytes=1024)
    with pytest.raises(TooLarge) as caught:
        parser.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert caught.value.status_hint == 431


def test_too_many_fields_is_431() -> None:
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    parser = Recorder()
    with pytest.raises(TooLarge):
        parser.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")


def test_upgrade_and_connect_return_the_tunnel_offset() -> None:
    request = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    parser = Recorder()
    assert parser.receive_data(request + b"FRAME") == len(request)
    connect = b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"
    assert Recorder().receive_data(connect + b"x") == len(connect)
    with pytest.raises(RemoteProtocolError):
        Recorder().receive_data(b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n")


class HeadRecorder(Recorder):
    """Keeps the head objects themselves, to see which ones the memo handed out again."""

    def __init__(self, known: dict[bytes, RequestHead]) -> None:
        self.init_parser(16 * 1024, known)
        self.events = []
        self.heads: list[RequestHead] = []

    def request_received(self, head: RequestHead) -> None:
        super().request_received(head)
        self.heads.append(head)


GET = b"GET /a?b HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n"


def test_a_repeated_bodiless_request_is_recognised_by_its_bytes() -> None:
    known: dict[bytes, RequestHead] = {}
    first, second = HeadRecorder(known), HeadRecorder(known)
    first.receive_data(GET)
    second.receive_data(GET)  # another connection of the same listener
    second.receive_data(GET)
    assert first.events == second.events[:2] == second.events[2:]
    assert first.heads[0] is second.heads[0] is second.heads[1]
    assert list(known) == [GET]


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",  # a body
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",  # the last one
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",  # HTTP/1.0 without keep-alive
    GET + GET,  # two requests in one read
    GET[:-2],  # not whole yet
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
])
def test_only_one_whole_bodiless_keep_alive_request_per_read_is_remembered(data: bytes) -> None:
    known: dict[bytes, RequestHead] = {}
    HeadRecorder(known).receive_data(data)
    assert known == {}


def test_a_remembered_request_inside_another_message_is_parsed_as_bytes() -> None:
    """Between messages a read may be a known request; inside a head it is just bytes."""
    known: dict[bytes, RequestHead] = {}
    HeadRecorder(known).receive_data(GET)
    parser = HeadRecorder(known)
    parser.receive_data(b"GET /x HTTP/1.1\r\nX-A: ")
    parser.receive_data(GET)  # the rest of /x's head: "GET /a?b HTTP/1.1" is X-A's value
    assert parser.events == [("head", (b"GET", b"/x", -1, False, b"a.test")), ("end", None)]
    body = HeadRecorder(known)
    body.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(GET))
    body.receive_data(GET)
    assert body.events[1:] == [("body", GET), ("end", None)]


class Forgetful(dict[bytes, RequestHead]):
    """A memo that never keeps anything: the parser as it was without one."""

    def __setitem__(self, key: bytes, value: RequestHead) -> None:
        pass


READS = [
    GET, GET[:20], GET[20:], GET + GET,
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", b"ab", b"cd",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"4\r\nabcd\r\n", b"0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
    b"\r\n", b"garbage\r\n\r\n",
]


def outcome(parser: HeadRecorder, reads: list[bytes]) -> list[object]:
    """Events and errors, read by read, until the first error (which ends a connection)."""
    seen: list[object] = []
    for data in reads:
        try:
            offset = parser.receive_data(data)
        except RemoteProtocolError as exc:
            return [*seen, *parser.events, ("error", exc.status_hint)]
        if offset >= 0:
            return [*seen, *parser.events, ("tunnel", offset)]
        seen += parser.events
        parser.events.clear()
    return seen


@settings(max_examples=300)
@given(st.lists(st.lists(st.sampled_from(READS), max_size=8), max_size=4))
def test_the_memo_never_changes_what_a_connection_sees(connections: list[list[bytes]]) -> None:
    """Connections of one listener share a memo; each sees what a parser without one sees."""
    known: dict[bytes, RequestHead] = {}
    for reads in connections + connections:
        assert outcome(HeadRecorder(known), reads) == outcome(HeadRecorder(Forgetful()), reads)


def test_the_memo_is_bounded() -> None:
    known: dict[bytes, RequestHead] = {}
    parser = HeadRecorder(known)
    for i in range(KNOWN_REQUESTS + 10):
        parser.receive_data(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
    assert 0 < len(known) <= KNOWN_REQUESTS
    assert len(parser.events) == 2 * (KNOWN_REQUESTS + 10)


@pytest.mark.parametrize("last", [
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
], ids=["connection-close", "http/1.0"])
def test_a_remembered_request_after_the_last_message_is_refused(last: bytes) -> None:
    """llhttp takes nothing after a message that ends the connection; nor may the memo."""
    known: dict[bytes, RequestHead] = {}
    HeadRecorder(known).receive_data(GET)
    parser = HeadRecorder(known)
    parser.receive_data(last)
    with pytest.raises(RemoteProtocolError):
        parser.receive_data(GET)
    assert len(parser.heads) == 1


class Unhashable(bytes):
    """A read that fails the test if it is ever hashed (looked up in the memo)."""

    def __hash__(self) -> int:
        raise AssertionError("a read larger than any remembered request was hashed")


def test_a_read_larger_than_any_remembered_request_is_not_looked_up() -> None:
    """Hashing a read costs a third of a nanosecond a byte: an upload's first read of
    64 KiB would pay some 20 µs to look for a request that cannot be remembered."""
    known: dict[bytes, RequestHead] = {}
    HeadRecorder(known).receive_data(GET)
    parser = HeadRecorder(known)
    body = b"x" * (KNOWN_REQUEST_BYTES + 1)
    parser.receive_data(Unhashable(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                                   % len(body) + body))
    parser.receive_data(Unhashable(GET + b"\r\n" * KNOWN_REQUEST_BYTES))
    assert [event for event, _ in parser.events] == ["head", "body", "end", "head", "end"]


def test_protocol_error_base_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProtocolError("x")


class ResponseRecorder(ResponseParser):
    """A parser that is its own sink, recording every event."""

    def __init__(self) -> None:
        self.init_response_parser()
        self.sink = self
        self.events: list[Event] = []

    def on_response_head(self, head: ResponseHead) -> None:
        self.events.append(("head", (head.status, head.content_length, head.chunked)))

    def on_response_body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def on_response_end(self) -> None:
        self.events.append(("end", None))


def test_response_interim_head_and_chunked() -> None:
    parser = ResponseRecorder()
    parser.receive_response_data(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert parser.events == [("head", (100, -1, False)), ("head", (200, -1, True)),
                             ("body", b"abc"), ("end", None)]


def test_response_to_head_ends_after_its_head() -> None:
    parser = ResponseRecorder()
    parser.expect_no_body()
    parser.receive_response_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    parser.receive_response_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert parser.events == [("head", (200, 10, False)), ("end", None),
                             ("head", (204, -1, False)), ("end", None)]


def test_bad_response_is_502() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        ResponseRecorder().receive_response_data(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert caught.value.status_hint == 502


def test_wire_imports_no_io() -> None:
    import pointsman.wire.forward as forward
    import pointsman.wire.http1 as http1

    for module in (http1, forward):
        source = open(module.__file__ or "").read()  # noqa: SIM115
        for banned in ("import asyncio", "import socket", "import time"):
            assert banned not in source


OK = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
      b"X-Unique: %d\r\n\r\nhello")


def test_a_whole_response_with_a_known_head_skips_llhttp_and_says_the_same() -> None:
    """A head seen once is shared by later responses that arrive whole behind it."""
    response = OK % 1
    first, second = ResponseRecorder(), ResponseRecorder()
    heads: list[ResponseHead] = []
    for parser in (first, second, second):
        parser.on_response_head = heads.append  # type: ignore[method-assign]
        parser.receive_response_data(response)
    assert heads[0] is heads[1] is heads[2]
    assert second.events == [("body", b"hello"), ("end", None)] * 2


@pytest.mark.parametrize("tail", [b"", b"!", b"HTTP/1.1 204 No Content\r\n\r\n"])
def test_a_known_head_with_other_framing_goes_through_llhttp(tail: bytes) -> None:
    """Short, or with bytes behind it: llhttp decides where the response ends."""
    unique = OK % 2
    ResponseRecorder().receive_response_data(unique)  # the head becomes known
    parser = ResponseRecorder()
    data = unique[:-1] if not tail else unique + tail
    if tail == b"!":
        with pytest.raises(RemoteProtocolError):
            parser.receive_response_data(data)
        return
    parser.receive_response_data(data)
    if not tail:
        assert parser.events == [("head", (200, 5, False)), ("body", b"hell")]
    else:
        assert parser.events == [("head", (200, 5, False)), ("body", b"hello"), ("end", None),
                                 ("head", (204, -1, False)), ("end", None)]


def test_a_known_head_answering_head_has_no_body() -> None:
    unique = OK % 3
    ResponseRecorder().receive_response_data(unique)
    parser = ResponseRecorder()
    parser.expect_no_body()
    parser.receive_response_data(unique[:-5])
    assert parser.events == [("head", (200, 5, False)), ("end", None)]


def test_an_empty_line_before_a_status_line_is_not_part_of_the_head() -> None:
    """llhttp skips CRLFs before a response (a backend's stray end of line); so do the cuts,
    or the status line would be forwarded as a field line of its own."""
    heads: list[ResponseHead] = []
    for _ in range(2):  # the second time, by the known-response path if at all
        parser = ResponseRecorder()
        parser.on_response_head = heads.append  # type: ignore[method-assign]
        parser.receive_response_data(b"\r\nHTTP/1.1 201 Made\r\nContent-Length: 2\r\n\r\nok")
        assert parser.events == [("body", b"ok"), ("end", None)]
    for head in heads:
        assert (head.status, head.reason, head.raw) == (201, b"Made", b"Content-Length: 2\r\n")
    interim = ResponseRecorder()
    interim.on_response_head = heads.append  # type: ignore[method-assign]
    interim.receive_response_data(b"HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 204 None\r\n\r\n")
    assert (heads[-1].status, heads[-1].reason, heads[-1].raw) == (204, b"None", b"")
