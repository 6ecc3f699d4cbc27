"""Read the first packet a PostgreSQL client sends, and answer it where needed.

A PostgreSQL connection opens with one untyped packet (an int32 length that
counts itself, then an int32 code): a ``StartupMessage`` naming the user and
database, or a request to negotiate first (``SSLRequest``, ``GSSENCRequest``),
or a ``CancelRequest`` for a query running on another connection. A router
declines the negotiation with ``DECLINE_SSL`` (``b"N"``); libpq with
``sslmode=prefer`` then sends its StartupMessage in clear, which names the
database to route by. ``error_response`` builds the ErrorResponse a server
would send, so a client told "no such database" prints the reason rather than
"server closed the connection unexpectedly".

``parse`` never consumes: each event carries ``length``, the bytes it used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.peek import NEED_DATA, NeedData

__all__ = [
    "DECLINE_GSSENC",
    "DECLINE_SSL",
    "MAX_STARTUP_PACKET",
    "NEED_DATA",
    "CancelRequest",
    "GSSENCRequest",
    "PostgresError",
    "PostgresEvent",
    "SSLRequest",
    "StartupMessage",
    "error_response",
    "parse",
]

#: PostgreSQL's own MAX_STARTUP_PACKET_LENGTH: the server refuses larger ones.
MAX_STARTUP_PACKET: Final = 10000
#: A 3.2 CancelRequest carries a secret key of up to 256 bytes.
MAX_CANCEL_KEY: Final = 256

SSL_REQUEST_CODE: Final = 80877103
GSSENC_REQUEST_CODE: Final = 80877104
CANCEL_REQUEST_CODE: Final = 80877102
PROTOCOL_MAJOR: Final = 3

#: The one-byte answers that refuse encryption; the client goes on in clear.
DECLINE_SSL: Final = b"N"
DECLINE_GSSENC: Final = b"N"

_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!iI")


class PostgresError(RemoteProtocolError, ValueError):
    """The bytes are not a PostgreSQL startup packet."""


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The client asks for TLS before its startup message."""

    length: int = 8


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    """The client asks for GSSAPI encryption before its startup message."""

    length: int = 8


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Cancel the query of backend ``process_id`` (on another connection)."""

    process_id: int
    secret_key: bytes
    length: int


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """The client's opening: protocol version and its parameters, in order.

    ``database`` follows the server's rule: it defaults to the user name.
    """

    protocol: tuple[int, int]
    parameters: tuple[tuple[str, str], ...]
    length: int

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of parameter ``name`` (the last one if repeated)."""
        value = default
        for key, item in self.parameters:
            if key == name:
                value = item
        return value

    @property
    def user(self) -> str:
        return self.get("user") or ""

    @property
    def database(self) -> str:
        return self.get("database") or self.user

    @property
    def application_name(self) -> str | None:
        return self.get("application_name")

    @property
    def options(self) -> str | None:
        return self.get("options")


PostgresEvent = SSLRequest | GSSENCRequest | CancelRequest | StartupMessage


def parse(buf: bytes | bytearray | memoryview) -> PostgresEvent | NeedData:
    """Read the first packet in ``buf``; ``NEED_DATA`` while it is incomplete."""
    have = len(buf)
    if have < 4:
        # A valid length is 8..MAX_STARTUP_PACKET, so its first two bytes are 0.
        for i in range(min(have, 2)):
            if buf[i] != 0:
                raise PostgresError("not a PostgreSQL startup packet (length too large)")
        return NEED_DATA
    length: int = _I32.unpack_from(buf, 0)[0]
    if length < 8:
        raise PostgresError(f"startup packet length {length} is too small")
    if length > MAX_STARTUP_PACKET:
        raise PostgresError(f"startup packet of {length} bytes exceeds {MAX_STARTUP_PACKET}")
    if have < 8:
        return _check_partial_code(buf)
    code: int = _HEADER.unpack_from(buf, 0)[1]
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        if length != 8:
            raise PostgresError("encryption request with a body")
        return SSLRequest() if code == SSL_REQUEST_CODE else GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        if not 16 <= length <= 12 + MAX_CANCEL_KEY:
            raise PostgresError(f"cancel request of {length} bytes")
        if have < length:
            return NEED_DATA
        process_id: int = _I32.unpack_from(buf, 8)[0]
        return CancelRequest(process_id, bytes(buf[12:length]), length)
    major, minor = code >> 16, code & 0xFFFF
    if major != PROTOCOL_MAJOR:
        raise PostgresError(f"unsupported protocol {major}.{minor}")
    if have < length:
        _check_partial_parameters(buf, have)
        return NEED_DATA
    return StartupMessage((major, minor), _parameters(buf, length), length)


def _check_partial_code(buf: bytes | bytearray | memoryview) -> NeedData:
    """Refuse early when the code's first bytes already rule every packet out."""
    have = len(buf)
    if have >= 5:
        first = buf[4]
        # 0x04 starts the three request codes (0x04D2....); 0x00 starts 3.x.
        if first not in (0x00, 0x04):
            raise PostgresError("not a PostgreSQL startup packet")
        if have >= 6:
            second = buf[5]
            if first == 0 and second != PROTOCOL_MAJOR:
                raise PostgresError(f"unsupported protocol {second}.x")
            if first == 4 and second != 0xD2:
                raise PostgresError("unknown request code")
    return NEED_DATA


def _check_partial_parameters(buf: bytes | bytearray | memoryview, have: int) -> None:
    # Complete parameters must decode; a half-written one may not yet.
    body = bytes(buf[8:have])
    cut = body.rfind(b"\x00")
    if cut >= 0:
        _split(body[: cut + 1], complete=False)


def _parameters(buf: bytes | bytearray | memoryview, length: int) -> tuple[tuple[str, str], ...]:
    body = bytes(buf[8:length])
    if not body.endswith(b"\x00"):
        raise PostgresError("startup packet does not end with a NUL")
    return _split(body[:-1], complete=True)


def _split(body: bytes, complete: bool) -> tuple[tuple[str, str], ...]:
    """Pair up NUL-terminated strings (``body`` ends with the last string's NUL)."""
    if not body:
        if complete:
            raise PostgresError("startup message without parameters")
        return ()
    fields = body.split(b"\x00")
    fields.pop()  # what follows the last NUL: empty when complete
    if complete and len(fields) % 2:
        raise PostgresError("startup parameter without a value")
    try:
        text = [f.decode("utf-8") for f in fields]
    except UnicodeDecodeError as exc:
        raise PostgresError("startup parameter is not UTF-8") from exc
    pairs = tuple(zip(text[::2], text[1::2], strict=False))
    for i, (key, _) in enumerate(pairs):
        if not key:
            raise PostgresError(f"empty name for startup parameter {i}")
    if not complete and len(text) % 2 and not text[-1]:
        # An empty name can only be the terminator, and the packet is not over.
        raise PostgresError("startup parameters end before the packet does")
    if complete and not any(key == "user" for key, _ in pairs):
        raise PostgresError("startup message without a user")
    return pairs


def error_response(
    message: str,
    code: str = "08004",
    severity: str = "FATAL",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    """An ErrorResponse ('E') message, as a server sends before closing.

    ``code`` is a SQLSTATE: ``3D000`` invalid_catalog_name (no such database),
    ``28000`` invalid_authorization_specification (no such role), ``08004``
    the server rejected the connection, ``53300`` too many connections.
    """
    fields = [(b"S", severity), (b"V", severity), (b"C", code), (b"M", message)]
    if detail is not None:
        fields.append((b"D", detail))
    if hint is not None:
        fields.append((b"H", hint))
    body = b"".join(tag + value.replace("\x00", "").encode() + b"\x00" for tag, value in fields)
    body += b"\x00"
    return b"E" + _I32.pack(len(body) + 4) + body
