"""gorouter's route service signature: key, cipher, header encodings, expiry, hostile input."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire.route_service import (
    InvalidSignature,
    SignatureError,
    SignatureExpired,
    SigningKey,
    check_fresh,
    decode,
    derive_key,
    encode,
    format_time,
    forwarded_url,
    host_without_port,
    parse_time,
)

NOW = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z
NONCE = bytes(range(12))
KEY = SigningKey("super-secret")
OLD = SigningKey("previous-secret")


_GO_KEY = PBKDF2HMAC(algorithm=hashes.SHA256(), length=16, salt=b"",
                     iterations=100001).derive(b"super-secret")


def _go_seal(document: bytes, nonce: bytes = NONCE) -> tuple[bytes, bytes]:
    """Headers built the way gorouter builds them, by an independent path (no pointsman code)."""
    sealed = AESGCM(_GO_KEY).encrypt(nonce, document, b"")
    metadata = json.dumps({"nonce": base64.b64encode(nonce).decode()}).encode()
    return base64.urlsafe_b64encode(sealed), base64.urlsafe_b64encode(metadata)


def test_the_key_is_pbkdf2_sha256_without_salt_100001_rounds_16_bytes() -> None:
    assert derive_key(b"super-secret") == _GO_KEY
    assert KEY.key == derive_key(b"super-secret")
    assert len(SigningKey("").key) == 16  # an empty secret still makes a key, as in gorouter


def test_encode_writes_gorouters_layout() -> None:
    signature, metadata = encode(KEY, "https://app.example.com/a?b=<c>&d", NOW, NONCE)
    meta = json.loads(base64.urlsafe_b64decode(metadata))
    assert meta == {"nonce": base64.b64encode(NONCE).decode()}
    assert base64.urlsafe_b64decode(metadata).startswith(b'{"nonce":"')
    plain = AESGCM(KEY.key).decrypt(NONCE, base64.urlsafe_b64decode(signature), b"")
    # Go's json.Marshal: compact, field order of the struct, <, > and & escaped.
    assert plain == (b'{"forwarded_url":"https://app.example.com/a?b=\\u003cc\\u003e\\u0026d",'
                     b'"requested_time":"2023-11-14T22:13:20.123456789Z"}')


def test_round_trip_with_the_current_or_the_decrypt_only_key() -> None:
    signature, metadata = encode(KEY, "https://a.example.com/x", NOW, NONCE)
    signed = decode([KEY], signature, metadata)
    assert (signed.forwarded_url, signed.requested_ns) == ("https://a.example.com/x", NOW)
    old_signature, old_metadata = encode(OLD, "https://a.example.com/y", NOW, NONCE)
    assert decode([KEY, OLD], old_signature, old_metadata).forwarded_url == \
        "https://a.example.com/y"
    with pytest.raises(InvalidSignature):
        decode([KEY], old_signature, old_metadata)


def test_a_signature_made_as_gorouter_makes_it_is_accepted() -> None:
    document = (b'{"forwarded_url":"https://app.example.com/p?q=1",'
                b'"requested_time":"2023-11-14T23:13:20.5+01:00"}')
    signature, metadata = _go_seal(document)
    signed = decode([KEY], signature, metadata)
    assert signed.forwarded_url == "https://app.example.com/p?q=1"
    assert signed.requested_ns == 1_700_000_000_500_000_000


def test_go_field_names_match_in_any_case_and_a_missing_time_is_the_zero_time() -> None:
    signature, metadata = _go_seal(b'{"Forwarded_URL":"https://a.example.com"}')
    signed = decode([KEY], signature, metadata)
    assert signed.forwarded_url == "https://a.example.com"
    with pytest.raises(SignatureExpired):
        check_fresh(signed, NOW, 60)


@pytest.mark.parametrize("change", ["flip", "truncate", "other_nonce", "no_metadata"])
def test_tampering_is_invalid(change: str) -> None:
    signature, metadata = encode(KEY, "https://a.example.com/x", NOW, NONCE)
    raw = bytearray(base64.urlsafe_b64decode(signature))
    if change == "flip":
        raw[3] ^= 1
        signature = base64.urlsafe_b64encode(bytes(raw))
    elif change == "truncate":
        signature = base64.urlsafe_b64encode(bytes(raw[:-1]))
    elif change == "other_nonce":
        metadata = base64.urlsafe_b64encode(json.dumps(
            {"nonce": base64.b64encode(bytes(12)).decode()}).encode())
    else:
        metadata = b""
    with pytest.raises(InvalidSignature) as caught:
        decode([KEY, OLD], signature, metadata)
    assert caught.value.status_hint == 502


@pytest.mark.parametrize("metadata", [
    b"not base64!", b"e30", base64.urlsafe_b64encode(b"[]"), base64.urlsafe_b64encode(b"{}"),
    base64.urlsafe_b64encode(b'{"nonce": 5}'), base64.urlsafe_b64encode(b'{"nonce": "AAAA"}'),
    base64.urlsafe_b64encode(b"[" * 5000), base64.standard_b64encode(b'{"nonce":">>>?"}'),
])
def test_malformed_metadata_is_invalid(metadata: bytes) -> None:
    signature, _ = encode(KEY, "https://a.example.com/x", NOW, NONCE)
    with pytest.raises(InvalidSignature):
        decode([KEY], signature, metadata)


@pytest.mark.parametrize("document", [
    b"not json", b"[1]", b'{"forwarded_url": 1}', b'{"requested_time": 7}',
    b'{"requested_time": "yesterday"}', b'{"requested_time": "2023-02-30T00:00:00Z"}',
    b'{"requested_time": "2023-01-01T24:00:00Z"}',
    b'{"requested_time": "2023-01-01T00:00:00+25:00"}',
])
def test_a_sealed_document_that_is_no_signature_is_invalid(document: bytes) -> None:
    signature, metadata = _go_seal(document)
    with pytest.raises(InvalidSignature):
        decode([KEY], signature, metadata)


def test_expiry_is_strictly_after_the_timeout() -> None:
    signature, metadata = encode(KEY, "https://a.example.com/x", NOW, NONCE)
    signed = decode([KEY], signature, metadata)
    check_fresh(signed, NOW + 60 * 10**9, 60)
    check_fresh(signed, NOW - 3600 * 10**9, 60)  # from the future: gorouter accepts it too
    with pytest.raises(SignatureExpired) as caught:
        check_fresh(signed, NOW + 60 * 10**9 + 1, 60)
    assert caught.value.status_hint == 504
    assert isinstance(caught.value, SignatureError)


@pytest.mark.parametrize(("ns", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (1_700_000_000_100_000_000, "2023-11-14T22:13:20.1Z"),
    (NOW, "2023-11-14T22:13:20.123456789Z"),
])
def test_times_are_go_rfc3339nano(ns: int, text: str) -> None:
    assert format_time(ns) == text
    assert parse_time(text) == ns


def test_parse_time_takes_offsets_and_short_fractions() -> None:
    assert parse_time("2023-11-14T17:13:20.12-05:00") == 1_700_000_000_120_000_000
    assert parse_time("2023-11-14t22:13:20z") == 1_700_000_000 * 10**9
    for bad in ("2023-11-14 22:13:20Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z",
                "2023-11-14T22:13:20.1234567891Z"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_forwarded_url_uses_the_host_without_port_and_the_target_as_sent() -> None:
    assert forwarded_url(True, b"app.example.com:8080", b"/a%20b?c=d+e") == \
        b"https://app.example.com/a%20b?c=d+e"
    assert forwarded_url(False, b"app.example.com", b"http://other/x?y") == \
        b"http://app.example.com/x?y"
    assert host_without_port(b"[::1]:80") == b"[::1]"
    assert host_without_port(b"a.example.com") == b"a.example.com"


def test_encode_refuses_a_nonce_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        encode(KEY, "https://a.example.com", NOW, b"short")


_B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                  max_size=200).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(signature=st.one_of(st.binary(max_size=300), _B64URL),
       metadata=st.one_of(st.binary(max_size=300), _B64URL,
                          st.binary(max_size=120).map(base64.urlsafe_b64encode),
                          st.builds(lambda n: base64.urlsafe_b64encode(json.dumps(
                              {"nonce": base64.b64encode(n).decode()}).encode()),
                              st.binary(max_size=20))))
def test_arbitrary_header_bytes_raise_only_invalid_signature(signature: bytes,
                                                             metadata: bytes) -> None:
    with contextlib.suppress(InvalidSignature):
        decode([KEY, OLD], signature, metadata)


@settings(max_examples=200, deadline=None)
@given(document=st.binary(max_size=200) | st.text(max_size=100).map(
    lambda t: json.dumps({"forwarded_url": t, "requested_time": t}).encode()))
def test_arbitrary_sealed_documents_raise_only_invalid_signature(document: bytes) -> None:
    signature, metadata = _go_seal(document)
    with contextlib.suppress(InvalidSignature):
        decode([KEY], signature, metadata)
