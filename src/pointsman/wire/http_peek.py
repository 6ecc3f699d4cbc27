"""Peek at an HTTP/1.x request head to route by Host without terminating HTTP.

A TCP router in front of HTTP servers only needs the request line and the
Host header; the bytes are then replayed to the chosen server, which parses
the request for real. This reader waits for the whole head (up to
``MAX_HEAD_BYTES``) so a duplicated Host, a classic smuggling trick, is
refused rather than routed by whichever copy a parser happens to prefer.

It is deliberately strict where routing could be fooled (whitespace before a
colon, obsolete line folding, two Host headers, a bad version) and lenient
where servers are (bare LF line ends, leading empty lines). It raises
``HttpPeekError`` as soon as the bytes cannot be an HTTP/1.x request, so a
router can try another protocol at once, and ``HttpHeadTooLarge`` past the
limit (a server would answer 431).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pointsman.wire.errors import RemoteProtocolError, TooLarge
from pointsman.wire.peek import NEED_DATA, NeedData

__all__ = [
    "MAX_HEAD_BYTES",
    "NEED_DATA",
    "HttpHeadTooLarge",
    "HttpPeekError",
    "RequestHead",
    "parse",
    "split_host",
]

#: Largest request head (request line and headers) accepted: nginx's default
#: large_client_header_buffers is 8 KiB per line; h11 allows 16 KiB in all.
MAX_HEAD_BYTES: Final = 16 * 1024
#: Empty lines tolerated before the request line (RFC 9112 section 2.2).
MAX_LEADING_EMPTY_LINES: Final = 4

# Character classes as bytes for bytes.translate(None, delete): C-speed checks.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CTL = bytes([*range(0x20), 0x7F])
_CTL_BUT_TAB = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])


def _is_token(data: bytes) -> bool:
    return bool(data) and not data.translate(None, _TCHAR)


def _has(data: bytes, chars: bytes) -> bool:
    return len(data.translate(None, chars)) != len(data)


_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}


class HttpPeekError(RemoteProtocolError, ValueError):
    """The bytes are not an HTTP/1.x request head; ``status_hint`` is what a server sends."""


class HttpHeadTooLarge(HttpPeekError, TooLarge):
    """The request head is longer than the limit (``status_hint`` 431)."""

    def __init__(self, size: int, limit: int) -> None:
        TooLarge.__init__(self, "header", size, limit)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The request line and headers of one HTTP/1.x request.

    ``host`` is the Host header's value as sent (``None`` without one);
    ``authority`` is what routing should use: the target's authority for an
    absolute-form target (RFC 9112 section 3.2.2), else ``host``. Header names
    are lower-cased, values decoded as latin-1. ``length`` is the head's size
    including its empty line.
    """

    method: str
    target: str
    version: str
    host: str | None
    headers: tuple[tuple[str, str], ...]
    length: int

    @property
    def authority(self) -> str | None:
        target = self.target
        if "://" in target[:16] and target.split("://", 1)[0].lower() in ("http", "https"):
            rest = target.split("://", 1)[1]
            end = len(rest)
            for sep in "/?#":
                found = rest.find(sep)
                if 0 <= found < end:
                    end = found
            return rest[:end].rpartition("@")[2]
        if self.method == "CONNECT":
            return target
        return self.host

    @property
    def hostname(self) -> str | None:
        """``authority`` without its port, lower-cased, without a trailing dot."""
        authority = self.authority
        if not authority:
            return None
        return split_host(authority)[0].lower().rstrip(".") or None


def split_host(authority: str) -> tuple[str, int | None]:
    """``"example.com:8080"`` -> ``("example.com", 8080)``; ``"[::1]"`` -> ``("::1", None)``."""
    if authority.startswith("["):
        end = authority.find("]")
        if end > 0:
            port = authority[end + 2 :] if authority[end + 1 : end + 2] == ":" else ""
            return authority[1:end], int(port) if port.isdigit() and port.isascii() else None
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and port.isascii() and ":" not in host:
        return host, int(port)
    return authority, None


def parse(
    buf: bytes | bytearray | memoryview, max_size: int = MAX_HEAD_BYTES
) -> RequestHead | NeedData:
    """Read the request head at the start of ``buf``; ``NEED_DATA`` while incomplete."""
    data = bytes(buf[: max_size + 1]) if len(buf) > max_size else bytes(buf)
    start = 0
    skipped = 0
    while data.startswith(b"\n", start) or data.startswith(b"\r\n", start):
        start += 1 if data[start] == 0x0A else 2
        skipped += 1
        if skipped > MAX_LEADING_EMPTY_LINES:
            raise HttpPeekError("too many empty lines before the request")
    if start == len(data) or data[start:] == b"\r":
        return NEED_DATA
    line_end = data.find(b"\n", start)
    if line_end < 0:
        _check_partial_request_line(data, start)
        if len(data) > max_size:
            raise HttpHeadTooLarge(len(data), max_size)
        return NEED_DATA
    method, target, version = _request_line(data[start:line_end])
    end = _head_end(data, line_end)
    if end < 0:
        if len(data) > max_size:
            raise HttpHeadTooLarge(len(data), max_size)
        # Check the complete header lines now, so junk is refused early.
        _headers(data, line_end + 1, data.rfind(b"\n") + 1)
        return NEED_DATA
    if end > max_size:
        raise HttpHeadTooLarge(end, max_size)
    headers = _headers(data, line_end + 1, end)
    host: str | None = None
    for name, value in headers:
        if name == "host":
            if host is not None:
                raise HttpPeekError("more than one Host header")
            host = value
    if host is None and version == "HTTP/1.1":
        raise HttpPeekError("HTTP/1.1 request without a Host header")
    return RequestHead(method, target, version, host, headers, end)


def _check_partial_request_line(data: bytes, start: int) -> None:
    """Refuse a request line whose start already rules it out (say, a TLS record)."""
    space = data.find(b" ", start)
    method = data[start:] if space < 0 else data[start:space]
    if method.rstrip(b"\r").translate(None, _TCHAR):
        raise HttpPeekError("not an HTTP request line")
    if space < 0:
        return
    if space == start:
        raise HttpPeekError("empty method")
    rest = data[space + 1 :].rstrip(b"\r")
    if _has(rest, _CTL):
        raise HttpPeekError("control character in the request line")
    second = rest.find(b" ")
    if second >= 0:
        if second == 0:
            raise HttpPeekError("empty request target")
        version = rest[second + 1 :]
        if not b"HTTP/1.1".startswith(version) and not b"HTTP/1.0".startswith(version):
            raise HttpPeekError("not an HTTP/1.x request")


def _request_line(line: bytes) -> tuple[str, str, str]:
    if line.endswith(b"\r"):
        line = line[:-1]
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpPeekError("request line is not METHOD TARGET VERSION")
    method, target, version = parts
    if not _is_token(method):
        raise HttpPeekError("bad method")
    if not target or _has(target, _CTL):
        raise HttpPeekError("bad request target")
    name = _VERSIONS.get(version)
    if name is None:
        raise HttpPeekError("not an HTTP/1.x request")
    return method.decode("ascii"), target.decode("latin-1"), name


def _head_end(data: bytes, line_end: int) -> int:
    """Offset just past the empty line ending the head, or -1."""
    pos = line_end
    while True:
        nxt = data.find(b"\n", pos + 1)
        if nxt < 0:
            return -1
        if nxt == pos + 1 or (nxt == pos + 2 and data[pos + 1] == 0x0D):
            return nxt + 1
        pos = nxt


def _headers(data: bytes, start: int, end: int) -> tuple[tuple[str, str], ...]:
    """Parse the header lines in ``data[start:end]`` (each ends with LF)."""
    out: list[tuple[str, str]] = []
    pos = start
    while pos < end:
        nxt = data.index(b"\n", pos)
        line = data[pos:nxt]
        pos = nxt + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break  # the empty line that ends the head
        if line[0] in (0x20, 0x09):
            raise HttpPeekError("obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon or not _is_token(name):
            raise HttpPeekError("bad header name")
        value = value.strip(b" \t")
        if _has(value, _CTL_BUT_TAB):
            raise HttpPeekError("control character in a header value")
        out.append((name.decode("ascii").lower(), value.decode("latin-1")))
    return tuple(out)
