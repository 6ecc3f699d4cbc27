"""The HTTP/1.1 reverse proxy end to end: a real pointsman process, real HTTP backends."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from httpkit import (
    Backend,
    backend_of,
    dead_address,
    get,
    header_values,
    raw_exchange,
    read_response,
)

from harness import Pointsman, start_pointsman


def http_config(routes: list[dict[str, Any]], **options: Any) -> str:
    """TOML for one ``http`` listener named ``web`` with ``routes`` and ``options``."""
    limits = options.pop("limits", {})
    lines = ['[[listeners]]', 'protocol = "http"', 'name = "web"',
             'listen = "127.0.0.1:0"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    if limits:
        lines.append("[listeners.limits]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in limits.items()]
    for route in routes:
        lines.append("[[listeners.routes]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in route.items()]
    lines += ["[logging]", 'access = "off"']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def backends() -> Iterator[list[Backend]]:
    started = [Backend(f"b{i}") for i in range(3)]
    yield started
    for backend in started:
        backend.close()


@pytest.fixture(scope="module")
def proxy(backends: list[Backend], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pointsman]:
    """One proxy for the tests that only read; routes cover each feature."""
    b0, b1, b2 = backends
    dead = dead_address()
    routes = [
        {"host": "rr.test", "endpoints": [b0.address, b1.address]},
        {"host": "lc.test", "endpoints": [b0.address, b1.address], "balance": "least_conn"},
        {"host": "*.wild.test", "endpoints": [b2.address]},
        {"host": "app.wild.test", "path": "/api", "endpoints": [b0.address]},
        {"host": "retry.test", "endpoints": [dead, b1.address]},
        {"host": "dead.test", "endpoints": [dead_address()]},
        {"host": "sticky.test", "endpoints": [b0.address, b1.address, b2.address]},
    ]
    path = tmp_path_factory.mktemp("http") / "proxy.toml"
    path.write_text(http_config(routes, trusted_proxies=["10.0.0.0/8"],
                                limits={"response_timeout": 1.0}))
    handle = start_pointsman("serve", "-c", str(path))
    yield handle
    handle.stop()


def test_round_robin_alternates(proxy: Pointsman) -> None:
    seen = [backend_of(get(proxy.address("web"), "rr.test")[2]) for _ in range(10)]
    assert Counter(seen) == {"b0": 5, "b1": 5}
    assert all(a != b for a, b in itertools.pairwise(seen))


def test_least_conn_avoids_the_busy_endpoint(proxy: Pointsman) -> None:
    address = proxy.address("web")
    busy: list[str] = []
    slow = threading.Thread(target=lambda: busy.append(
        backend_of(get(address, "lc.test", "/slow?s=0.8")[2])))
    slow.start()
    time.sleep(0.2)
    quick = [backend_of(get(address, "lc.test")[2]) for _ in range(8)]
    slow.join()
    assert len(set(quick)) == 1 and quick[0] != busy[0]


def test_exact_wildcard_and_path_routes(proxy: Pointsman) -> None:
    address = proxy.address("web")
    assert backend_of(get(address, "app.wild.test", "/api/users")[2]) == "b0"
    assert backend_of(get(address, "APP.wild.test:8080", "/apix")[2]) == "b2"
    assert backend_of(get(address, "x.y.wild.test", "/")[2]) == "b2"


def test_unknown_route_is_404_with_reason(proxy: Pointsman) -> None:
    status, headers, body = get(proxy.address("web"), "nope.test")
    assert status == 404
    assert headers["x-pointsman-error"] == "unknown_route"
    assert b"nope.test" in body


def test_a_host_that_is_the_client_address_is_400_empty_host(proxy: Pointsman) -> None:
    """As gorouter: a Host equal to the client's IP is no name to route by."""
    web = proxy.address("web")
    status, headers, _ = get(web, "127.0.0.1")
    assert (status, headers["x-pointsman-error"]) == (400, "empty_host")
    assert get(web, f"127.0.0.1:{web[1]}")[0] == 404  # with a port it is a name like any other


def test_dead_endpoint_is_retried_then_avoided(proxy: Pointsman) -> None:
    results = [get(proxy.address("web"), "retry.test") for _ in range(6)]
    assert [status for status, _, _ in results] == [200] * 6
    assert {backend_of(body) for _, _, body in results} == {"b1"}


def test_all_endpoints_dead_is_502_or_503(proxy: Pointsman) -> None:
    status, headers, _ = get(proxy.address("web"), "dead.test")
    assert status == 502 and headers["x-pointsman-error"] == "endpoint_failure"
    # The endpoint now rests after its failure: no endpoint can take the next one.
    status, headers, _ = get(proxy.address("web"), "dead.test")
    assert status == 503 and headers["x-pointsman-error"] == "no_endpoints"


def test_backend_timeout_is_504(proxy: Pointsman) -> None:
    status, headers, _ = get(proxy.address("web"), "rr.test", "/slow?s=2")
    assert status == 504 and headers["x-pointsman-error"] == "endpoint_timeout"


def test_forwarded_headers_and_request_id(proxy: Pointsman) -> None:
    status, headers, body = get(proxy.address("web"), "rr.test", "/h", {
        "X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https",
        "Connection": "X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=5",
        "X-Cf-App-Instance-Ignored": "x"})
    assert status == 200
    # 127.0.0.1 is not a trusted proxy here: its X-Forwarded-* are replaced.
    assert header_values(body, "X-Forwarded-For") == ["127.0.0.1"]
    assert header_values(body, "X-Forwarded-Proto") == ["http"]
    assert header_values(body, "X-Forwarded-Host") == ["rr.test"]
    assert header_values(body, "X-Secret") == [] and header_values(body, "Keep-Alive") == []
    [request_id] = header_values(body, "X-Request-Id")
    assert header_values(body, "X-Vcap-Request-Id") == [request_id]
    assert headers["x-vcap-request-id"] == request_id
    [start] = header_values(body, "X-Request-Start")
    assert abs(int(start) / 1000 - time.time()) < 60
    _, _, body = get(proxy.address("web"), "rr.test", "/h", {"X-Request-Id": "given-1"})
    assert header_values(body, "X-Vcap-Request-Id") == ["given-1"]


def test_sticky_session_pins_to_instance(proxy: Pointsman) -> None:
    address = proxy.address("web")
    status, headers, body = get(address, "sticky.test", "/login")
    assert status == 200
    cookies = headers["set-cookie"].split("\n")
    vcap = next(c for c in cookies if c.startswith("__VCAP_ID__="))
    assert "HttpOnly" in vcap and "Secure" in vcap
    instance = vcap.split(";")[0].split("=", 1)[1]
    first = backend_of(body)
    cookie = f"JSESSIONID=abc123; __VCAP_ID__={instance}"
    seen = {backend_of(get(address, "sticky.test", "/", {"Cookie": cookie})[2])
            for _ in range(9)}
    assert seen == {first}
    # Without the cookies requests spread again.
    assert len({backend_of(get(address, "sticky.test")[2]) for _ in range(9)}) == 3


def test_app_instance_header_targets_one_instance(proxy: Pointsman) -> None:
    address = proxy.address("web")
    seen = {backend_of(get(address, "sticky.test", "/",
                           {"X-Cf-App-Instance": "sticky.test:2"})[2]) for _ in range(6)}
    assert seen == {"b2"}
    status, headers, _ = get(address, "sticky.test", "/", {"X-Cf-App-Instance": "garbage"})
    assert status == 400 and headers["x-pointsman-error"] == "invalid_cf_app_instance_header"
    status, _, _ = get(address, "sticky.test", "/", {"X-Cf-App-Instance": "sticky.test:9"})
    assert status == 400


def test_pipelined_requests_answered_in_order(proxy: Pointsman) -> None:
    requests = b"".join(
        f"GET /p{i} HTTP/1.1\r\nHost: rr.test\r\n\r\n".encode() for i in range(8))
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(requests)
        buffer = bytearray()
        paths = [json.loads(read_response(sock, buffer)[2])["path"] for _ in range(8)]
    assert paths == [f"/p{i}" for i in range(8)]


def test_keep_alive_reuses_client_and_upstream_connections(proxy: Pointsman,
                                                           backends: list[Backend]) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        buffer = bytearray()
        for _ in range(5):
            sock.sendall(b"GET /ka HTTP/1.1\r\nHost: app.wild.test\r\n\r\n")
            status, headers, _ = read_response(sock, buffer)
            assert status == 200 and "connection" not in headers


def test_http10_keep_alive_is_announced_and_honoured(proxy: Pointsman) -> None:
    """An HTTP/1.0 client keeps its connection only when told ``Connection: keep-alive``."""
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        buffer = bytearray()
        for _ in range(3):
            sock.sendall(b"GET /ka HTTP/1.0\r\nHost: app.wild.test\r\n"
                         b"Connection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(sock, buffer)
            assert status == 200 and headers["connection"] == "keep-alive"
        sock.sendall(b"GET /ka HTTP/1.0\r\nHost: app.wild.test\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""


def test_chunked_both_ways(proxy: Pointsman) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, _, reply = raw_exchange(
        proxy.address("web"),
        b"POST /up HTTP/1.1\r\nHost: rr.test\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body)
    assert status == 200
    assert json.loads(reply)["received"] == 11 and json.loads(reply)["chunked"] is True
    status, headers, reply = get(proxy.address("web"), "rr.test", "/chunked")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert reply == b"one,two,three"


def test_head_request_has_no_body(proxy: Pointsman) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: rr.test\r\n\r\n"
                     b"GET /after HTTP/1.1\r\nHost: rr.test\r\n\r\n")
        buffer = bytearray()
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        first, _, rest = head.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200") and b"Content-Length" in first
        buffer += rest
        status, _, body = read_response(sock, buffer)
        assert status == 200 and json.loads(body)["path"] == "/after"


def test_expect_continue_is_relayed(proxy: Pointsman) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: rr.test\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        buffer = bytearray()
        status, _, _ = read_response(sock, buffer)
        assert status == 100
        sock.sendall(b"hello")
        status, _, body = read_response(sock, buffer)
        assert status == 200 and json.loads(body)["received"] == 5


def test_early_hints_reach_http11_clients_only(proxy: Pointsman) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"GET /hints HTTP/1.1\r\nHost: rr.test\r\n\r\n")
        buffer = bytearray()
        status, headers, _ = read_response(sock, buffer)
        assert status == 103 and headers["link"] == "</style.css>; rel=preload; as=style"
        status, _, body = read_response(sock, buffer)
        assert status == 200 and json.loads(body)["path"] == "/hints"
    status, _, body = raw_exchange(proxy.address("web"),
                                   b"GET /hints HTTP/1.0\r\nHost: rr.test\r\n\r\n")
    assert status == 200 and json.loads(body)["path"] == "/hints"


def test_a_backend_that_sends_endless_interim_responses_gets_502(proxy: Pointsman) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"GET /hints?n=6 HTTP/1.1\r\nHost: rr.test\r\n\r\n")
        buffer = bytearray()
        statuses = [read_response(sock, buffer)[0] for _ in range(6)]
    assert statuses == [103] * 5 + [502]


def test_an_http10_expectation_is_ignored(proxy: Pointsman) -> None:
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.0\r\nHost: rr.test\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\nhello")
        status, _, body = read_response(sock, bytearray())
        assert status == 200 and json.loads(body)["received"] == 5


def test_a_response_cut_short_is_logged_and_counted_once(
        write_config: Callable[[str, str], Path], pointsman: Callable[..., Pointsman],
        backends: list[Backend], tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    text = http_config([{"host": "x.test", "endpoints": [backends[0].address]}])
    config = write_config(text.replace('access = "off"', f'access = "{access}"'),
                          "pointsman.toml")
    proxy = pointsman("serve", "-c", str(config))
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"GET /cut HTTP/1.1\r\nHost: x.test\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"partial")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"/cut" not in access.read_bytes():
        time.sleep(0.02)
    time.sleep(0.3)  # a second record, if there were one, would be written by now
    records = [json.loads(line) for line in access.read_text().splitlines()]
    assert [r["target"] for r in records if r.get("kind") == "http"] == ["/cut"]


def _proxy_with(write_config: Callable[[str, str], Path], pointsman: Callable[..., Pointsman],
                backend: Backend, **options: Any) -> Pointsman:
    config = write_config(http_config([{"host": "x.test", "endpoints": [backend.address]}],
                                      **options), "pointsman.toml")
    return pointsman("serve", "-c", str(config))


def test_trusted_proxy_keeps_forwarded_for(write_config: Callable[[str, str], Path],
                                           pointsman: Callable[..., Pointsman],
                                           backends: list[Backend]) -> None:
    proxy = _proxy_with(write_config, pointsman, backends[0], trusted_proxies=["127.0.0.0/8"])
    _, _, body = get(proxy.address("web"), "x.test", "/", {
        "X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"})
    assert header_values(body, "X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"]
    assert header_values(body, "X-Forwarded-Proto") == ["https"]


def test_limits_431_413_408(write_config: Callable[[str, str], Path],
                            pointsman: Callable[..., Pointsman],
                            backends: list[Backend]) -> None:
    proxy = _proxy_with(write_config, pointsman, backends[0],
                        limits={"max_header_bytes": 4096, "max_body_bytes": 1000,
                                "header_timeout": 0.5, "body_timeout": 0.5})
    address = proxy.address("web")
    big = "a" * 8192
    status, headers, _ = get(address, "x.test", "/", {"X-Big": big})
    assert status == 431 and headers["x-pointsman-error"] == "header_too_large"
    status, _, _ = raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x.test\r\n"
                                         b"Content-Length: 2000\r\n\r\n" + b"x" * 2000)
    assert status == 413
    chunks = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    status, _, _ = raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x.test\r\n"
                                         b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 413
    status, headers, _ = raw_exchange(address, b"GET / HTTP/1.1\r\nHost: x.t")
    assert status == 408 and headers["x-pointsman-error"] == "slow_client"
    status, _, _ = raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x.test\r\n"
                                         b"Content-Length: 10\r\n\r\nabc")
    assert status == 408


def test_idle_keep_alive_connection_is_closed(write_config: Callable[[str, str], Path],
                                              pointsman: Callable[..., Pointsman],
                                              backends: list[Backend]) -> None:
    proxy = _proxy_with(write_config, pointsman, backends[0],
                        limits={"keepalive_timeout": 0.5})
    with socket.create_connection(proxy.address("web"), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
        status, _, _ = read_response(sock, bytearray())
        assert status == 200
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3
