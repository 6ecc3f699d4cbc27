"""PROXY protocol against a real HAProxy on both sides of pointsman.

    client -> haproxy (send-proxy-v2 / send-proxy) -> pointsman (accept, send v2 / v1)
           -> haproxy (accept-proxy, send-proxy) -> reporter

The reporter answers with the v1 line HAProxy wrote to it, which names the
original client only if HAProxy read pointsman's header and pointsman read
the front HAProxy's (v2 with TLVs, and v1).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import Pointsman, ThreadedServer, free_port_number, wait_for_port


def reporter(sock: socket.socket) -> None:
    """Answer with the PROXY line received, then echo."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk
    sock.sendall(data)
    while chunk := sock.recv(4096):
        sock.sendall(chunk)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> None:
        path = tmp_path / "haproxy.cfg"
        path.write_text(config)
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        processes.append(
            subprocess.Popen(
                [binary, "-f", str(path), "-db"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_headers_interoperate_with_haproxy(
    pointsman: Callable[..., Pointsman],
    write_config: Callable[[str, str], Path],
    echo_server: Callable[..., ThreadedServer],
    haproxy: Callable[[str], None],
) -> None:
    report = echo_server(reporter)
    back = free_port_number()
    router = write_config(
        textwrap.dedent(f"""
        def route(data, conn):
            if len(data) < 2:
                return None
            # the client HAProxy named, not HAProxy itself
            return "127.0.0.1:{back}" if conn.client[0] == "127.0.0.1" else None
        """),
        "router.py",
    )
    config = write_config(
        textwrap.dedent(f"""
        [[listeners]]
        name = "v2"
        protocol = "tcp"
        listen = "127.0.0.1:0"
        route = "{router}"
        accept_proxy_protocol = true
        send_proxy_protocol = "v2"

        [[listeners]]
        name = "v1"
        protocol = "tcp"
        listen = "127.0.0.1:0"
        route = "{router}"
        accept_proxy_protocol = true
        send_proxy_protocol = "v1"
        """),
        "pointsman.toml",
    )
    proxy = pointsman("serve", "-c", str(config))
    front_v2, front_v1 = free_port_number(), free_port_number()
    to_v2, to_v1 = proxy.address("v2")[1], proxy.address("v1")[1]
    haproxy(
        textwrap.dedent(f"""
        defaults
            mode tcp
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        frontend front_v2
            bind 127.0.0.1:{front_v2}
            unique-id-format conn-%[uuid]
            default_backend to_pointsman_v2
        backend to_pointsman_v2
            server p 127.0.0.1:{to_v2} send-proxy-v2 proxy-v2-options unique-id,crc32c
        frontend front_v1
            bind 127.0.0.1:{front_v1}
            default_backend to_pointsman_v1
        backend to_pointsman_v1
            server p 127.0.0.1:{to_v1} send-proxy
        frontend back
            bind 127.0.0.1:{back} accept-proxy
            default_backend to_reporter
        backend to_reporter
            server r {report.address} send-proxy
        """)
    )
    for port in (front_v2, front_v1, back):
        wait_for_port("127.0.0.1", port)

    for front in (front_v2, front_v1):
        with socket.create_connection(("127.0.0.1", front), timeout=5) as sock:
            client_port = sock.getsockname()[1]
            sock.sendall(b"hi there")
            received = b""
            while not received.endswith(b"hi there"):
                chunk = sock.recv(4096)
                assert chunk, f"closed early after {received!r}"
                received += chunk
        line = f"PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {front}\r\n".encode()
        assert received == line + b"hi there"
