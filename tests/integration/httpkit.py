"""Real HTTP backends and a raw client for the HTTP proxy tests.

``Backend`` is a threaded HTTP/1.1 server on 127.0.0.1 that answers JSON
describing what it received (its name, the path, the headers), streams
request bodies without keeping them, and has a few paths with behaviour:
``/slow?s=N`` sleeps, ``/login`` sets a JSESSIONID, ``/chunked`` answers in
chunks. ``raw_exchange`` speaks bytes on a socket so tests can send what a
well-behaved client library never would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: dict[str, Any],
               extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _describe(self, **more: Any) -> dict[str, Any]:
        return {"backend": self.server.name, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()], **more}

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.paths.append(self.path)
        url = urlsplit(self.path)
        if url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
        if url.path == "/login":
            self._reply(200, self._describe(),
                        [("Set-Cookie", "JSESSIONID=abc123; Path=/; Secure")])
            return
        if url.path == "/hints":
            for _ in range(int(parse_qs(url.query).get("n", ["1"])[0])):
                self.send_response_only(103)
                self.send_header("Link", "</style.css>; rel=preload; as=style")
                self.end_headers()
                self.wfile.flush()
            self._reply(200, self._describe())
            return
        if url.path == "/cut":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.close_connection = True
            return
        if url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self._reply(200, self._describe())

    do_HEAD = do_GET
    do_DELETE = do_GET

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.paths.append(self.path)
        received = 0
        digest = 0
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "")
        if chunked:
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(size)
                received += len(data)
                digest = (digest + sum(data[:16])) & 0xFFFFFFFF
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                data = self.rfile.read(min(left, 1 << 20))
                if not data:
                    break
                left -= len(data)
                received += len(data)
        self._reply(200, self._describe(received=received, chunked=chunked))

    do_PUT = do_POST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.requests = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()


class Backend:
    """A running backend; ``address`` is ``127.0.0.1:port``."""

    def __init__(self, name: str) -> None:
        self.server = _Server(name)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return self.server.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dead_address() -> str:
    """An address where nothing listens (bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def read_response(sock: socket.socket, buffer: bytearray,
                  head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length or chunked framing) from ``sock``; rest stays buffered.

    ``head_only``: the response has no body whatever its fields say (HEAD, CONNECT).
    """
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise EOFError(bytes(buffer))
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    del buffer[:end + 4]
    status = int(head[0].split()[1])
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = (headers[key] + "\n" + value.strip()) if key in headers \
            else value.strip()
    if head_only or status < 200 or status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(buffer) < size:
            data = sock.recv(65536)
            if not data:
                raise EOFError
            buffer += data
        body = bytes(buffer[:size])
        del buffer[:size]
        return status, headers, body
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buffer:
                buffer += sock.recv(65536)
            line_end = buffer.index(b"\r\n")
            size = int(bytes(buffer[:line_end]), 16)
            del buffer[:line_end + 2]
            while len(buffer) < size + 2:
                buffer += sock.recv(65536)
            body += bytes(buffer[:size])
            del buffer[:size + 2]
            if size == 0:
                return status, headers, body
    body = bytes(buffer)
    buffer.clear()
    while data := sock.recv(65536):
        body += data
    return status, headers, body


def raw_exchange(address: tuple[str, int], payload: bytes,
                 timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``payload`` on a new connection and read one response."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        return read_response(sock, bytearray())


def get(address: tuple[str, int], host: str, path: str = "/",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return raw_exchange(address, ("\r\n".join(lines) + "\r\n\r\n").encode())


def backend_of(body: bytes) -> str:
    return str(json.loads(body)["backend"])


def header_values(body: bytes, name: str) -> list[str]:
    return [v for k, v in json.loads(body)["headers"] if k.lower() == name.lower()]
