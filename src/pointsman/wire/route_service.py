"""gorouter's route service signature: the key, and the two headers that carry it.

A router sends a request bound to a route service with three headers:
``X-CF-Forwarded-Url`` (where the request was going), ``X-CF-Proxy-Signature``
and ``X-CF-Proxy-Metadata``. The service sends them back with the request,
and any router holding the same ``route_services_secret`` must accept them,
gorouter or pointsman, so every byte follows gorouter (routeservice/signature.go,
common/secure/crypto.go, main.go ``createCrypto``):

* the key is PBKDF2-HMAC-SHA256 of the secret, empty salt, 100001 rounds,
  16 bytes: AES-128-GCM, 12-byte nonce, no additional data;
* the plaintext is JSON ``{"forwarded_url": ..., "requested_time": ...}``,
  the time in Go's RFC 3339 form with nanoseconds (``...05.123456789Z``);
* ``X-CF-Proxy-Signature`` is the sealed bytes (ciphertext and tag) in
  URL-safe base64 with padding;
* ``X-CF-Proxy-Metadata`` is JSON ``{"nonce": <standard base64>}``, itself in
  URL-safe base64 with padding.

A signature older than the router's timeout is expired (504 for the request);
anything else wrong with it is invalid (502). Pure: the time and the nonce
are passed in, nothing here reads a clock or draws random bytes.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "FORWARDED_URL",
    "KEY_BYTES",
    "METADATA",
    "NONCE_BYTES",
    "PBKDF2_ROUNDS",
    "SIGNATURE",
    "InvalidSignature",
    "Signature",
    "SignatureError",
    "SignatureExpired",
    "SigningKey",
    "check_fresh",
    "decode",
    "derive_key",
    "encode",
    "format_time",
    "forwarded_url",
    "host_without_port",
    "parse_time",
]

SIGNATURE = b"X-CF-Proxy-Signature"
METADATA = b"X-CF-Proxy-Metadata"
FORWARDED_URL = b"X-CF-Forwarded-Url"

PBKDF2_ROUNDS = 100_001
"""gorouter's ``secure.NewPbkdf2`` rounds (SHA-256, no salt)."""
KEY_BYTES = 16
"""AES-128: gorouter derives a 16-byte key."""
NONCE_BYTES = 12
"""The GCM standard nonce size, gorouter's ``gcm.NonceSize()``."""
MAX_HEADER_BYTES = 16 * 1024
"""A signature or metadata header longer than this is refused before decoding."""

_NS = 1_000_000_000
_URLSAFE = re.compile(rb"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$")
_STD = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
                      r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPED = re.compile("[<>&\u2028\u2029]")
_ZERO_TIME_NS = -62135596800 * _NS
"""Go's zero ``time.Time`` (year 1): what a signature without ``requested_time`` holds."""


class SignatureError(Exception):
    """A route service signature that cannot be accepted; never raised as itself.

    ::

        SignatureError
        ├── InvalidSignature   undecodable, wrong key, tampered, malformed (502)
        └── SignatureExpired   valid, but older than the timeout (504)
    """

    status_hint = 502


class InvalidSignature(SignatureError):
    """The headers do not decode to a signature made with any of the keys."""


class SignatureExpired(SignatureError):
    """A genuine signature, made longer ago than the router accepts."""

    status_hint = 504


def derive_key(secret: bytes) -> bytes:
    """gorouter's key for ``secret``: PBKDF2-HMAC-SHA256, empty salt, 100001 rounds, 16 bytes."""
    return hashlib.pbkdf2_hmac("sha256", secret, b"", PBKDF2_ROUNDS, KEY_BYTES)


class SigningKey:
    """One secret, derived once (PBKDF2 is slow on purpose), ready to seal and open."""

    __slots__ = ("_aead", "key")

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self.key = derive_key(raw)
        self._aead = AESGCM(self.key)

    def seal(self, nonce: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, b"")

    def open(self, nonce: bytes, sealed: bytes) -> bytes:
        """The plaintext; ``InvalidSignature`` when the key or the bytes are wrong."""
        if len(nonce) != NONCE_BYTES:
            raise InvalidSignature(f"nonce of {len(nonce)} bytes")
        try:
            return self._aead.decrypt(nonce, sealed, b"")
        except InvalidTag:
            raise InvalidSignature("message authentication failed") from None


class Signature:
    """What a signature says: the URL the request was for and when it was signed."""

    __slots__ = ("forwarded_url", "requested_ns")

    def __init__(self, forwarded_url: str, requested_ns: int) -> None:
        self.forwarded_url = forwarded_url
        self.requested_ns = requested_ns

    def __repr__(self) -> str:
        return f"Signature({self.forwarded_url!r}, {format_time(self.requested_ns)})"


def format_time(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: fraction without trailing zeros, none when zero."""
    seconds, fraction = divmod(ns, _NS)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (Go's ``time.Time`` JSON form).

    ``ValueError`` when it is not one.
    """
    found = _RFC3339.match(text)
    if found is None:
        raise ValueError(f"not an RFC 3339 time: {text[:64]!r}")
    year, month, day, hour, minute, second = (int(found[i]) for i in range(1, 7))
    datetime(year, month, day, hour, minute, second)  # range checks (month 13, Feb 30, ...)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if found[9]:
        hours, minutes = int(found[10]), int(found[11])
        if hours > 23 or minutes > 59:
            raise ValueError("offset out of range")
        offset = hours * 3600 + minutes * 60
        seconds -= offset if found[9] == "+" else -offset
    fraction = found[7]
    nanos = int(fraction[1:].ljust(9, "0")) if fraction else 0
    return seconds * _NS + nanos


def _go_json(value: dict[str, str]) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _GO_ESCAPED.sub(lambda m: _GO_ESCAPES[m[0]], text).encode()


def encode(key: SigningKey, url: str, now_ns: int, nonce: bytes) -> tuple[bytes, bytes]:
    """``(X-CF-Proxy-Signature, X-CF-Proxy-Metadata)`` values for ``url`` signed at ``now_ns``.

    ``nonce`` must be ``NONCE_BYTES`` fresh random bytes, never used twice with a key.
    """
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes, got {len(nonce)}")
    plaintext = _go_json({"forwarded_url": url, "requested_time": format_time(now_ns)})
    sealed = key.seal(nonce, plaintext)
    metadata = _go_json({"nonce": base64.b64encode(nonce).decode()})
    return base64.urlsafe_b64encode(sealed), base64.urlsafe_b64encode(metadata)


def _urlsafe(value: bytes, what: str) -> bytes:
    if len(value) > MAX_HEADER_BYTES:
        raise InvalidSignature(f"{what} header too long")
    if not _URLSAFE.match(value):
        raise InvalidSignature(f"{what} header is not URL-safe base64")
    return base64.urlsafe_b64decode(value)


def _field(document: dict[str, Any], name: str) -> Any:
    """A JSON object's field as Go's decoder finds it: exact name, else any case of it."""
    if name in document:
        return document[name]
    for key, value in document.items():
        if key.lower() == name:
            return value
    return None


def _nonce(metadata: bytes) -> bytes:
    if not metadata:
        raise InvalidSignature("no metadata")
    try:
        document = json.loads(_urlsafe(metadata, "metadata"))
    except (ValueError, RecursionError) as exc:
        raise InvalidSignature("metadata is not JSON") from exc
    if not isinstance(document, dict):
        raise InvalidSignature("metadata is not a JSON object")
    nonce = _field(document, "nonce")
    if not isinstance(nonce, str) or not _STD.match(nonce):
        raise InvalidSignature("metadata has no base64 nonce")
    return base64.b64decode(nonce)


def _contents(plaintext: bytes) -> Signature:
    try:
        document = json.loads(plaintext)
    except (ValueError, RecursionError) as exc:
        raise InvalidSignature("signature is not JSON") from exc
    if not isinstance(document, dict):
        raise InvalidSignature("signature is not a JSON object")
    url = _field(document, "forwarded_url")
    if url is None:
        url = ""
    if not isinstance(url, str):
        raise InvalidSignature("forwarded_url is not a string")
    when = _field(document, "requested_time")
    if when is None:
        return Signature(url, _ZERO_TIME_NS)
    if not isinstance(when, str):
        raise InvalidSignature("requested_time is not a string")
    try:
        return Signature(url, parse_time(when))
    except ValueError as exc:
        raise InvalidSignature(str(exc)) from None


def decode(keys: Sequence[SigningKey], signature: bytes, metadata: bytes) -> Signature:
    """What ``signature`` says, opened with the first of ``keys`` that fits.

    ``keys`` is the current secret's key, then the decrypt-only one if any.
    Raises ``InvalidSignature`` (and nothing else) for any other input.
    """
    try:
        nonce = _nonce(metadata)
        sealed = _urlsafe(signature, "signature")
    except binascii.Error as exc:
        raise InvalidSignature("bad base64") from exc
    failure: InvalidSignature | None = None
    for key in keys:
        try:
            plaintext = key.open(nonce, sealed)
        except InvalidSignature as exc:
            failure = exc
            continue
        return _contents(plaintext)
    raise failure or InvalidSignature("no key")


def check_fresh(signature: Signature, now_ns: int, timeout: float) -> None:
    """``SignatureExpired`` when ``signature`` was made more than ``timeout`` seconds ago."""
    if now_ns - signature.requested_ns > int(timeout * _NS):
        raise SignatureExpired(f"signed {(now_ns - signature.requested_ns) / _NS:.3f} s ago")


def host_without_port(host: bytes) -> bytes:
    """gorouter's ``hostWithoutPort``: the Host up to its port (``[v6]`` kept whole)."""
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[:end + 1] if end > 0 else host
    cut = host.find(b":")
    return host[:cut] if cut >= 0 else host


def forwarded_url(https: bool, host: bytes, target: bytes) -> bytes:
    """``X-CF-Forwarded-Url``: ``scheme://host`` (no port) plus the request target as sent.

    An absolute-form target contributes only its path and query, as Go's
    ``RequestURI`` would after the proxy's own parsing.
    """
    if target[:1] != b"/":
        scheme = target.find(b"://")
        if scheme >= 0:
            slash = target.find(b"/", scheme + 3)
            target = target[slash:] if slash >= 0 else b"/"
    return (b"https://" if https else b"http://") + host_without_port(host) + target
