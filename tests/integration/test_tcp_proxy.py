"""The content-aware TCP proxy end to end: real sockets, a real pointsman process."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from harness import Pointsman, ThreadedServer, echo, exchange


def _router(write_config: Callable[[str, str], Path], body: str) -> Path:
    return write_config(textwrap.dedent(body), "router.py")


def test_first_line_names_the_backend_and_buffer_is_replayed(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    router = _router(write_config, """
        def route(data, conn):
            if b"\\n" not in data:
                return None
            return data.split(b"\\n", 1)[0].decode()
    """)
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    payload = f"{backend.address}\nhello\n".encode()
    assert exchange(proxy.address("tcp"), payload) == payload
    record = proxy.wait_access(1)[0]
    assert record["backend"] == backend.address
    assert record["reason"] == "done"
    assert record["bytes_in"] == len(payload) == record["bytes_out"]


def test_half_close_is_propagated_not_turned_into_a_close(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def late_reply(sock: socket.socket) -> None:
        received = b""
        while data := sock.recv(65536):
            received += data
        time.sleep(0.2)  # answer only after the client's end of stream arrived
        sock.sendall(b"got " + str(len(received)).encode())

    backend = echo_server(late_reply)
    router = _router(write_config, f"""
        def route(data, conn):
            return "{backend.address}"
    """)
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    assert exchange(proxy.address("tcp"), b"x" * 100_000) == b"got 100000"


def test_static_upstream_connects_before_the_client_speaks(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def banner(sock: socket.socket) -> None:
        sock.sendall(b"220 ready\r\n")
        echo(sock)



    backend = echo_server(banner)
    config = write_config(f"""
[[listeners]]
name = "smtp"
protocol = "tcp"
listen = "127.0.0.1:0"
upstream = "mail"

[upstreams.mail]
endpoints = ["127.0.0.1:1", "{backend.address}"]
""")
    proxy = pointsman("serve", "-c", str(config))
    for _ in range(3):  # the dead endpoint is skipped, each time
        with socket.create_connection(proxy.address("smtp"), timeout=5) as sock:
            assert sock.recv(100) == b"220 ready\r\n"


def test_bad_route_functions_close_only_their_connection(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    router = _router(write_config, f"""
        import asyncio
        from pointsman.routing.content import Route, CLOSE, NOOP

        def route(data, conn):
            if data.startswith(b"raise"):
                raise RuntimeError("boom")
            if data.startswith(b"garbage"):
                return 42
            if data.startswith(b"wait"):
                return NOOP
            if data.startswith(b"bye"):
                return Route(reply=b"bye\\n", close=True)
            if data.startswith(b"async"):
                return later()
            return "{backend.address}"

        async def later():
            await asyncio.sleep(0.01)
            return Route(remote="{backend.address}", data=b"rewritten")
    """)
    config = write_config(f"""
[[listeners]]
name = "guarded"
protocol = "tcp"
listen = "127.0.0.1:0"
route = "{router}"
[listeners.limits]
decision_timeout = 0.5
buffer = 1024
""")
    proxy = pointsman("serve", "-c", str(config))
    address = proxy.address("guarded")
    good = socket.create_connection(address, timeout=5)
    good.sendall(b"ping")
    assert good.recv(10) == b"ping"
    assert exchange(address, b"raise") == b""
    assert exchange(address, b"garbage") == b""
    assert exchange(address, b"bye") == b"bye\n"
    assert exchange(address, b"async") == b"rewritten"
    started = time.monotonic()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"wait")
        assert sock.recv(10) == b""
    assert 0.4 < time.monotonic() - started < 3
    assert exchange(address, b"wait" + b"x" * 2000) == b""
    good.sendall(b"still alive")
    assert good.recv(20) == b"still alive"
    good.close()
    reasons = {record["reason"] for record in proxy.wait_access(7)}
    assert {"route_error", "bad_decision", "route_closed", "decision_timeout",
            "buffer_limit", "done"} <= reasons
    errors = [e for e in proxy.events if e.get("event") == "route_error"]
    assert errors and "RuntimeError: boom" in errors[0]["error"]
    assert "Traceback" in errors[0]["traceback"]


def test_connect_error_handler_names_another_backend(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    router = _router(write_config, f"""
        from pointsman.routing.content import Route

        def fallback(remote, error):
            return "{backend.address}"

        def route(data, conn):
            return Route(remote="127.0.0.1:1", on_connect_error=fallback)
    """)
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    assert exchange(proxy.address("tcp"), b"hello") == b"hello"


def test_slow_reader_keeps_rss_flat_over_200_mib(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    total = 200 << 20
    block = b"\0" * (1 << 20)

    def firehose(sock: socket.socket) -> None:
        sock.recv(2)  # closing with unread bytes would reset the connection
        for _ in range(total // len(block)):
            sock.sendall(block)

    backend = echo_server(firehose)
    router = _router(write_config, f"""
        def route(data, conn):
            return "{backend.address}"
    """)
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    baseline = proxy.rss_kib()
    peak = baseline
    received = 0
    with socket.create_connection(proxy.address("tcp"), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        sock.sendall(b"go")
        reads = 0
        while chunk := sock.recv(1 << 18):
            received += len(chunk)
            reads += 1
            if reads % 64 == 0:
                time.sleep(0.01)  # a reader slower than the backend can write
                peak = max(peak, proxy.rss_kib())
    assert received == total
    assert peak - baseline < 16 * 1024, f"RSS grew from {baseline} KiB to {peak} KiB"


def test_proxy_protocol_accepted_from_the_front_and_sent_to_the_backend(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    router = _router(write_config, f"""
        def route(data, conn):
            # conn.client is the client the balancer named, not the balancer
            assert conn.client == ("203.0.113.7", 41000), conn.client
            return "{backend.address}"
    """)
    config = write_config(f"""
[[listeners]]
name = "v1in-v2out"
protocol = "tcp"
listen = "127.0.0.1:0"
route = "{router}"
accept_proxy_protocol = true
send_proxy_protocol = "v2"

[[listeners]]
name = "static-v1out"
protocol = "tcp"
listen = "127.0.0.1:0"
upstream = "echo"
accept_proxy_protocol = true
send_proxy_protocol = "v1"

[upstreams.echo]
endpoints = ["{backend.address}"]
""")
    proxy = pointsman("serve", "-c", str(config))
    header = b"PROXY TCP4 203.0.113.7 192.0.2.1 41000 443\r\n"
    echoed = exchange(proxy.address("v1in-v2out"), header + b"payload")
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    assert echoed.startswith(signature + b"\x21\x11\x00\x0c")
    assert echoed[16:28] == bytes([203, 0, 113, 7, 192, 0, 2, 1]) + (41000).to_bytes(2, "big") \
        + (443).to_bytes(2, "big")
    assert echoed[28:] == b"payload"
    echoed = exchange(proxy.address("static-v1out"), header + b"more")
    assert echoed == header + b"more"
    assert exchange(proxy.address("static-v1out"), b"GET / HTTP/1.0\r\n\r\n") == b""
    records = proxy.wait_access(3)
    assert {r["client"] for r in records if r["reason"] == "done"} == {"203.0.113.7:41000"}
    assert "bad_proxy_header" in {r["reason"] for r in records}


def test_on_connect_routes_before_the_client_speaks(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def greeter(sock: socket.socket) -> None:
        sock.sendall(b"server first\r\n")
        echo(sock)

    backend = echo_server(greeter)
    router = _router(write_config, f"""
        def on_connect(conn):
            return "{backend.address}" if conn.client[0] == "127.0.0.1" else None

        def route(data, conn):
            raise AssertionError("never asked: on_connect decided")
    """)
    proxy = pointsman("tcp", "-c", str(router), "-h", "127.0.0.1", "-p", "0")
    with socket.create_connection(proxy.address("tcp"), timeout=5) as sock:
        assert sock.recv(100) == b"server first\r\n"
