"""Refusing a WebSocket with a close code, for clients that only see close codes.

A browser's WebSocket API does not expose the HTTP status of a failed
handshake: a 503 reaches page code as close code 1006 ("abnormal closure"),
which looks like a network fault. To tell a client "try again later" (1013)
a server completes the handshake and then closes. ``refusal`` returns the
bytes that do both, in one write: a 101 for the client's key and a close
frame. Pure bytes in and out; the caller writes them and closes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable

__all__ = ["MAX_REASON_BYTES", "accept_value", "refusal", "websocket_key"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_REASON_BYTES = 123  # a control frame's payload is at most 125 bytes, 2 for the code
OPCODE_CLOSE_FINAL = 0x88


def accept_value(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def websocket_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key of a WebSocket upgrade request, or ``None`` when it is not one."""
    key: bytes | None = None
    upgrade = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"upgrade":
            upgrade = upgrade or b"websocket" in value.lower()
        elif lowered == b"sec-websocket-key":
            key = value.strip()
    return key if upgrade and key else None


def refusal(key: bytes, code: int, reason: str, extra_headers: bytes = b"") -> bytes:
    """A 101 answer to ``key`` followed by a close frame with ``code`` and ``reason``.

    ``extra_headers`` are complete ``Name: value\\r\\n`` lines added to the head.
    """
    payload = struct.pack("!H", code) + reason.encode()[:MAX_REASON_BYTES]
    head = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_value(key) + b"\r\n"
            + extra_headers + b"\r\n")
    return head + bytes((OPCODE_CLOSE_FINAL, len(payload))) + payload
