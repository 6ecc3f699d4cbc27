"""A 1 GiB request body streams through the proxy with flat memory."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from httpkit import read_response
from test_http_proxy import http_config

from harness import Pointsman, ThreadedServer

GIB = 1 << 30
BLOCK = 1 << 20
MAX_RSS_GROWTH_KIB = 50 * 1024


def _sink(sock: socket.socket) -> None:
    """A fast backend: read the head, count the Content-Length body, answer the count."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    received = len(rest)
    chunk = bytearray(1 << 20)
    while received < length:
        count = sock.recv_into(chunk)
        if not count:
            return
        received += count
    body = str(received).encode()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.slow
def test_one_gib_upload_streams_with_flat_rss(write_config: Callable[[str, str], Path],
                                              pointsman: Callable[..., Pointsman],
                                              echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server(_sink)
    config = write_config(http_config([{"host": "up.test", "endpoints": [backend.address]}]),
                          "p.toml")
    proxy = pointsman("serve", "-c", str(config))
    baseline = proxy.rss_kib()
    peak = baseline
    block = b"\xab" * BLOCK
    started = time.monotonic()
    with socket.create_connection(proxy.address("web"), timeout=20) as sock:
        sock.sendall(b"PUT /big HTTP/1.1\r\nHost: up.test\r\nContent-Length: %d\r\n\r\n" % GIB)
        done = threading.Event()

        def send() -> None:
            for _ in range(GIB // BLOCK):
                sock.sendall(block)
            done.set()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while not done.wait(0.05):
            peak = max(peak, proxy.rss_kib())
        status, _, body = read_response(sock, bytearray())
    elapsed = time.monotonic() - started
    assert status == 200 and int(body) == GIB
    assert peak - baseline < MAX_RSS_GROWTH_KIB, (baseline, peak)
    assert elapsed < 30, elapsed
