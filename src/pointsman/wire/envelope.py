"""The client envelope of the message gateway, in JSON, MessagePack or Protocol Buffers.

A client sends ``{path, id, data}`` in one WebSocket message. The gateway only
needs ``path`` (to route) and ``id`` (to answer errors), so decoding keeps
``data`` as the raw bytes of its encoding (``msgspec.Raw``); the service decodes
it. Going back, services build the whole outbound frame themselves with the
same codec, so the gateway writes it verbatim and never re-encodes payloads.

Outbound shapes (every field optional, absent fields omitted):

* reply ``{id, data}``; push ``{path?, data}``; service request ``{id, path?, data}``
* error ``{id, error: {code, message}}``

The protobuf codec is a small hand-written varint codec for the messages in
``envelope.proto`` next to this file; unknown fields are skipped as protobuf
requires. Every codec is sans-I/O and pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import msgspec

__all__ = [
    "ENCODINGS",
    "Codec",
    "Encoding",
    "Envelope",
    "EnvelopeError",
    "JsonCodec",
    "MsgpackCodec",
    "Outbound",
    "ProtobufCodec",
    "codec_for",
    "decode_outbound",
]

Encoding = Literal["json", "msgpack", "protobuf"]
ENCODINGS: Final[tuple[Encoding, ...]] = ("json", "msgpack", "protobuf")

MessageId = str | int | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded client message; ``data`` is still in the codec's encoding (b"" = absent)."""

    path: str
    id: MessageId
    data: bytes


class EnvelopeError(ValueError):
    """The message is not an envelope of this encoding; answered with an error envelope."""

    code: Final = "bad_envelope"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Codec(Protocol):
    """What both the gateway and the service SDK need from an encoding."""

    name: Encoding
    binary: bool

    def decode(self, frame: bytes) -> Envelope: ...

    def encode(self, *, id: MessageId = None, path: str | None = None,
               data: bytes | None = None, error: tuple[str, str] | None = None) -> bytes: ...

    def encode_data(self, value: Any) -> bytes: ...

    def decode_data(self, raw: bytes, type: Any = Any) -> Any: ...


class _Error(msgspec.Struct, frozen=True):
    code: str
    message: str


class _In(msgspec.Struct, frozen=True):
    path: str = ""
    id: str | int | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Out(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str | int | None = None
    path: str | None = None
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: _Error | None = None


class _MsgspecCodec:
    """JSON and MessagePack share everything except msgspec's module."""

    name: Encoding
    binary: bool

    def __init__(self, module: Any) -> None:
        self._decoder = module.Decoder(_In)
        self._encoder = module.Encoder()
        self._module = module

    def decode(self, frame: bytes) -> Envelope:
        try:
            raw = self._decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EnvelopeError(f"not a {self.name} envelope: {exc}") from None
        return Envelope(raw.path, raw.id, bytes(raw.data))

    def encode(self, *, id: MessageId = None, path: str | None = None,
               data: bytes | None = None, error: tuple[str, str] | None = None) -> bytes:
        out = _Out(
            id=id,
            path=path,
            data=msgspec.UNSET if data is None else msgspec.Raw(data),
            error=None if error is None else _Error(*error),
        )
        result: bytes = self._encoder.encode(out)
        return result

    def encode_data(self, value: Any) -> bytes:
        result: bytes = self._encoder.encode(value)
        return result

    def decode_data(self, raw: bytes, type: Any = Any) -> Any:
        if not raw:
            raw = self._NULL
        return self._module.decode(raw, type=type)

    _NULL = b"null"


class JsonCodec(_MsgspecCodec):
    """UTF-8 JSON in text frames."""

    name: Encoding = "json"
    binary = False
    _NULL = b"null"

    def __init__(self) -> None:
        super().__init__(msgspec.json)


class MsgpackCodec(_MsgspecCodec):
    """MessagePack maps in binary frames, keyed like the JSON envelope."""

    name: Encoding = "msgpack"
    binary = True
    _NULL = b"\xc0"

    def __init__(self) -> None:
        super().__init__(msgspec.msgpack)


# -- Protocol Buffers ---------------------------------------------------------

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
MAX_VARINT_BYTES: Final = 10


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = min(len(buf), pos + MAX_VARINT_BYTES)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise EnvelopeError("truncated or overlong varint")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _fields(buf: bytes) -> dict[int, bytes]:
    """Length-delimited fields of one message (last one wins); others are skipped."""
    found: dict[int, bytes] = {}
    pos = 0
    size = len(buf)
    while pos < size:
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise EnvelopeError("field number 0")
        if wire_type == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > size:
                raise EnvelopeError("truncated length-delimited field")
            found[number] = buf[pos:pos + length]
            pos += length
        elif wire_type == _VARINT:
            _, pos = _read_varint(buf, pos)
        elif wire_type == _I64:
            pos += 8
        elif wire_type == _I32:
            pos += 4
        else:
            raise EnvelopeError(f"unsupported wire type {wire_type}")
        if pos > size:
            raise EnvelopeError("truncated fixed-size field")
    return found


def _text(raw: bytes | None, what: str) -> str:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError(f"{what} is not UTF-8") from None


class ProtobufCodec:
    """``pointsman.gateway.Envelope`` in binary frames; ``data`` is opaque bytes.

    Payload helpers: ``bytes``/``str`` pass through, objects with
    ``SerializeToString``/``FromString`` (generated protobuf classes) use them,
    anything else is carried as JSON inside the bytes field.
    """

    name: Encoding = "protobuf"
    binary = True

    def decode(self, frame: bytes) -> Envelope:
        fields = _fields(frame)
        ident = _text(fields.get(1), "id")
        return Envelope(_text(fields.get(2), "path"), ident or None, bytes(fields.get(3, b"")))

    def encode(self, *, id: MessageId = None, path: str | None = None,
               data: bytes | None = None, error: tuple[str, str] | None = None) -> bytes:
        parts: list[bytes] = []
        if id is not None and id != "":
            parts.append(_field(1, str(id).encode()))
        if path:
            parts.append(_field(2, path.encode()))
        if data:
            parts.append(_field(3, data))
        if error is not None:
            body = _field(1, error[0].encode()) + _field(2, error[1].encode())
            parts.append(_field(5, body))
        return b"".join(parts)

    def encode_data(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        serialize = getattr(value, "SerializeToString", None)
        if serialize is not None:
            return bytes(serialize())
        return msgspec.json.encode(value)

    def decode_data(self, raw: bytes, type: Any = Any) -> Any:
        if type is Any or type is bytes:
            return raw
        if type is str:
            return raw.decode()
        from_string = getattr(type, "FromString", None)
        if from_string is not None:
            return from_string(raw)
        return msgspec.json.decode(raw or b"null", type=type)


@dataclass(frozen=True, slots=True)
class Outbound:
    """An envelope as a client sees it; ``data`` still encoded, ``error`` as ``(code, message)``."""

    id: MessageId
    path: str | None
    data: bytes
    error: tuple[str, str] | None


class _OutIn(msgspec.Struct, frozen=True):
    id: str | int | None = None
    path: str | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    error: _Error | None = None


def decode_outbound(codec: Codec, frame: bytes) -> Outbound:
    """The client's half: read a reply, push, request or error envelope."""
    if isinstance(codec, ProtobufCodec):
        fields = _fields(frame)
        error = None
        if 5 in fields:
            err = _fields(fields[5])
            error = (_text(err.get(1), "code"), _text(err.get(2), "message"))
        return Outbound(_text(fields.get(1), "id") or None, _text(fields.get(2), "path") or None,
                        bytes(fields.get(3, b"")), error)
    module = msgspec.json if codec.name == "json" else msgspec.msgpack
    try:
        out = module.decode(frame, type=_OutIn)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EnvelopeError(f"not a {codec.name} envelope: {exc}") from None
    err_pair = None if out.error is None else (out.error.code, out.error.message)
    return Outbound(out.id, out.path, bytes(out.data), err_pair)


def codec_for(encoding: str) -> Codec:
    """The codec named in configuration; ``ValueError`` for anything else."""
    if encoding == "json":
        return JsonCodec()
    if encoding == "msgpack":
        return MsgpackCodec()
    if encoding == "protobuf":
        return ProtobufCodec()
    raise ValueError(f"unknown envelope encoding {encoding!r}; expected one of {ENCODINGS}")
