"""HTTP/1.1 message heads for a proxy: parse with llhttp, check what it lets through, rewrite.

httptools (llhttp) does the byte-level parsing and, in its default strict
mode, already refuses most smuggling shapes: Content-Length with
Transfer-Encoding, duplicate Content-Length, a Transfer-Encoding that does not
end in ``chunked``, obs-fold, bad chunk sizes, bare CR or LF, NUL and other
control characters. ``RequestParser`` adds what llhttp leaves to the
application, all of which would let the proxy and a backend disagree about
where a request ends or what it addresses:

* a head larger than ``max_header_bytes`` (431) or with too many fields;
* Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1);
* a missing or repeated Host in HTTP/1.1 (RFC 9112 section 3.2);
* a request target that is neither origin-form, absolute-form, ``*`` nor,
  for CONNECT, authority-form.

The parsers are mixins: an I/O class inherits one, passes itself to
httptools, and overrides the ``*_received`` hooks. Nothing here touches a
socket or a clock; tests feed bytes whole and one at a time.
"""

from __future__ import annotations

from typing import Any, Protocol

import httptools
import msgspec

from pointsman.wire.errors import RemoteProtocolError, TooLarge

__all__ = [
    "CHUNK_END",
    "HAS_APP_INSTANCE",
    "HAS_COOKIE",
    "HOP_BY_HOP",
    "IDEMPOTENT",
    "KNOWN_REQUESTS",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "RequestHead",
    "RequestParser",
    "ResponseHandler",
    "ResponseHead",
    "ResponseParser",
    "chunk_size_line",
    "connection_tokens",
]

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 128
HAS_COOKIE = 1
HAS_APP_INSTANCE = 2
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
CHUNK_END = b"0\r\n\r\n"
CRLF = b"\r\n"

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
    b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
"""Fields that describe one connection, never forwarded (RFC 9110 section 7.6.1)."""

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
KNOWN_REQUESTS = 256
"""Bodiless request heads a parser's ``known`` memo holds before it starts afresh."""
KNOWN_REQUEST_BYTES = 4096
"""Larger reads are never remembered: the memo's memory stays within a megabyte."""


def chunk_size_line(size: int) -> bytes:
    """``1a2b\\r\\n``: the line that opens one chunk of ``size`` bytes."""
    return b"%x\r\n" % size


def connection_tokens(value: bytes) -> list[bytes]:
    """The lower-cased tokens of a Connection field."""
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


class RequestHead(msgspec.Struct, gc=False):
    """A request head as read, with the framing already decided.

    ``content_length`` is -1 when the body is chunked or absent (``chunked``
    tells which). ``headers`` keeps the original names and order.

    Heads are msgspec Structs rather than dataclasses because two are built
    per proxied request: a Struct is constructed in C, about four times
    faster, and holds nothing that could form a cycle (``gc=False``).
    """

    method: bytes
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    host: bytes
    content_length: int
    chunked: bool
    keep_alive: bool
    upgrade: bool
    expect_continue: bool
    flags: int = 0
    """``HAS_COOKIE`` / ``HAS_APP_INSTANCE``: fields routing looks at, seen while parsing."""
    route_memo: Any = None
    """Left to the layer that routes: what it derived from this head, to reuse when the
    same head comes again (heads from a parser's ``known`` memo are shared)."""
    forward_memo: Any = None
    """Left to ``wire.forward``: the fields it keeps, worked out once per head."""

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    def rewritten(self, headers: list[tuple[bytes, bytes]],
                  target: bytes | None = None) -> RequestHead:
        """This request with other fields (and target), as a new head: what was derived
        from this one (``route_memo``, ``forward_memo``) does not carry over."""
        return msgspec.structs.replace(
            self, headers=headers, target=self.target if target is None else target,
            route_memo=None, forward_memo=None)

    @property
    def path(self) -> bytes:
        """The path of the target, without query; absolute-form is reduced to it."""
        target = self.target
        if target[:1] != b"/":
            scheme = target.find(b"://")
            if scheme < 0:
                return b""
            slash = target.find(b"/", scheme + 3)
            target = target[slash:] if slash >= 0 else b"/"
        cut = target.find(b"?")
        return target if cut < 0 else target[:cut]


class ResponseHead(msgspec.Struct, gc=False):
    """A response head as read: status, the raw field lines, and its framing.

    ``raw`` is the field block exactly as received (``Name: value\\r\\n`` lines,
    without the status line and the blank line), so a proxy can forward it
    with a few cuts instead of rebuilding it field by field; ``headers``
    parses it on demand.
    """

    status: int
    reason: bytes
    version: str
    raw: bytes
    content_length: int
    chunked: bool
    keep_alive: bool
    forward_memo: Any = None
    """Left to ``wire.forward``: the head as the client gets it, worked out once per
    head (heads the parser remembers are shared by every response they fit)."""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        fields = []
        for line in self.raw.split(b"\r\n"):
            if line:
                name, _, value = line.partition(b":")
                fields.append((name, value.strip(b" \t")))
        return fields


class RequestParser:
    """The client side: bytes in, ``request_received`` / ``body_received`` / ``request_ended``.

    ``receive_data`` returns -1, or the offset of the first byte after an
    accepted Upgrade or CONNECT request (those bytes belong to the tunnel).
    Errors raise ``RemoteProtocolError`` carrying a status hint.

    ``known`` remembers reads that were exactly one whole bodiless keep-alive
    request, by their bytes. Clients repeat such reads byte for byte (a load
    balancer's probe, a browser's asset requests, an API client's polls);
    when one arrives again between messages, its head is the one llhttp
    produced the first time, so it is handed on without feeding llhttp or
    calling back into Python for each field. llhttp keeps no state across
    messages of a keep-alive connection that the skipped read would change;
    after a message that ends the connection the memo is not asked.
    The memo belongs to the caller (one per listener: its limits decided
    what was accepted) and is bounded in entries and in bytes per entry.
    """

    # A mixin: the concrete class declares the slots (no __slots__ here so the
    # I/O class can combine it with asyncio.Protocol freely).
    _parser: httptools.HttpRequestParser
    _url: bytes
    _headers: list[tuple[bytes, bytes]]
    _head_bytes: int
    _known: dict[bytes, RequestHead]
    _at_rest: bool
    _ended: int
    _last_head: RequestHead | None
    max_header_bytes: int

    def init_parser(self, max_header_bytes: int = MAX_HEADER_BYTES,
                    known: dict[bytes, RequestHead] | None = None) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._known = {} if known is None else known
        self._at_rest = True
        self._ended = 0
        self._last_head = None
        self.max_header_bytes = max_header_bytes

    def receive_data(self, data: bytes) -> int:
        learn = False
        if self._at_rest:
            # Larger reads are never remembered, and hashing one (an upload's
            # first read, a pipelined burst) would cost a third of a ns a byte.
            if len(data) <= KNOWN_REQUEST_BYTES:
                head = self._known.get(data)
                if head is not None:
                    self.request_received(head)
                    self.request_ended()
                    return -1
                learn = True
            self._ended = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            return int(upgrade.args[0])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            if self._head_bytes > self.max_header_bytes:
                raise TooLarge("header", self._head_bytes, self.max_header_bytes) from None
            raise RemoteProtocolError(str(exc) or "malformed request", 400) from None
        if learn and self._ended == 1 and self._at_rest:
            self._remember(data)
        return -1

    def _remember(self, data: bytes) -> None:
        """``data`` was one whole request: keep its head if a repeat may skip llhttp."""
        head = self._last_head
        if head is None or head.has_body or not head.keep_alive or head.upgrade \
                or head.method == b"CONNECT":
            return
        known = self._known
        if len(known) >= KNOWN_REQUESTS:
            known.clear()
        known[data] = head

    # -- httptools callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._at_rest = False

    # The size checks are written out in both callbacks: they run for every
    # field of every request, and a shared helper would double the calls.

    def on_url(self, url: bytes) -> None:
        self._url += url
        size = self._head_bytes = self._head_bytes + len(url)
        if size > self.max_header_bytes:
            raise TooLarge("header", size, self.max_header_bytes)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        size = self._head_bytes = self._head_bytes + len(name) + len(value) + 4
        if size > self.max_header_bytes:
            raise TooLarge("header", size, self.max_header_bytes)
        if len(headers) > MAX_HEADERS:
            raise TooLarge("header", len(headers), MAX_HEADERS)

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        method = parser.get_method()
        host = b""
        hosts = 0
        content_length = -1
        chunked = False
        expect = False
        flags = 0
        for name, value in self._headers:
            size = len(name)
            if size == 4 and name.lower() == b"host":
                host = value
                hosts += 1
            elif size == 14 and name.lower() == b"content-length":
                content_length = int(value)
            elif size == 17:
                lname = name.lower()
                if lname == b"transfer-encoding":
                    chunked = True
                elif lname == b"x-cf-app-instance":
                    flags |= HAS_APP_INSTANCE
            elif size == 6:
                lname = name.lower()
                if lname == b"cookie":
                    flags |= HAS_COOKIE
                elif lname == b"expect":
                    expect = value.lower() == b"100-continue"
        if version == "1.0":
            if chunked:
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400)
            expect = False  # a 1.0 request's expectation is ignored (RFC 9110 section 10.1.1)
        if hosts > 1:
            raise RemoteProtocolError("more than one Host field", 400)
        if hosts == 0 and version != "1.0":
            raise RemoteProtocolError("missing Host field", 400)
        target = self._url
        if method == b"CONNECT":
            if target[:1] == b"/" or b"/" in target or b":" not in target:
                raise RemoteProtocolError("CONNECT needs an authority-form target", 400)
        elif not (target[:1] == b"/" or target == b"*" or target[:7].lower() == b"http://"
                  or target[:8].lower() == b"https://"):
            raise RemoteProtocolError("bad request target", 400)
        head = self._last_head = RequestHead(
            method, target, version, self._headers, host, content_length, chunked,
            parser.should_keep_alive(), parser.should_upgrade(), expect, flags)
        self.request_received(head)

    def on_body(self, data: bytes) -> None:
        self.body_received(data)

    def on_message_complete(self) -> None:
        # After a message that ends the connection (Connection: close, HTTP/1.0
        # without keep-alive) llhttp refuses any further one: so must the memo.
        head = self._last_head
        self._at_rest = head is not None and head.keep_alive
        self._ended += 1
        self.request_ended()

    # -- hooks ------------------------------------------------------------------

    def request_received(self, head: RequestHead) -> None:
        raise NotImplementedError

    def body_received(self, data: bytes) -> None:
        raise NotImplementedError

    def request_ended(self) -> None:
        raise NotImplementedError


_HEAD_CACHE: dict[bytes, tuple[bytes, bytes, int, bool]] = {}
HEAD_CACHE_SIZE = 512
"""Response heads remembered by ``_head_parts``: a backend repeats its heads
(only ``Date`` changes, once a second), so most responses skip the cuts."""


def _head_parts(head: bytes) -> tuple[bytes, bytes, int, bool]:
    """Reason, field block, Content-Length (-1 if none), Transfer-Encoding present; memoised.

    ``head`` is a response head up to (not including) its blank line; llhttp
    has already refused conflicting or malformed framing fields.
    """
    hit = _HEAD_CACHE.get(head)
    if hit is not None:
        return hit
    line_end = head.find(b"\r\n")
    status_line = head[:line_end] if line_end >= 0 else head
    raw = head[line_end + 2:] + b"\r\n" if line_end >= 0 else b""
    reason = status_line.split(b" ", 2)[2] if status_line.count(b" ") >= 2 else b""
    lower = b"\n" + raw.lower()
    content_length = -1
    at = lower.find(b"\ncontent-length:")
    if at >= 0:
        content_length = int(lower[at + 16:lower.find(b"\r", at)])
    result = (reason, raw, content_length, b"\ntransfer-encoding:" in lower)
    if len(_HEAD_CACHE) >= HEAD_CACHE_SIZE:
        _HEAD_CACHE.clear()
    _HEAD_CACHE[head] = result
    return result


_KNOWN_RESPONSES: dict[bytes, ResponseHead] = {}
"""Final response heads with Content-Length framing, by their bytes, as llhttp read them:
a response that arrives whole with one of these heads needs no parsing (see
``ResponseParser.receive_response_data``). The heads are shared, never changed."""
_BODILESS = frozenset({204, 304})


class ResponseHandler(Protocol):
    """Where a ``ResponseParser`` reports what it parsed."""

    def on_response_head(self, head: ResponseHead) -> None: ...

    def on_response_body(self, data: bytes) -> None: ...

    def on_response_end(self) -> None: ...


class ResponseParser:
    """The upstream side: bytes in, ``on_response_head`` / ``_body`` / ``_end`` on ``sink``.

    Interim 1xx responses other than 101 arrive as ``ResponseHead`` with no
    body and no end. ``expect_no_body()`` is for a response to HEAD, which
    llhttp cannot know has no body. Events go straight to ``sink`` (nothing
    when it is ``None``) rather than through hooks of the I/O class, one
    Python call per event fewer on every proxied response.

    llhttp validates the head, but fields are not passed through Python one
    callback at a time: the head's bytes are kept while it arrives and cut
    out whole when llhttp reports it complete, and the few fields framing
    needs are found in it with C-speed searches.
    """

    _rparser: httptools.HttpResponseParser
    _rbuf: bytes
    _at_head: bool
    _no_body: bool
    _rended: bool
    sink: ResponseHandler | None

    def init_response_parser(self) -> None:
        self._rparser = httptools.HttpResponseParser(self)
        self._rbuf = b""
        self._at_head = True
        self._no_body = False
        self._rended = False
        self.sink = None

    def expect_no_body(self) -> None:
        self._no_body = True

    def receive_response_data(self, data: bytes) -> int:
        if self._at_head and not self._rbuf and not self._no_body:
            # A whole response in one read whose head llhttp accepted before:
            # with Content-Length framing and nothing after it, llhttp would
            # say the same again, so it is not asked.
            end = data.find(b"\r\n\r\n")
            head = _KNOWN_RESPONSES.get(data[:end]) if end > 0 else None
            if head is not None and len(data) - end - 4 == head.content_length:
                sink = self.sink
                if sink is not None:
                    sink.on_response_head(head)
                if head.content_length:
                    sink = self.sink
                    if sink is not None:
                        sink.on_response_body(data[end + 4:])
                sink = self.sink
                if sink is not None:
                    sink.on_response_end()
                return -1
        if self._at_head:
            self._rbuf = self._rbuf + data if self._rbuf else data
            if len(self._rbuf) > MAX_RESPONSE_HEAD_BYTES and b"\r\n\r\n" not in self._rbuf:
                raise RemoteProtocolError("response head too large", 502)
        try:
            self._rparser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            return int(upgrade.args[0])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            raise RemoteProtocolError(f"bad response: {exc}", 502) from None
        return -1

    # No on_message_begin: every response passes on_headers_complete first,
    # which resets what a message needs, and each callback costs a Python call.

    def on_headers_complete(self) -> None:
        parser = self._rparser
        buffer = self._rbuf
        end = buffer.find(b"\r\n\r\n")
        status = parser.get_status_code()
        if status < 200:
            self._rbuf = buffer[end + 4:]  # the final head follows an interim one
        else:
            self._rbuf = b""
            self._at_head = False
            self._rended = False
        key = buffer[:end]
        if key[:1] == b"\r":
            # llhttp skips empty lines before a status line: they are no part of the head.
            key = key.lstrip(b"\r\n")
        parts = _HEAD_CACHE.get(key) or _head_parts(key)
        head = ResponseHead(status, parts[0], parser.get_http_version(), parts[1], parts[2],
                            parts[3], parser.should_keep_alive())
        if status >= 200 and parts[2] >= 0 and not parts[3] and not self._no_body \
                and status not in _BODILESS:
            if len(_KNOWN_RESPONSES) >= HEAD_CACHE_SIZE:
                _KNOWN_RESPONSES.clear()
            _KNOWN_RESPONSES[key] = head
        sink = self.sink
        if sink is not None:
            sink.on_response_head(head)
        if self._no_body and status >= 200:
            # llhttp would wait for a HEAD response's announced body: start afresh.
            self._no_body = False
            self._rended = True
            self._at_head = True
            self._rparser = httptools.HttpResponseParser(self)
            sink = self.sink
            if sink is not None:
                sink.on_response_end()

    def on_body(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.on_response_body(data)

    def on_message_complete(self) -> None:
        if self._rended:
            return
        if self._rparser.get_status_code() >= 200:
            self._rended = True
            self._at_head = True
            sink = self.sink
            if sink is not None:
                sink.on_response_end()
