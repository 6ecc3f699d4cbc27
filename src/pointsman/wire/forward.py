"""What a reverse proxy changes in a message head on its way through.

Pure functions from a parsed head and a few facts about the connection to the
bytes sent on. One pass over the fields each way; nothing is re-parsed.

Towards the backend (gorouter's ``setupProxyRequest`` in spirit):

* hop-by-hop fields and every field the Connection field names are dropped;
  an Upgrade request keeps ``Upgrade`` and says ``Connection: Upgrade``;
* ``X-Forwarded-For`` gets the client address appended when the client is a
  trusted proxy, and is replaced by it otherwise; ``X-Forwarded-Proto`` and
  ``X-Forwarded-Host`` are kept from trusted clients when present and set
  otherwise;
* ``X-Request-Id`` is kept or set, and always sent again as
  ``X-Vcap-Request-Id``; ``X-Request-Start`` (epoch ms) is added when absent;
* ``X-Cf-App-Instance`` is consumed by routing and not forwarded, and a
  client's own ``X-CF-ApplicationID`` / ``InstanceIndex`` / ``InstanceID``
  are dropped, as only the proxy may say which instance it chose;
* a chunked body is re-framed by the proxy, so it is announced again here;
* the endpoint's own fields (``X-CF-ApplicationID``, ``X-CF-InstanceIndex``,
  ``X-CF-InstanceID``, from ``cf_instance_fields``) are encoded once per
  endpoint and appended as they are.

Towards the client: hop-by-hop fields dropped, the request id echoed when the
backend did not set one, ``__VCAP_ID__`` set next to a sticky session cookie,
and the framing the proxy will actually use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pointsman.wire.http1 import CRLF, HOP_BY_HOP, RequestHead, ResponseHead, connection_tokens

__all__ = [
    "VCAP_ID",
    "StickyRequest",
    "build_interim_head",
    "build_request_head",
    "build_response_head",
    "cf_instance_fields",
    "sticky_request",
]

VCAP_ID = b"__VCAP_ID__"
_STICKY_ATTRIBUTES = (b"max-age", b"expires", b"secure", b"samesite", b"partitioned")
_NO_BODY_STATUSES = frozenset({204, 304})
_STATUS_LINES = {status: b"HTTP/1.1 %d " % status for status in range(100, 600)}


@dataclass(frozen=True, slots=True)
class StickyRequest:
    """What the request's cookies say about session affinity."""

    has_session: bool
    instance_id: str


def sticky_request(head: RequestHead, cookie_names: frozenset[bytes]) -> StickyRequest | None:
    """The ``__VCAP_ID__`` the request carries, and whether it has a session cookie."""
    instance = ""
    session = False
    for name, value in head.headers:
        if len(name) != 6 or name.lower() != b"cookie":
            continue
        for pair in value.split(b";"):
            key, _, val = pair.strip().partition(b"=")
            if key == VCAP_ID:
                instance = val.decode("latin-1")
            elif key in cookie_names:
                session = True
    if not instance and not session:
        return None
    return StickyRequest(session, instance)


_FORWARDED = (b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Host: %s\r\n"
              b"X-Request-Id: %s\r\nX-Vcap-Request-Id: %s\r\n")
_FORWARDED_START = _FORWARDED + b"X-Request-Start: %d\r\n"
_REPLACED = frozenset({b"x-vcap-request-id", b"x-cf-app-instance", b"x-cf-applicationid",
                       b"x-cf-instanceindex", b"x-cf-instanceid"})
"""Client fields never forwarded: the proxy sets its own (or consumed them for routing)."""


def cf_instance_fields(app: str, index: str, instance_id: str, address: str) -> bytes:
    """gorouter's per-endpoint request fields, encoded once for every request to it.

    ``X-CF-ApplicationID`` and ``X-CF-InstanceIndex`` when known, and
    ``X-CF-InstanceID``: the private instance id, or ``host:port`` when the
    registration gave none. Empty for an endpoint that names neither an app
    nor an instance (nothing would identify it beyond its address). Values
    with line breaks, which a registration could carry, are left out.
    """
    if not app and not instance_id:
        return b""
    fields = [(b"X-CF-ApplicationID", app), (b"X-CF-InstanceIndex", index),
              (b"X-CF-InstanceID", instance_id or address)]
    return b"".join(name + b": " + value.encode() + b"\r\n" for name, value in fields
                    if value and value.isprintable())


def build_request_head(head: RequestHead, *, client_ip: bytes, trusted: bool, proto: bytes,
                       request_id: bytes, start_ms: int, extra: bytes = b"") -> tuple[bytes, bytes]:
    """The head to send upstream and the request id it carries.

    ``extra``: whole field lines, each ending in CRLF, added last as they are.
    What the head's own fields contribute depends on the head and ``trusted``
    alone, so it is worked out once per head (``_forwarding``) and kept on
    it: a head the parser remembered comes back as the same object.
    """
    plan = head.forward_memo
    if plan is None or plan[0] != trusted:
        plan = head.forward_memo = _forwarding(head, trusted)
    _, kept, xff, xf_proto, xf_host, rid, has_start, tail = plan
    rid = rid or request_id
    xff = xff + b", " + client_ip if xff else client_ip
    if has_start:
        fields = _FORWARDED % (xff, xf_proto or proto, xf_host or head.host, rid, rid)
    else:
        fields = _FORWARDED_START % (xff, xf_proto or proto, xf_host or head.host, rid, rid,
                                     start_ms)
    return b"".join((kept, fields, tail, extra, CRLF)), rid


_Forwarding = tuple[bool, bytes, bytes, bytes, bytes, bytes, bool, bytes]
"""``trusted``, request line and kept fields, the client's X-Forwarded-For, -Proto and
-Host (trusted clients only), its X-Request-Id, whether it set X-Request-Start, and the
fields that follow the proxy's own (Upgrade, Transfer-Encoding)."""


_XFF, _XF_PROTO, _XF_HOST, _RID, _START, _CUT, _CONNECTION, _UPGRADE = range(8)
_SPECIAL: dict[bytes, int] = {
    **dict.fromkeys(HOP_BY_HOP, _CUT),
    **dict.fromkeys(_REPLACED, _CUT),
    b"connection": _CONNECTION,
    b"upgrade": _UPGRADE,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _XF_PROTO,
    b"x-forwarded-host": _XF_HOST,
    b"x-request-id": _RID,
    b"x-request-start": _START,
}
"""Request fields the proxy does something with, by lower-case name; others pass as they are."""
_USUAL_CONNECTION = frozenset({b"keep-alive", b"close"})


def _forwarding(head: RequestHead, trusted: bool) -> _Forwarding:
    named: frozenset[bytes] = frozenset()  # what Connection names beyond the usual
    xff = b""
    xf_proto = b""
    xf_host = b""
    rid = b""
    has_start = False
    upgrade = b""
    out = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    append = out.append
    special = _SPECIAL
    for name, value in head.headers:
        lname = name.lower()
        kind = special.get(lname)
        if kind is None or kind == _START:
            if named and lname in named:
                continue
            has_start = has_start or kind == _START
            append(name)
            append(b": ")
            append(value)
            append(CRLF)
        elif kind == _XFF:
            if trusted:
                xff = value if not xff else xff + b", " + value
        elif kind == _XF_PROTO:
            if trusted and not xf_proto:
                xf_proto = value
        elif kind == _XF_HOST:
            if trusted and not xf_host:
                xf_host = value
        elif kind == _RID:
            rid = rid or value
        elif kind == _UPGRADE:
            upgrade = value
        elif kind == _CONNECTION and value.lower() not in _USUAL_CONNECTION:
            # A Connection field may come after the fields it names.
            extra = [token for token in connection_tokens(value)
                     if special.get(token, _START) == _START]  # not set by the proxy anyway
            if extra:
                named = named.union(extra)
                out = _drop_fields(out, 4, named)
                append = out.append
    if has_start and b"x-request-start" in named:
        has_start = False
    tail = b""
    if head.upgrade and upgrade:
        tail = b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n"
    if head.chunked:
        tail += b"Transfer-Encoding: chunked\r\n"
    return (trusted, b"".join(out), xff, xf_proto, xf_host, rid, has_start, tail)


def _drop_fields(parts: list[bytes], start: int, drop: frozenset[bytes]) -> list[bytes]:
    """Remove already-copied fields (``name, ": ", value, CRLF`` after ``start``) now dropped.

    A Connection field may come after the fields it names.
    """
    kept = parts[:start]
    for i in range(start, len(parts), 4):
        if parts[i].lower() not in drop:
            kept.extend(parts[i:i + 4])
    return kept


def build_response_head(head: ResponseHead, *, request_id: bytes, chunk: bool, close: bool,
                        sticky_names: frozenset[bytes], instance_id: str,
                        force_sticky: bool, cookie_path: bytes = b"/",
                        http10: bool = False) -> bytes:
    """The head to send to the client.

    ``chunk``: the proxy frames the body as chunked (the backend sent chunked
    or close-delimited). ``close``: the client connection ends after this
    response; otherwise an HTTP/1.0 client (``http10``) is told
    ``Connection: keep-alive``, without which it must assume the connection
    closes (RFC 9112 section 9.3). ``force_sticky``: set ``__VCAP_ID__`` even
    without a new session cookie (the pinned instance changed). ``instance_id``
    is text and encoded only when a cookie is set, which few responses need.
    """
    status = head.status
    mode = chunk + 2 * close + 4 * http10
    plan = head.forward_memo
    if plan is None or plan[0] != mode or status == 101:
        plan = _response_plan(head, mode)
        if status != 101:
            head.forward_memo = plan  # a head from the parser's memo comes again
    _, before, after, has_rid, has_cookie = plan
    rid = b"" if has_rid else b"X-Vcap-Request-Id: " + request_id + b"\r\n"
    if instance_id and (force_sticky or (sticky_names and has_cookie)):
        session_cookie = b""
        if sticky_names and has_cookie:
            for name, value in head.headers:
                if name.lower() == b"set-cookie" and \
                        value.partition(b"=")[0].strip() in sticky_names:
                    session_cookie = value
        if session_cookie or force_sticky:
            cookie = _vcap_cookie(instance_id.encode(), session_cookie, cookie_path)
            return b"".join((before, rid, b"Set-Cookie: ", cookie, b"\r\n", after))
    return b"".join((before, rid, after))


def _response_plan(head: ResponseHead, mode: int) -> tuple[int, bytes, bytes, bool, bool]:
    """``mode``, the head up to the proxy's own fields, what follows them, and whether the
    backend set X-Vcap-Request-Id and Set-Cookie: all that depends on the head alone."""
    status = head.status
    raw, has_rid, has_cookie = _forwardable(head.raw)
    before = _status_line(head) + raw
    if status == 101:
        upgrade = _field(head.raw, b"\n" + head.raw.lower(), b"upgrade")
        return mode, before, b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n\r\n", \
            has_rid, has_cookie
    after = []
    if mode & 1 and status not in _NO_BODY_STATUSES:
        after.append(b"Transfer-Encoding: chunked\r\n")
    if mode & 2:
        after.append(b"Connection: close\r\n")
    elif mode & 4:
        after.append(b"Connection: keep-alive\r\n")
    after.append(b"\r\n")
    return mode, before, b"".join(after), has_rid, has_cookie


def _status_line(head: ResponseHead) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF, as the client gets it."""
    return b"".join((_STATUS_LINES.get(head.status) or b"HTTP/1.1 %d " % head.status,
                     head.reason, CRLF))


def build_interim_head(head: ResponseHead) -> bytes:
    """An interim (1xx) response as the client gets it: its fields minus hop-by-hop ones.

    A proxy forwards 1xx responses to HTTP/1.1 clients (RFC 9110 section
    15.2), so ``103 Early Hints`` reaches the browser while the backend
    still works on the final response. A 1xx has no content, so a
    Content-Length on one is cut (section 8.6).
    """
    raw = _forwardable(head.raw)[0]
    if b"\ncontent-length:" in b"\n" + raw.lower():
        raw = _cut_fields(raw, [b"content-length"])
    return b"".join((_status_line(head), raw, CRLF))


_HOP_RE = re.compile(b"\n(" + b"|".join(sorted(HOP_BY_HOP)) + b"):")
_FORWARD_CACHE: dict[bytes, tuple[bytes, bool, bool]] = {}
FORWARD_CACHE_SIZE = 512
"""Field blocks remembered by ``_forwardable``: a backend repeats its heads (only
``Date`` changes, once a second), so most responses skip the searches and cuts."""


def _forwardable(raw: bytes) -> tuple[bytes, bool, bool]:
    """``raw`` without hop-by-hop lines, and whether it has X-Vcap-Request-Id and Set-Cookie.

    A pure function of ``raw``, memoised in a small bounded dict.
    """
    hit = _FORWARD_CACHE.get(raw)
    if hit is not None:
        return hit
    key = raw
    lower = b"\n" + raw.lower()
    names = _HOP_RE.findall(lower)
    if names:
        if b"connection" in names:
            names += [token for token in connection_tokens(_field(raw, lower, b"connection"))
                      if token not in (b"close", b"keep-alive")]
        raw = _cut_fields(raw, names)
        lower = b"\n" + raw.lower()
    result = (raw, b"\nx-vcap-request-id:" in lower, b"\nset-cookie:" in lower)
    if len(_FORWARD_CACHE) >= FORWARD_CACHE_SIZE:
        _FORWARD_CACHE.clear()
    _FORWARD_CACHE[key] = result
    return result


def _field(raw: bytes, lower: bytes, name: bytes) -> bytes:
    """The value of the first ``name`` field in a raw field block (``lower`` is its search copy)."""
    at = lower.find(b"\n" + name + b":")
    if at < 0:
        return b""
    end = raw.find(b"\r\n", at)
    return raw[at + len(name) + 1:end].strip(b" \t")


def _cut_fields(raw: bytes, names: list[bytes]) -> bytes:
    """``raw`` without every line whose field name (lower-case) is in ``names``."""
    for name in names:
        marker = b"\n" + name + b":"
        while True:
            at = (b"\n" + raw.lower()).find(marker)
            if at < 0:
                break
            end = raw.find(b"\r\n", at)
            raw = raw[:at] + raw[end + 2:] if end >= 0 else raw[:at]
    return raw


def _vcap_cookie(instance_id: bytes, session_cookie: bytes, path: bytes) -> bytes:
    """``__VCAP_ID__=<id>; Path=...; HttpOnly`` plus lifetime and scope of the session cookie."""
    parts = [VCAP_ID + b"=" + instance_id, b"Path=" + (path or b"/"), b"HttpOnly"]
    for attribute in session_cookie.split(b";")[1:]:
        key = attribute.partition(b"=")[0].strip().lower()
        if key in _STICKY_ATTRIBUTES:
            parts.append(attribute.strip())
    return b"; ".join(parts)
