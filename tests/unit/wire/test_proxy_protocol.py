"""proxy_protocol: v1 and v2 headers (one captured from haproxy 2.6), round trips, fuzzing."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire import proxy_protocol as pp
from pointsman.wire.proxy_protocol import NEED_DATA, ProxyHeader, ProxyProtocolError


def three_ways(parse: Callable[[bytes], Any], data: bytes, trailing: bytes = b"hello") -> Any:
    """Feed ``data`` whole, as every prefix, and with trailing bytes; expect one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(memoryview(data)) == whole
    return whole


# haproxy 2.6, `send-proxy-v2 proxy-v2-options crc32c,unique-id`, unique-id-format abc123.
HAPROXY_V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n!\x11\x00\x1c\x7f\x00\x00\x01\x7f\x00\x00\x01\xa3\xa8\x95\xab"
    b"\x03\x00\x04@:\xbd\x07\x05\x00\x06abc123"
)


def test_haproxy_v2_header_with_tlvs() -> None:
    header = three_ways(pp.parse, HAPROXY_V2)
    assert header == ProxyHeader(
        version=2,
        command="PROXY",
        family="TCP4",
        source=("127.0.0.1", 0xA3A8),
        destination=("127.0.0.1", 0x95AB),
        length=len(HAPROXY_V2),
        tlvs=((0x03, b"@:\xbd\x07"), (0x05, b"abc123")),
    )


@pytest.mark.parametrize(
    ("line", "family", "src", "dst"),
    [
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", "TCP4", ("192.0.2.1", 56324),
         ("198.51.100.7", 443)),
        (b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", "TCP6", ("2001:db8::1", 1), ("::1", 65535)),
        (b"PROXY UNKNOWN\r\n", "UNKNOWN", None, None),
        (b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 0\r\n", "UNKNOWN", None, None),
    ],
)  # fmt: skip
def test_v1_lines(line: bytes, family: str, src: Any, dst: Any) -> None:
    header = three_ways(pp.parse, line)
    assert (header.version, header.family, header.source, header.destination) == (
        1,
        family,
        src,
        dst,
    )
    assert header.length == len(line)


def test_v1_longest_line_fits_the_limit() -> None:
    v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = f"PROXY TCP6 {v6} {v6} 65535 65535\r\n".encode()
    assert len(line) == pp.MAX_V1_LENGTH - 3  # UNKNOWN with both addresses is the 107
    assert three_ways(pp.parse, line).source == (v6, 65535)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01",
        b"PROXX",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # bare LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # missing field
        b"PROXY TCP4 ::1 ::1 1 2\r\n",  # wrong family
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
        b"PROXY " + b"x" * 120,  # no CRLF within the limit
        b"\r\n\r\n\x00\r\nQUIT\r",  # bad signature
        b"\r\n\r\n\x00\r\nQUIT\n\x11",  # version 1 in a v2 header
        b"\r\n\r\n\x00\r\nQUIT\n\x22",  # command 2
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x41",  # family 4
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x13",  # transport 3
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04",  # too short for INET
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0e" + b"\x00" * 12 + b"\x01\x00",  # bad TLV
    ],
)
def test_not_a_proxy_header(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        pp.parse(data)


def test_v2_local_and_unspec() -> None:
    local = pp.encode_v2(None, None)
    assert local == pp.V2_SIGNATURE + b"\x20\x00\x00\x00"
    header = three_ways(pp.parse, local)
    assert (header.command, header.source, header.destination) == ("LOCAL", None, None)
    # LOCAL may still carry an address block, which is skipped.
    local_with_block = pp.V2_SIGNATURE + b"\x20\x11\x00\x0c" + b"\x01" * 12
    assert three_ways(pp.parse, local_with_block).length == 28
    unspec = pp.V2_SIGNATURE + b"\x21\x00\x00\x03abc"
    assert three_ways(pp.parse, unspec) == ProxyHeader(2, "PROXY", "UNKNOWN", None, None, 19)


def test_v2_unix_and_udp() -> None:
    body = b"/run/a.sock".ljust(108, b"\x00") + b"/run/b.sock".ljust(108, b"\x00")
    data = pp.V2_SIGNATURE + b"\x21\x31" + struct.pack("!H", len(body)) + body
    header = three_ways(pp.parse, data)
    assert (header.family, header.source, header.destination) == (
        "UNIX",
        "/run/a.sock",
        "/run/b.sock",
    )
    udp = (
        pp.V2_SIGNATURE + b"\x21\x12\x00\x0c" + b"\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x35\x00\x36"
    )
    header = three_ways(pp.parse, udp)
    assert (header.family, header.source, header.destination) == (
        "UDP4",
        ("10.0.0.1", 53),
        ("10.0.0.2", 54),
    )


def test_encode_round_trips() -> None:
    for src, dst in [
        (("192.0.2.1", 1234), ("127.0.0.1", 80)),
        (("2001:db8::5", 1), ("::1", 65535)),
        (("::ffff:10.1.2.3", 9), ("10.0.0.9", 8)),  # v4-mapped becomes v4
        (("10.1.2.3", 9), ("::1", 8)),  # mixed: both as IPv6
    ]:
        for encode in (pp.encode_v1, pp.encode_v2):
            data = encode(src, dst)
            header = pp.parse(data + b"payload")
            assert isinstance(header, ProxyHeader)
            assert header.length == len(data)
            assert header.source is not None and header.destination is not None
            assert isinstance(header.source, tuple) and header.source[1] == src[1]
            assert isinstance(header.destination, tuple) and header.destination[1] == dst[1]
    assert pp.encode_v1(None, None) == b"PROXY UNKNOWN\r\n"
    # getpeername() on an IPv6 socket gives four fields, maybe with a zone
    peer = ("fe80::1%eth0", 4000, 0, 2)
    assert pp.encode_v1(peer, ("fe80::2", 80, 0, 2)) == b"PROXY TCP6 fe80::1 fe80::2 4000 80\r\n"
    header = pp.parse(pp.encode_v2(peer, ("::1", 80, 0, 0)))
    assert isinstance(header, ProxyHeader) and header.source == ("fe80::1", 4000)
    assert pp.encode_v1(("1.2.3.4", 5), ("6.7.8.9", 10)) == b"PROXY TCP4 1.2.3.4 6.7.8.9 5 10\r\n"
    tlv = pp.encode_v2(("1.2.3.4", 5), ("6.7.8.9", 10), tlvs=((0x02, b"example.com"),))
    assert three_ways(pp.parse, tlv).tlvs == ((0x02, b"example.com"),)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(("example.com", 1), ("1.2.3.4", 2)), (("1.2.3.4", 70000), ("1.2.3.4", 2))],
)
def test_encode_refuses_bad_addresses(src: tuple[str, int], dst: tuple[str, int]) -> None:
    with pytest.raises(ProxyProtocolError):
        pp.encode_v1(src, dst)
    with pytest.raises(ProxyProtocolError):
        pp.encode_v2(src, dst)


# -- properties ---------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
ports = st.integers(0, 65535)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)),
    st.tuples(ports, ports),
    st.sampled_from([1, 2]),
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=3),
)
def test_encoded_headers_parse_the_same_every_way(
    hosts: tuple[str, str], port_pair: tuple[int, int], version: int, tlvs: list[tuple[int, bytes]]
) -> None:
    src, dst = (hosts[0], port_pair[0]), (hosts[1], port_pair[1])
    data = pp.encode_v1(src, dst) if version == 1 else pp.encode_v2(src, dst, tlvs=tuple(tlvs))
    header = three_ways(pp.parse, data)
    assert (header.source, header.destination) == (src, dst)
    assert header.tlvs == (tuple(tlvs) if version == 2 else ())


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.binary(max_size=80).map(lambda b: b"PROXY " + b)))
def test_arbitrary_bytes_raise_only_proxy_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProxyProtocolError):
        pp.parse(data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(HAPROXY_V2) - 1), st.integers(0, 255)), max_size=3))
def test_mutated_v2_headers_raise_only_proxy_protocol_error(edits: list[tuple[int, int]]) -> None:
    data = bytearray(HAPROXY_V2)
    for pos, value in edits:
        data[pos] = value
    refused_at = None
    for cut in range(len(data) + 1):
        try:
            pp.parse(bytes(data[:cut]))
        except ProxyProtocolError:
            refused_at = cut if refused_at is None else refused_at
        else:  # a refusal is final: routers.first relies on it
            assert refused_at is None, f"refused {refused_at} bytes, accepted {cut}"
