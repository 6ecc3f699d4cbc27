"""Peek at a TLS ClientHello without terminating TLS.

A TCP router that routes by SNI only needs the first handshake message: the
ClientHello names the server (``server_name``), the application protocols the
client offers (ALPN) and the versions it speaks. This module reads those from
the buffered bytes and leaves the bytes untouched, so they can be replayed to
the chosen backend, which terminates TLS itself.

The ClientHello may span several TLS records (post-quantum key shares make it
larger than one record in some clients); the record fragments are joined only
in that case. ``parse`` raises ``TlsHelloError`` as soon as the bytes cannot
be a ClientHello, so a router can try another protocol at once, and
``TlsHelloTooLarge`` when the announced message exceeds ``MAX_HELLO_BYTES``.

``alert`` builds the fatal alert record a router sends when it has no backend
for the name (``unrecognized_name``), so the client reports a TLS error rather
than an unexpected end of stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from pointsman.wire.errors import RemoteProtocolError, TooLarge
from pointsman.wire.peek import NEED_DATA, NeedData

__all__ = [
    "ALERT_HANDSHAKE_FAILURE",
    "ALERT_UNRECOGNIZED_NAME",
    "MAX_HELLO_BYTES",
    "NEED_DATA",
    "ClientHello",
    "TlsHelloError",
    "TlsHelloTooLarge",
    "alert",
    "parse",
]

#: Largest ClientHello (handshake body) accepted. Real ones are 200 bytes to
#: about 2 KiB (a hybrid post-quantum key share); 32 KiB leaves room for big
#: PSK identities while bounding what an unauthenticated peer makes us buffer.
MAX_HELLO_BYTES: Final = 32 * 1024

#: A TLSPlaintext fragment is at most 2^14 bytes (RFC 8446 section 5.1).
MAX_RECORD_PAYLOAD: Final = 1 << 14

CONTENT_HANDSHAKE: Final = 0x16
CONTENT_ALERT: Final = 0x15
HANDSHAKE_CLIENT_HELLO: Final = 0x01
EXT_SERVER_NAME: Final = 0x0000
EXT_ALPN: Final = 0x0010
EXT_SUPPORTED_VERSIONS: Final = 0x002B
ALERT_HANDSHAKE_FAILURE: Final = 40
ALERT_UNRECOGNIZED_NAME: Final = 112

_RECORD_HEADER = 5
_HANDSHAKE_HEADER = 4
_U16 = struct.Struct("!H")
_EXT_HEADER = struct.Struct("!HH")
_WANTED = frozenset((EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS))


class TlsHelloError(RemoteProtocolError, ValueError):
    """The bytes are not (the start of) a TLS ClientHello."""


class TlsHelloTooLarge(TlsHelloError, TooLarge):
    """The ClientHello announces more bytes than the limit allows."""

    def __init__(self, size: int, limit: int) -> None:
        TooLarge.__init__(self, "ClientHello", size, limit)


def _is_grease(value: int) -> bool:
    # RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA.
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a ClientHello says about where it wants to go.

    ``server_name`` is the SNI host name as sent (ASCII, A-labels), or ``None``
    when the client sent none (an IP address target, or an old client).
    ``alpn_protocols`` keeps the client's order. Versions are wire numbers
    (``0x0303`` is TLS 1.2, ``0x0304`` TLS 1.3). ``length`` is how many bytes of
    the buffer the records carrying the ClientHello occupy.
    """

    server_name: str | None
    alpn_protocols: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]
    extension_types: tuple[int, ...]
    length: int

    @property
    def max_version(self) -> int:
        """The highest version offered, ignoring GREASE values."""
        offered = [v for v in self.supported_versions if not _is_grease(v)]
        return max(offered) if offered else self.legacy_version


def _check_record_header(buf: bytes | memoryview, offset: int, first: bool) -> NeedData | int:
    """Validate the record header at ``offset`` (as far as it is there).

    Returns the record payload length, or ``NEED_DATA`` when the header is a
    valid but incomplete prefix.
    """
    available = len(buf) - offset
    if available >= 1:
        content = buf[offset]
        if content != CONTENT_HANDSHAKE:
            if content == CONTENT_ALERT and not first:
                raise TlsHelloError("alert record inside the ClientHello")
            raise TlsHelloError(f"not a TLS handshake record (content type {content:#04x})")
    if available >= 2 and buf[offset + 1] != 3:
        raise TlsHelloError(f"not a TLS record version (major {buf[offset + 1]})")
    if available >= 3 and buf[offset + 2] > 4:
        raise TlsHelloError(f"unknown TLS record version 3.{buf[offset + 2]}")
    if available < _RECORD_HEADER:
        return NEED_DATA
    length: int = _U16.unpack_from(buf, offset + 3)[0]
    if length == 0:
        raise TlsHelloError("empty handshake record")
    if length > MAX_RECORD_PAYLOAD:
        raise TlsHelloError(f"record of {length} bytes exceeds 2^14")
    return length


def parse(
    buf: bytes | bytearray | memoryview, max_size: int = MAX_HELLO_BYTES
) -> ClientHello | NeedData:
    """Read the ClientHello at the start of ``buf``.

    Returns a ``ClientHello``, or ``NEED_DATA`` while ``buf`` is a valid but
    incomplete prefix. Bytes after the ClientHello's records are ignored.
    """
    view = memoryview(buf)
    first = _check_record_header(view, 0, True)
    if first is NEED_DATA:
        return NEED_DATA
    # Fast path: the handshake header and the whole message in the first record.
    payload = view[_RECORD_HEADER : _RECORD_HEADER + first]
    if len(payload) >= 1 and payload[0] != HANDSHAKE_CLIENT_HELLO:
        raise TlsHelloError(f"first handshake message is type {payload[0]}, not ClientHello")
    if len(payload) >= _HANDSHAKE_HEADER:
        size = (payload[1] << 16) | (payload[2] << 8) | payload[3]
        if size > max_size:
            raise TlsHelloTooLarge(size, max_size)
        if size + _HANDSHAKE_HEADER <= first:
            if size + _HANDSHAKE_HEADER < first:
                raise TlsHelloError("data after the ClientHello in its record")
            if len(payload) < first:
                return NEED_DATA
            return _parse_body(payload[_HANDSHAKE_HEADER:], _RECORD_HEADER + first)
    elif len(payload) < first:
        return NEED_DATA
    return _parse_spanning(view, max_size)


def _parse_spanning(view: memoryview, max_size: int) -> ClientHello | NeedData:
    """Join record fragments until the whole handshake message is there."""
    message = bytearray()
    offset = 0
    needed = -1  # handshake bytes wanted, known once the header is in
    while True:
        length = _check_record_header(view, offset, offset == 0)
        if length is NEED_DATA:
            return NEED_DATA
        declared = len(message) + length
        if 0 <= needed < declared:
            raise TlsHelloError("data after the ClientHello in its record")
        fragment = view[offset + _RECORD_HEADER : offset + _RECORD_HEADER + length]
        message += fragment
        if needed < 0:
            if len(message) >= 1 and message[0] != HANDSHAKE_CLIENT_HELLO:
                raise TlsHelloError(
                    f"first handshake message is type {message[0]}, not ClientHello"
                )
            if len(message) >= _HANDSHAKE_HEADER:
                size = (message[1] << 16) | (message[2] << 8) | message[3]
                if size > max_size:
                    raise TlsHelloTooLarge(size, max_size)
                needed = size + _HANDSHAKE_HEADER
                if declared > needed:
                    raise TlsHelloError("data after the ClientHello in its record")
        if len(fragment) < length:
            return NEED_DATA
        offset += _RECORD_HEADER + length
        if len(message) == needed:
            return _parse_body(memoryview(message)[_HANDSHAKE_HEADER:], offset)


def _parse_body(body: memoryview, consumed: int) -> ClientHello:
    end = len(body)
    if end < 2 + 32 + 1:
        raise TlsHelloError("ClientHello too short")
    (legacy_version,) = _U16.unpack_from(body, 0)
    if body[0] != 3:
        raise TlsHelloError(f"ClientHello version {legacy_version:#06x} is not TLS")
    pos = 2 + 32
    session_id_len = body[pos]
    if session_id_len > 32:
        raise TlsHelloError("session id longer than 32 bytes")
    pos += 1 + session_id_len
    if pos + 2 > end:
        raise TlsHelloError("ClientHello truncated before cipher suites")
    (suites_len,) = _U16.unpack_from(body, pos)
    if suites_len < 2 or suites_len % 2:
        raise TlsHelloError("bad cipher suites length")
    pos += 2 + suites_len
    if pos + 1 > end:
        raise TlsHelloError("ClientHello truncated before compression methods")
    compression_len = body[pos]
    if compression_len < 1:
        raise TlsHelloError("no compression methods")
    pos += 1 + compression_len
    if pos > end:
        raise TlsHelloError("ClientHello truncated in compression methods")
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    types: list[int] = []
    if pos < end:  # extensions are optional before TLS 1.2
        if pos + 2 > end:
            raise TlsHelloError("ClientHello truncated in extensions length")
        (ext_total,) = _U16.unpack_from(body, pos)
        pos += 2
        if pos + ext_total != end:
            raise TlsHelloError("extensions length does not match the ClientHello")
        unpack = _EXT_HEADER.unpack_from
        append = types.append
        while pos < end:
            if pos + 4 > end:
                raise TlsHelloError("truncated extension header")
            ext_type, ext_len = unpack(body, pos)
            pos += 4
            if pos + ext_len > end:
                raise TlsHelloError(f"extension {ext_type} overruns the ClientHello")
            append(ext_type)
            if ext_type in _WANTED:
                data = body[pos : pos + ext_len]
                if ext_type == EXT_SERVER_NAME:
                    server_name = _server_name(data)
                elif ext_type == EXT_ALPN:
                    alpn = _alpn(data)
                else:
                    versions = _versions(data)
            pos += ext_len
        if len(set(types)) != len(types):
            raise TlsHelloError("duplicate extension")
    return ClientHello(server_name, alpn, legacy_version, versions, tuple(types), consumed)


def _server_name(data: memoryview) -> str | None:
    if len(data) == 0:  # allowed in a ServerHello only, but harmless
        return None
    if len(data) < 2:
        raise TlsHelloError("truncated server_name extension")
    (list_len,) = _U16.unpack_from(data, 0)
    if list_len + 2 != len(data):
        raise TlsHelloError("server_name list length mismatch")
    pos, end = 2, len(data)
    name: str | None = None
    while pos < end:
        if pos + 3 > end:
            raise TlsHelloError("truncated server name entry")
        name_type = data[pos]
        (name_len,) = _U16.unpack_from(data, pos + 1)
        pos += 3
        if pos + name_len > end:
            raise TlsHelloError("server name overruns its extension")
        if name_type == 0:
            if name is not None:
                raise TlsHelloError("more than one host_name in server_name")
            raw = bytes(data[pos : pos + name_len])
            if not raw or not raw.isascii() or b"\x00" in raw:
                raise TlsHelloError("server name is not a non-empty ASCII host name")
            name = raw.decode("ascii")
        pos += name_len
    return name


def _alpn(data: memoryview) -> tuple[str, ...]:
    if len(data) < 2:
        raise TlsHelloError("truncated ALPN extension")
    (list_len,) = _U16.unpack_from(data, 0)
    if list_len + 2 != len(data) or list_len == 0:
        raise TlsHelloError("ALPN list length mismatch")
    pos, end = 2, len(data)
    protocols: list[str] = []
    while pos < end:
        proto_len = data[pos]
        pos += 1
        if proto_len == 0 or pos + proto_len > end:
            raise TlsHelloError("bad ALPN protocol name length")
        protocols.append(bytes(data[pos : pos + proto_len]).decode("latin-1"))
        pos += proto_len
    return tuple(protocols)


def _versions(data: memoryview) -> tuple[int, ...]:
    if len(data) < 1 or data[0] + 1 != len(data) or data[0] % 2 or data[0] == 0:
        raise TlsHelloError("bad supported_versions extension")
    return struct.unpack_from(f"!{data[0] // 2}H", data, 1)


def alert(description: int = ALERT_UNRECOGNIZED_NAME, version: int = 0x0303) -> bytes:
    """A fatal TLS alert record, sent in clear before the handshake completes."""
    return struct.pack("!BHHBB", CONTENT_ALERT, version, 2, 2, description)
