"""HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), both ways.

A load balancer in front of pointsman prepends one header to each connection
naming the original client; pointsman reads it (``parse``) so routing, logs
and limits see the real client. Toward a backend, pointsman writes one
(``encode_v1``, ``encode_v2``) so the backend sees the client too.

``parse`` follows the specification (haproxy's doc/proxy-protocol.txt):

* v1: ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or
  ``PROXY UNKNOWN ...\\r\\n``, at most ``MAX_V1_LENGTH`` bytes.
* v2: a 12-byte signature, version/command, family/transport, a length, the
  addresses (INET, INET6 or UNIX), then TLVs, which are kept raw as
  ``(type, value)`` pairs. The ``LOCAL`` command (a health check from the
  balancer itself) carries no client: its addresses are ``None``.

Addresses are ``(host, port)`` for INET/INET6, the path for UNIX, ``None`` when
unknown. ``ProxyHeader.length`` is how many bytes the header occupies.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, Final

from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.peek import NEED_DATA, NeedData

__all__ = [
    "MAX_V1_LENGTH",
    "NEED_DATA",
    "V2_SIGNATURE",
    "Address",
    "ProxyHeader",
    "ProxyProtocolError",
    "SocketAddress",
    "encode_v1",
    "encode_v2",
    "parse",
]

#: The longest v1 line, CRLF included (the specification's own bound).
MAX_V1_LENGTH: Final = 107
V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_HEADER = struct.Struct("!12sBBH")
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")
_UNIX_PATH = 108

FAMILIES: Final = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}
TRANSPORTS: Final = {0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM"}

Address = tuple[str, int] | str | None
#: What encoders accept: ``(host, port)``, or a socket's IPv6 4-tuple.
SocketAddress = tuple[Any, ...]


class ProxyProtocolError(RemoteProtocolError, ValueError):
    """The bytes are not a valid PROXY protocol header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One PROXY protocol header.

    ``command`` is ``"PROXY"`` (a relayed connection) or ``"LOCAL"`` (the
    balancer's own, e.g. a health check). ``family`` is ``"TCP4"``, ``"TCP6"``,
    ``"UDP4"``, ``"UDP6"``, ``"UNIX"``, ``"UNIX_DGRAM"`` or ``"UNKNOWN"``.
    """

    version: int
    command: str
    family: str
    source: Address
    destination: Address
    length: int
    tlvs: tuple[tuple[int, bytes], ...] = ()


def parse(buf: bytes | bytearray | memoryview) -> ProxyHeader | NeedData:
    """Read the header at the start of ``buf``; ``NEED_DATA`` while incomplete."""
    have = len(buf)
    if have == 0:
        return NEED_DATA
    if buf[0] == 0x0D:
        return _parse_v2(buf, have)
    if buf[0] == 0x50:  # "P"
        return _parse_v1(buf, have)
    raise ProxyProtocolError("no PROXY protocol header")


# -- version 1 -----------------------------------------------------------------


def _parse_v1(buf: bytes | bytearray | memoryview, have: int) -> ProxyHeader | NeedData:
    head = bytes(buf[: min(have, MAX_V1_LENGTH)])
    end = head.find(b"\r\n")
    if end < 0:
        if not (V1_PREFIX.startswith(head[:6]) and len(head) < MAX_V1_LENGTH):
            raise ProxyProtocolError("no PROXY v1 line within its length limit")
        if b"\n" in head or b"\r" in head[:-1]:
            raise ProxyProtocolError("stray line break in PROXY v1 line")
        return NEED_DATA
    line = head[:end]
    if not line.startswith(V1_PREFIX):
        raise ProxyProtocolError("not a PROXY v1 line")
    parts = line[6:].split(b" ")
    proto = parts[0]
    if proto == b"UNKNOWN":
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None, end + 2)
    if proto not in (b"TCP4", b"TCP6") or len(parts) != 5:
        raise ProxyProtocolError("PROXY v1 line needs TCP4|TCP6 and four fields")
    version = 4 if proto == b"TCP4" else 6
    src = _v1_address(parts[1], version)
    dst = _v1_address(parts[2], version)
    sport, dport = _v1_port(parts[3]), _v1_port(parts[4])
    return ProxyHeader(1, "PROXY", proto.decode(), (src, sport), (dst, dport), end + 2)


def _v1_address(raw: bytes, version: int) -> str:
    if version == 4:  # the common case, without ipaddress's cost
        parts = raw.split(b".")
        if len(parts) != 4 or not all(
            p.isdigit() and len(p) <= 3 and (len(p) == 1 or p[0] != 0x30) and int(p) <= 255
            for p in parts
        ):
            raise ProxyProtocolError(f"bad IPv4 address {raw[:40]!r}")
        return raw.decode("ascii")
    try:
        address = ipaddress.ip_address(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProxyProtocolError(f"bad address {raw[:40]!r}") from exc
    if address.version != version:
        raise ProxyProtocolError(f"address {address} is not IPv{version}")
    return str(address)


def _v1_port(raw: bytes) -> int:
    if not raw.isdigit() or len(raw) > 5 or (len(raw) > 1 and raw[:1] == b"0"):
        raise ProxyProtocolError(f"bad port {raw[:8]!r}")
    port = int(raw)
    if port > 65535:
        raise ProxyProtocolError(f"port {port} out of range")
    return port


# -- version 2 -----------------------------------------------------------------


def _parse_v2(buf: bytes | bytearray | memoryview, have: int) -> ProxyHeader | NeedData:
    sig = bytes(buf[: min(have, 12)])
    if not V2_SIGNATURE.startswith(sig):
        raise ProxyProtocolError("not a PROXY v2 signature")
    if have >= 13:
        ver_cmd = buf[12]
        if ver_cmd >> 4 != 2:
            raise ProxyProtocolError(f"PROXY protocol version {ver_cmd >> 4}")
        if ver_cmd & 0xF > 1:
            raise ProxyProtocolError(f"unknown PROXY v2 command {ver_cmd & 0xF}")
    if have >= 14:
        fam = buf[13]
        if fam >> 4 not in FAMILIES or fam & 0xF not in TRANSPORTS:
            raise ProxyProtocolError(f"unknown PROXY v2 family {fam:#04x}")
    if have < _V2_HEADER.size:
        return NEED_DATA
    _, ver_cmd, fam, size = _V2_HEADER.unpack_from(buf, 0)
    family, transport = fam >> 4, fam & 0xF
    needed = {1: _V2_INET.size, 2: _V2_INET6.size, 3: 2 * _UNIX_PATH}.get(family, 0)
    local = ver_cmd & 0xF == 0
    if size < needed and not local:
        raise ProxyProtocolError(f"PROXY v2 length {size} too short for its addresses")
    total = _V2_HEADER.size + size
    if have < total:
        return NEED_DATA
    if local:
        return ProxyHeader(2, "LOCAL", "UNKNOWN", None, None, total)
    body = memoryview(buf)[_V2_HEADER.size : total]
    src: Address = None
    dst: Address = None
    if family in (1, 2) and transport:
        unpacker = _V2_INET if family == 1 else _V2_INET6
        s_raw, d_raw, sport, dport = unpacker.unpack_from(body, 0)
        if family == 1:
            src = ("{}.{}.{}.{}".format(*s_raw), sport)
            dst = ("{}.{}.{}.{}".format(*d_raw), dport)
        else:
            src = (str(ipaddress.IPv6Address(s_raw)), sport)
            dst = (str(ipaddress.IPv6Address(d_raw)), dport)
        name = ("TCP" if transport == 1 else "UDP") + ("4" if family == 1 else "6")
    elif family == 3 and transport:
        src = _unix_path(body[:_UNIX_PATH])
        dst = _unix_path(body[_UNIX_PATH : 2 * _UNIX_PATH])
        name = "UNIX" if transport == 1 else "UNIX_DGRAM"
    else:  # AF_UNSPEC or no transport: the addresses and what follows are ignored
        return ProxyHeader(2, "PROXY", "UNKNOWN", None, None, total)
    return ProxyHeader(2, "PROXY", name, src, dst, total, _tlvs(body[needed:]))


def _unix_path(raw: memoryview) -> str:
    data = bytes(raw)
    return data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _tlvs(raw: memoryview) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 3 > end:
            raise ProxyProtocolError("truncated TLV header")
        kind = raw[pos]
        length = (raw[pos + 1] << 8) | raw[pos + 2]
        pos += 3
        if pos + length > end:
            raise ProxyProtocolError(f"TLV {kind:#04x} overruns the header")
        out.append((kind, bytes(raw[pos : pos + length])))
        pos += length
    return tuple(out)


# -- encoding --------------------------------------------------------------------


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # no zone on the wire
    except ValueError as exc:
        raise ProxyProtocolError(f"not an IP address: {host!r}") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _as_v6(address: _IP) -> _IP:
    return ipaddress.IPv6Address(f"::ffff:{address}") if address.version == 4 else address


def _pair(src: SocketAddress, dst: SocketAddress) -> tuple[_IP, _IP]:
    s, d = _ip(src[0]), _ip(dst[0])
    if s.version != d.version:  # mixed families: express both as IPv6
        s, d = _as_v6(s), _as_v6(d)
    for port in (src[1], dst[1]):
        if not 0 <= port <= 65535:
            raise ProxyProtocolError(f"port {port} out of range")
    return s, d


def encode_v1(src: SocketAddress | None, dst: SocketAddress | None) -> bytes:
    """A v1 line for a TCP connection from ``src`` to ``dst``; UNKNOWN without them.

    Addresses are ``(host, port)`` or what ``getpeername()`` gives for IPv6
    (``(host, port, flowinfo, scope_id)``); a host's ``%zone`` is dropped.
    """
    if src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    s, d = _pair(src, dst)
    proto = "TCP4" if s.version == 4 else "TCP6"
    return f"PROXY {proto} {s} {d} {src[1]} {dst[1]}\r\n".encode("ascii")


def encode_v2(
    src: SocketAddress | None,
    dst: SocketAddress | None,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A v2 header for a TCP connection; the LOCAL command without addresses."""
    extra = b"".join(struct.pack("!BH", kind, len(value)) + value for kind, value in tlvs)
    if src is None or dst is None:
        return _V2_HEADER.pack(V2_SIGNATURE, 0x20, 0x00, len(extra)) + extra
    s, d = _pair(src, dst)
    if s.version == 4:
        body = _V2_INET.pack(s.packed, d.packed, src[1], dst[1])
        fam = 0x11
    else:
        body = _V2_INET6.pack(s.packed, d.packed, src[1], dst[1])
        fam = 0x21
    body += extra
    if len(body) > 0xFFFF:
        raise ProxyProtocolError("PROXY v2 header too long")
    return _V2_HEADER.pack(V2_SIGNATURE, 0x21, fam, len(body)) + body
