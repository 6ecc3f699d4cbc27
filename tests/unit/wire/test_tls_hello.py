"""tls_hello: real OpenSSL ClientHellos, hand-built ones split across records, and fuzzing."""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire import tls_hello
from pointsman.wire.tls_hello import NEED_DATA, ClientHello, TlsHelloError, TlsHelloTooLarge


def three_ways(
    parse: Callable[[bytes], Any], data: bytes, trailing: bytes = b"\x17\x03\x03"
) -> Any:
    """Feed ``data`` whole, as every prefix, and with trailing bytes; expect one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(bytearray(data)) == whole
    return whole


def openssl_hello(server_name: str | None, alpn: list[str] | None = None) -> bytes:
    """The first flight of a real OpenSSL client."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def sni_ext(name: bytes) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return ext(0, struct.pack("!H", len(entry)) + entry)


def alpn_ext(protocols: list[bytes]) -> bytes:
    items = b"".join(bytes([len(p)]) + p for p in protocols)
    return ext(16, struct.pack("!H", len(items)) + items)


def versions_ext(versions: list[int]) -> bytes:
    return ext(43, bytes([2 * len(versions)]) + struct.pack(f"!{len(versions)}H", *versions))


def hello_body(extensions: bytes | None, session_id: bytes = b"\x01" * 32) -> bytes:
    body = b"\x03\x03" + b"\x00" * 32 + bytes([len(session_id)]) + session_id
    body += b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    if extensions is not None:
        body += struct.pack("!H", len(extensions)) + extensions
    return body


def records(body: bytes, sizes: list[int] | None = None, msg_type: int = 1) -> bytes:
    """Wrap a ClientHello body in a handshake header and split it into records."""
    message = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
    out = bytearray()
    pos = 0
    for size in sizes or []:
        if pos >= len(message):
            break
        chunk = message[pos : pos + size]
        out += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
        pos += len(chunk)
    if pos < len(message):
        chunk = message[pos:]
        out += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
    return bytes(out)


def test_real_openssl_hello_names_server_and_alpn() -> None:
    data = openssl_hello("api.example.com", ["h2", "http/1.1"])
    hello = three_ways(tls_hello.parse, data)
    assert isinstance(hello, ClientHello)
    assert hello.server_name == "api.example.com"
    assert hello.alpn_protocols == ("h2", "http/1.1")
    assert hello.legacy_version == 0x0303
    assert 0x0304 in hello.supported_versions
    assert hello.max_version == 0x0304
    assert hello.length == len(data)
    assert 0 in hello.extension_types and 16 in hello.extension_types


def test_real_openssl_hello_without_sni() -> None:
    hello = tls_hello.parse(openssl_hello(None))
    assert isinstance(hello, ClientHello)
    assert hello.server_name is None
    assert hello.alpn_protocols == ()


@pytest.mark.parametrize("sizes", [[1], [3], [4], [50], [10, 10, 10], [1, 1, 1, 1, 1]])
def test_hello_spanning_records(sizes: list[int]) -> None:
    body = hello_body(sni_ext(b"db.example") + alpn_ext([b"postgresql"]))
    data = records(body, sizes)
    hello = three_ways(tls_hello.parse, data)
    assert hello.server_name == "db.example"
    assert hello.alpn_protocols == ("postgresql",)
    assert hello.length == len(data)


def test_hello_without_extensions_is_an_old_client() -> None:
    hello = three_ways(tls_hello.parse, records(hello_body(None)))
    assert hello.server_name is None
    assert hello.supported_versions == ()
    assert hello.max_version == 0x0303


def test_grease_versions_are_ignored_for_max_version() -> None:
    hello = tls_hello.parse(records(hello_body(versions_ext([0x3A3A, 0x0304, 0x0303]))))
    assert isinstance(hello, ClientHello)
    assert hello.supported_versions == (0x3A3A, 0x0304, 0x0303)
    assert hello.max_version == 0x0304


@pytest.mark.parametrize(
    "prefix",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL SSLRequest
        b"\x15\x03\x03\x00\x02\x02\x28",  # an alert, not a handshake
        b"\x16\x02",  # SSL 2 major
        b"\x16\x03\x09",  # unknown minor
        b"\x16\x03\x01\x00\x00",  # empty record
        b"\x16\x03\x01\x40\x01",  # record over 2^14
        b"\x16\x03\x01\x00\x10\x02",  # ServerHello
        b"\x80\x2e\x01\x03\x01",  # SSLv2-compatible hello
    ],
)
def test_not_a_client_hello_fails_at_once(prefix: bytes) -> None:
    with pytest.raises(TlsHelloError):
        tls_hello.parse(prefix)


def test_too_large_is_refused_from_the_header() -> None:
    header = b"\x16\x03\x01\x40\x00\x01" + (tls_hello.MAX_HELLO_BYTES + 1).to_bytes(3, "big")
    with pytest.raises(TlsHelloTooLarge) as info:
        tls_hello.parse(header)
    assert info.value.limit == tls_hello.MAX_HELLO_BYTES
    assert tls_hello.parse(header, max_size=1 << 20) is NEED_DATA


@pytest.mark.parametrize(
    "extensions",
    [
        sni_ext(b"a.example") + sni_ext(b"b.example"),  # duplicate extension
        sni_ext(b"caf\xc3\xa9.example"),  # not ASCII
        sni_ext(b""),  # empty host name
        alpn_ext([b""]),  # empty protocol
        ext(16, b"\x00\x00"),  # empty ALPN list
        ext(43, b"\x03\x03\x04\x03"),  # odd versions length
        ext(0, b"\x00\x05\x00\x00\x09ab"),  # name overruns
        b"\x00\x00\x00",  # truncated extension header
    ],
)
def test_malformed_extensions(extensions: bytes) -> None:
    with pytest.raises(TlsHelloError):
        tls_hello.parse(records(hello_body(extensions)))


def test_extra_handshake_bytes_in_the_record_are_refused() -> None:
    data = bytearray(records(hello_body(sni_ext(b"x.example"))))
    data += b"\x00"
    data[3:5] = struct.pack("!H", len(data) - 5)
    with pytest.raises(TlsHelloError):
        tls_hello.parse(bytes(data))


def test_alert_record() -> None:
    assert tls_hello.alert() == b"\x15\x03\x03\x00\x02\x02\x70"


# -- properties ---------------------------------------------------------------

hostnames = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}\Z")
protocols = st.lists(st.binary(min_size=1, max_size=12), max_size=4)


@settings(max_examples=100, deadline=None)
@given(
    name=st.none() | hostnames,
    alpn=protocols,
    versions=st.lists(st.integers(0x0300, 0x0304), min_size=1, max_size=4),
    sizes=st.lists(st.integers(1, 64), max_size=5),
)
def test_generated_hellos_parse_the_same_every_way(
    name: str | None, alpn: list[bytes], versions: list[int], sizes: list[int]
) -> None:
    extensions = versions_ext(versions)
    if name is not None:
        extensions = sni_ext(name.encode()) + extensions
    if alpn:
        extensions += alpn_ext(alpn)
    data = records(hello_body(extensions), sizes)
    hello = three_ways(tls_hello.parse, data)
    assert hello.server_name == name
    assert hello.alpn_protocols == tuple(p.decode("latin-1") for p in alpn)
    assert hello.supported_versions == tuple(versions)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_tls_hello_error(data: bytes) -> None:
    with contextlib.suppress(TlsHelloError):
        tls_hello.parse(data)


REAL = openssl_hello("fuzz.example", ["h2"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=4))
def test_mutated_real_hellos_raise_only_tls_hello_error(edits: list[tuple[int, int]]) -> None:
    data = bytearray(REAL)
    for pos, value in edits:
        data[pos] = value
    refused_at = None
    for cut in range(len(data) + 1):
        try:
            tls_hello.parse(bytes(data[:cut]))
        except TlsHelloError:
            refused_at = cut if refused_at is None else refused_at
        else:  # a refusal is final: routers.first relies on it
            assert refused_at is None, f"refused {refused_at} bytes, accepted {cut}"
