"""Envelope codecs: round trips, malformed input, protobuf wire details."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pointsman.wire.envelope import (
    EnvelopeError,
    JsonCodec,
    MsgpackCodec,
    ProtobufCodec,
    codec_for,
    decode_outbound,
)

CODECS = [JsonCodec(), MsgpackCodec(), ProtobufCodec()]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_request_round_trip(codec: JsonCodec) -> None:
    data = codec.encode_data(b"raw" if codec.name == "protobuf" else {"a": [1, 2]})
    frame = codec.encode(id="7", path="/users/1", data=data)
    env = codec.decode(frame)
    assert (env.path, env.id, env.data) == ("/users/1", "7", data)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_error_envelope(codec: JsonCodec) -> None:
    out = decode_outbound(codec, codec.encode(id="9", error=("not_found", "nope")))
    assert out.id == "9" and out.error == ("not_found", "nope") and out.data == b""


def test_json_keeps_data_raw_and_accepts_numeric_ids() -> None:
    env = JsonCodec().decode(b'{"path":"/x","id":12,"data":{"deep":[1,{"b":null}]}}')
    assert env.id == 12 and env.data == b'{"deep":[1,{"b":null}]}'
    assert JsonCodec().decode(b'{"path":"/x"}').data == b""


def test_outbound_json_omits_absent_fields() -> None:
    codec = JsonCodec()
    assert codec.encode(id=1, data=b"true") == b'{"id":1,"data":true}'
    assert codec.encode(path="/e", data=b"1") == b'{"path":"/e","data":1}'


@pytest.mark.parametrize("frame", [b"", b"nope", b"[1]", b'{"path":1}', b'{"id":[]}',
                                   b"\xff\xfe"])
def test_malformed_json(frame: bytes) -> None:
    with pytest.raises(EnvelopeError):
        JsonCodec().decode(frame)


def test_malformed_msgpack() -> None:
    with pytest.raises(EnvelopeError):
        MsgpackCodec().decode(b"\xc1")
    with pytest.raises(EnvelopeError):
        MsgpackCodec().decode(msgspec.msgpack.encode([1, 2]))


def test_protobuf_matches_the_documented_field_numbers() -> None:
    # Envelope{id="a" (1), path="/p" (2), data=b"\x00" (3)} as protoc would write it.
    frame = b"\x0a\x01a" + b"\x12\x02/p" + b"\x1a\x01\x00"
    env = ProtobufCodec().decode(frame)
    assert (env.id, env.path, env.data) == ("a", "/p", b"\x00")
    assert ProtobufCodec().encode(id="a", path="/p", data=b"\x00") == frame


def test_protobuf_skips_unknown_fields() -> None:
    unknown = b"\x20\x96\x01" + b"\x29" + b"\x00" * 8 + b"\x35" + b"\x00" * 4 + b"\x22\x01z"
    env = ProtobufCodec().decode(unknown + b"\x12\x02/p")
    assert env.path == "/p" and env.id is None


@pytest.mark.parametrize("frame", [b"\x0a\x05ab", b"\x0a", b"\x0b", b"\x80" * 11, b"\x00",
                                   b"\x12\x02\xff\xfe", b"\x29\x00"])
def test_protobuf_malformed(frame: bytes) -> None:
    with pytest.raises(EnvelopeError):
        ProtobufCodec().decode(frame)


@given(st.binary(max_size=64))
def test_protobuf_decoder_never_crashes(frame: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        ProtobufCodec().decode(frame)


@given(st.text(max_size=20), st.text(min_size=1, max_size=40), st.binary(max_size=300))
def test_protobuf_round_trip(ident: str, path: str, data: bytes) -> None:
    codec = ProtobufCodec()
    env = codec.decode(codec.encode(id=ident, path=path, data=data))
    assert (env.id, env.path, env.data) == (ident or None, path, data)


def test_codec_for_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="xml"):
        codec_for("xml")
