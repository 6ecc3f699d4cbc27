"""HTTP routes answered from a folder: files, validators, ranges, streaming, keep-alive."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

from httpkit import get, read_response

from harness import Pointsman


def _site(write_config: Callable[[str, str], Path], tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<h1>welcome</h1>")
    (root / "assets" / "big.bin").write_bytes(os.urandom(5 << 20))
    (tmp_path / "secret.txt").write_text("not for you")
    return write_config("""
[[listeners]]
name = "web"
protocol = "http"
listen = "127.0.0.1:0"

[[listeners.routes]]
host = "*.localhost"
root = "site"

[[listeners.routes]]
host = "docs.example"
path = "/static"
root = "site"
""")


def test_files_validators_and_ranges(pointsman: Callable[..., Pointsman],
                                     write_config: Callable[[str, str], Path],
                                     tmp_path: Path) -> None:
    proxy = pointsman("serve", "-c", str(_site(write_config, tmp_path)))
    address = proxy.address("web")
    status, headers, body = get(address, "www.localhost")
    assert (status, body) == (200, b"<h1>welcome</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, _, _ = get(address, "www.localhost", "/", {"If-None-Match": headers["etag"]})
    assert status == 304
    status, headers, body = get(address, "docs.example", "/static/assets/big.bin",
                                {"Range": "bytes=10-19"})
    assert status == 206 and len(body) == 10
    assert headers["content-range"] == f"bytes 10-19/{5 << 20}"
    for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/nope"):
        assert get(address, "www.localhost", target)[0] == 404
    assert get(address, "other.example", "/")[0] == 404


def test_large_file_streams_and_the_connection_stays_usable(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        tmp_path: Path) -> None:
    proxy = pointsman("serve", "-c", str(_site(write_config, tmp_path)))
    expected = hashlib.sha256((tmp_path / "site" / "assets" / "big.bin").read_bytes()).digest()
    with socket.create_connection(proxy.address("web"), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        request = b"GET /assets/big.bin HTTP/1.1\r\nHost: a.localhost\r\n\r\n"
        sock.sendall(request + b"HEAD /index.html HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
        buffer = bytearray()
        status, _, body = read_response(sock, buffer)
        assert status == 200 and hashlib.sha256(body).digest() == expected
        status, headers, body = read_response(sock, buffer, head_only=True)
        assert status == 200 and headers["content-length"] == "16" and body == b""
