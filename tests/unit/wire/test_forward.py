"""Head rewriting towards the backend and towards the client."""

from __future__ import annotations

from pointsman.wire.forward import (
    build_interim_head,
    build_request_head,
    build_response_head,
    cf_instance_fields,
    sticky_request,
)
from pointsman.wire.http1 import RequestHead, ResponseHead


def request(*headers: tuple[bytes, bytes], chunked: bool = False,
            upgrade: bool = False) -> RequestHead:
    return RequestHead(b"GET", b"/p?q", "1.1", list(headers), b"h.test", -1, chunked, True,
                       upgrade, False)


def fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [tuple(line.split(b": ", 1)) for line in lines]  # type: ignore[misc]


def rewrite(head: RequestHead, trusted: bool = False) -> list[tuple[bytes, bytes]]:
    raw, _ = build_request_head(head, client_ip=b"10.1.1.1", trusted=trusted, proto=b"http",
                                request_id=b"rid-1", start_ms=1234)
    assert raw.startswith(b"GET /p?q HTTP/1.1\r\n") and raw.endswith(b"\r\n\r\n")
    return fields(raw)


def test_untrusted_client_forwarded_fields_replaced() -> None:
    out = dict(rewrite(request((b"Host", b"h.test"), (b"X-Forwarded-For", b"6.6.6.6"),
                               (b"X-Forwarded-Host", b"evil"))))
    assert out[b"X-Forwarded-For"] == b"10.1.1.1"
    assert out[b"X-Forwarded-Host"] == b"h.test"
    assert out[b"X-Request-Id"] == out[b"X-Vcap-Request-Id"] == b"rid-1"
    assert out[b"X-Request-Start"] == b"1234"


def test_trusted_client_forwarded_for_appended() -> None:
    out = dict(rewrite(request((b"Host", b"h"), (b"X-Forwarded-For", b"1.1.1.1"),
                               (b"x-forwarded-for", b"2.2.2.2"), (b"X-Forwarded-Proto", b"https")),
                       trusted=True))
    assert out[b"X-Forwarded-For"] == b"1.1.1.1, 2.2.2.2, 10.1.1.1"
    assert out[b"X-Forwarded-Proto"] == b"https"


def test_hop_by_hop_and_connection_named_fields_removed() -> None:
    out = rewrite(request((b"X-Early", b"1"), (b"Host", b"h"), (b"Keep-Alive", b"5"),
                          (b"Connection", b"x-early, X-Late"), (b"X-Late", b"2"), (b"TE", b"x"),
                          (b"Accept", b"*/*")))
    names = [name.lower() for name, _ in out]
    for gone in (b"x-early", b"x-late", b"keep-alive", b"connection", b"te"):
        assert gone not in names
    assert b"accept" in names and b"host" in names


def test_a_request_start_named_by_connection_is_replaced_by_the_proxys_own() -> None:
    start = (b"X-Request-Start", b"99")
    for fields_in in ((start, (b"Connection", b"X-Request-Start")),
                      ((b"Connection", b"X-Request-Start"), start)):
        out = rewrite(request((b"Host", b"h"), *fields_in))
        assert [value for name, value in out if name == b"X-Request-Start"] == [b"1234"]
    kept = rewrite(request((b"Host", b"h"), start, (b"Connection", b"keep-alive")))
    assert [value for name, value in kept if name == b"X-Request-Start"] == [b"99"]


def test_chunked_and_upgrade_are_announced_again() -> None:
    out = rewrite(request((b"Host", b"h"), (b"Transfer-Encoding", b"chunked"), chunked=True))
    assert (b"Transfer-Encoding", b"chunked") in out
    out = rewrite(request((b"Host", b"h"), (b"Connection", b"Upgrade"),
                          (b"Upgrade", b"websocket"), upgrade=True))
    assert (b"Connection", b"Upgrade") in out and (b"Upgrade", b"websocket") in out


def test_response_head_framing_and_sticky_cookie() -> None:
    raw = (b"Set-Cookie: JSESSIONID=x; Max-Age=60; Secure\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: keep-alive, X-Gone\r\nX-Gone: 1\r\nX-Kept: 2\r\n")
    head = ResponseHead(200, b"OK", "1.1", raw, -1, True, True)
    raw = build_response_head(head, request_id=b"r", chunk=True, close=False,
                              sticky_names=frozenset({b"JSESSIONID"}), instance_id="i-1",
                              force_sticky=False)
    out = fields(raw)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (b"Transfer-Encoding", b"chunked") in out and (b"X-Vcap-Request-Id", b"r") in out
    assert (b"Set-Cookie", b"__VCAP_ID__=i-1; Path=/; HttpOnly; Max-Age=60; Secure") in out
    assert not any(name in (b"Connection", b"X-Gone") for name, _ in out)
    assert (b"X-Kept", b"2") in out


def test_a_shared_head_is_rewritten_for_each_connection_and_request() -> None:
    """What a head contributes is kept on it; trust, client and request id still count."""
    head = request((b"Host", b"h.test"), (b"X-Forwarded-For", b"6.6.6.6"))
    for trusted in (False, True, False):
        raw, rid = build_request_head(head, client_ip=b"10.1.1.%d" % trusted, trusted=trusted,
                                      proto=b"https", request_id=b"rid-%d" % trusted,
                                      start_ms=7)
        out = dict(fields(raw))
        assert out[b"X-Forwarded-For"] == (b"6.6.6.6, 10.1.1.1" if trusted else b"10.1.1.0")
        assert out[b"X-Vcap-Request-Id"] == rid == b"rid-%d" % trusted
        assert out[b"X-Forwarded-Proto"] == b"https"


def test_a_rewritten_head_is_forwarded_with_its_own_fields() -> None:
    """A copy with other fields must not reuse what was worked out for the original."""
    head = request((b"Host", b"h.test"), (b"Accept", b"*/*"))
    rewrite(head)  # the original's forwarding plan is now kept on it
    copy = head.rewritten([(b"Host", b"svc.test"), (b"X-Cf-Proxy-Signature", b"s")], b"/svc")
    raw, _ = build_request_head(copy, client_ip=b"10.1.1.1", trusted=False, proto=b"http",
                                request_id=b"r", start_ms=1)
    assert raw.startswith(b"GET /svc HTTP/1.1\r\nHost: svc.test\r\nX-Cf-Proxy-Signature: s\r\n")
    assert copy.route_memo is None and b"Accept" not in raw


def test_a_shared_response_head_takes_each_framing_and_cookie() -> None:
    head = ResponseHead(200, b"OK", "1.1", b"Set-Cookie: JSESSIONID=x\r\n", 5, False, True)

    def build(chunk: bool, close: bool, instance: str = "") -> bytes:
        return build_response_head(head, request_id=b"r", chunk=chunk, close=close,
                                   sticky_names=frozenset({b"JSESSIONID"}),
                                   instance_id=instance, force_sticky=False)

    assert build(False, False).endswith(b"X-Vcap-Request-Id: r\r\n\r\n")
    assert build(True, True).endswith(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    assert b"__VCAP_ID__=i-2" in build(True, True, "i-2")
    assert build(False, False) == build(False, False)


def test_interim_head_keeps_its_fields_but_not_hop_by_hop_ones() -> None:
    raw = (b"Link: </a.css>; rel=preload\r\nConnection: X-Gone\r\nX-Gone: 1\r\n"
           b"Content-Length: 0\r\n")
    out = build_interim_head(ResponseHead(103, b"Early Hints", "1.1", raw, -1, False, True))
    assert out == b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"


def test_sticky_request_reads_cookies() -> None:
    head = request((b"Host", b"h"), (b"Cookie", b"a=1; JSESSIONID=s; __VCAP_ID__=i-9"))
    sticky = sticky_request(head, frozenset({b"JSESSIONID"}))
    assert sticky is not None and sticky.has_session and sticky.instance_id == "i-9"
    assert sticky_request(request((b"Host", b"h")), frozenset({b"JSESSIONID"})) is None


def test_instance_fields_are_appended_and_client_copies_dropped() -> None:
    extra = cf_instance_fields("guid", "2", "inst-9", "10.0.0.1:80")
    assert extra == (b"X-CF-ApplicationID: guid\r\nX-CF-InstanceIndex: 2\r\n"
                     b"X-CF-InstanceID: inst-9\r\n")
    head = request((b"Host", b"h"), (b"X-CF-InstanceID", b"forged"),
                   (b"x-cf-applicationid", b"forged"), (b"X-Cf-InstanceIndex", b"7"))
    raw, _ = build_request_head(head, client_ip=b"10.1.1.1", trusted=True, proto=b"http",
                                request_id=b"rid-1", start_ms=1, extra=extra)
    out = fields(raw)
    assert [(n, v) for n, v in out if n.lower().startswith(b"x-cf-")] == [
        (b"X-CF-ApplicationID", b"guid"), (b"X-CF-InstanceIndex", b"2"),
        (b"X-CF-InstanceID", b"inst-9")]
    assert raw.endswith(b"X-CF-InstanceID: inst-9\r\n\r\n")


def test_instance_fields_fall_back_to_address_and_skip_unknowns() -> None:
    assert cf_instance_fields("guid", "", "", "[::1]:8080") == (
        b"X-CF-ApplicationID: guid\r\nX-CF-InstanceID: [::1]:8080\r\n")
    assert cf_instance_fields("", "", "", "10.0.0.1:80") == b""
    # A value that would break the head is left out rather than sent.
    assert cf_instance_fields("bad\r\nX-Evil: 1", "0", "i", "a:1") == (
        b"X-CF-InstanceIndex: 0\r\nX-CF-InstanceID: i\r\n")
