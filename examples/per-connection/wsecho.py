"""A tiny WebSocket echo "terminal", one per browser tab, standard library only.

pointsman starts one of these per connection (in a container or as a process).
It greets the client with its backend id (``POINTSMAN_BACKEND``, set for
processes) or the name of the machine it runs on (a container's hostname is its
id), then echoes every message back after a ``$ `` prompt.
``GET /health`` answers 200 so a readiness probe can use HTTP; every other
plain HTTP request gets the demo page.

It uses only the standard library so the same file runs on the host, under
``python -S -I``, and inside a busybox container with the host's Python mounted
read-only (the test image of ``scripts/lib/test-image.sh``).

    python3 wsecho.py PORT
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADER_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 1 << 20
PAGE = b"""<!doctype html><meta charset="utf-8"><title>per-connection terminal</title>
<pre id="out"></pre><input id="in" autofocus placeholder="type and press enter">
<script>
const out = document.getElementById("out"), input = document.getElementById("in");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/");
ws.onmessage = (e) => { out.textContent += e.data + "\\n"; };
ws.onclose = (e) => { out.textContent += "[closed " + e.code + " " + e.reason + "]\\n"; };
input.onkeydown = (e) => { if (e.key === "Enter") { ws.send(input.value); input.value = ""; } };
</script>
"""


def read_request(conn: socket.socket) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
    """The request line, headers (lower-case names) and any bytes after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > MAX_HEADER_BYTES:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


class Frames:
    """Reads client frames (always masked) from a socket, with a carry-over buffer."""

    def __init__(self, conn: socket.socket, buffered: bytes) -> None:
        self.conn = conn
        self.buffer = buffered

    def _exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def next(self) -> tuple[int, bool, bytes]:
        first, second = self._exact(2)
        opcode, fin, length = first & 0x0F, bool(first & 0x80), second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._exact(8))
        if length > MAX_MESSAGE_BYTES:
            raise EOFError
        mask = self._exact(4) if second & 0x80 else b"\0\0\0\0"
        payload = bytearray(self._exact(length))
        for i in range(length):
            payload[i] ^= mask[i % 4]
        return opcode, fin, bytes(payload)


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def serve_websocket(conn: socket.socket, key: bytes, rest: bytes) -> None:
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    me = os.environ.get("POINTSMAN_BACKEND") or socket.gethostname()
    conn.sendall(frame(1, b"hello from " + me.encode()))
    frames = Frames(conn, rest)
    message, message_opcode = b"", 1
    while True:
        opcode, fin, payload = frames.next()
        if opcode == 8:
            conn.sendall(frame(8, payload[:2]))
            return
        if opcode == 9:
            conn.sendall(frame(10, payload))
            continue
        if opcode == 10:
            continue
        if opcode in (1, 2):
            message, message_opcode = payload, opcode
        else:
            message += payload
        if fin:
            prefix = b"$ " if message_opcode == 1 else b""
            conn.sendall(frame(message_opcode, prefix + message))
            message = b""


def handle(conn: socket.socket) -> None:
    try:
        request = read_request(conn)
        if request is None:
            return
        line, headers, rest = request
        key = headers.get(b"sec-websocket-key")
        if key and b"websocket" in headers.get(b"upgrade", b"").lower():
            serve_websocket(conn, key, rest)
            return
        if line.split(b" ")[1:2] == [b"/health"]:
            body, kind = b"ok\n", b"text/plain"
        else:
            body, kind = PAGE, b"text/html; charset=utf-8"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "9000"))
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
