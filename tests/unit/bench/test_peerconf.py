"""The peers' generated configuration: one worker each, loopback, the right module."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.peerconf import (
    Addr,
    haproxy_http,
    haproxy_tcp,
    nginx_http_proxy,
    nginx_origin,
    nginx_stream,
    pointsman_router,
    pointsman_tcp_toml,
)
from bench.peers import stream_module_path

LISTEN = Addr("127.0.0.1", 7000)
TARGET = Addr("127.0.0.1", 7001)


def test_haproxy_is_single_threaded_tcp_with_splice() -> None:
    cfg = haproxy_tcp(LISTEN, TARGET)
    for line in ("nbthread 1", "mode tcp", "option splice-auto", "option splice-request",
                 "option splice-response", "bind 127.0.0.1:7000", "server s1 127.0.0.1:7001"):
        assert line in cfg


def test_nginx_stream_has_one_worker_in_its_prefix() -> None:
    module = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
    cfg = nginx_stream(Path("/tmp/p"), LISTEN, TARGET, module)
    assert cfg.startswith(f"load_module {module};\n")
    for line in ("user root;", "worker_processes 1;", "daemon off;", "pid /tmp/p/nginx.pid;",
                 "listen 127.0.0.1:7000;", "proxy_pass 127.0.0.1:7001;"):
        assert line in cfg
    assert "load_module" not in nginx_stream(Path("/tmp/p"), LISTEN, TARGET, None)


def test_nginx_origin_serves_root_with_temp_paths_in_prefix() -> None:
    cfg = nginx_origin(Path("/tmp/o"), LISTEN, Path("/tmp/o/www"))
    assert "root /tmp/o/www;" in cfg
    assert "proxy_temp_path /tmp/o/proxy;" in cfg
    assert "access_log off;" in cfg
    assert "load_module" not in cfg


def test_stream_module_only_when_dynamic() -> None:
    dynamic = "configure arguments: --with-stream=dynamic --with-stream_ssl_module"
    assert stream_module_path(dynamic, Path("/m")) == Path("/m/ngx_stream_module.so")
    assert stream_module_path("configure arguments: --with-stream --with-http_ssl_module") is None


def test_pointsman_router_is_a_route_function() -> None:
    source = pointsman_router(TARGET)
    namespace: dict[str, object] = {}
    exec(compile(ast.parse(source), "router.py", "exec"), namespace)
    route = namespace["route"]
    assert callable(route)
    assert route(b"hello", None) == "127.0.0.1:7001"


def test_pointsman_toml_listener() -> None:
    import tomllib

    data = tomllib.loads(pointsman_tcp_toml("bench", LISTEN, TARGET))
    assert data["listeners"] == [
        {"name": "bench", "protocol": "tcp", "listen": "127.0.0.1:7000", "upstream": "backend"}
    ]
    assert data["upstreams"]["backend"]["endpoints"] == ["127.0.0.1:7001"]


def test_pointsman_toml_without_access_log() -> None:
    import tomllib

    data = tomllib.loads(pointsman_tcp_toml("bench", LISTEN, TARGET, access_log=False))
    assert data["logging"] == {"access": "off"}
    assert data["listeners"][0]["listen"] == "127.0.0.1:7000"


def test_haproxy_http_reuses_backend_connections() -> None:
    cfg = haproxy_http(LISTEN, TARGET)
    for line in ("nbthread 1", "mode http", "option http-keep-alive", "http-reuse always",
                 "server s1 127.0.0.1:7001"):
        assert line in cfg
    assert "splice" not in cfg


def test_nginx_http_proxy_keeps_upstream_connections() -> None:
    cfg = nginx_http_proxy(Path("/tmp/h"), LISTEN, TARGET)
    for line in ("worker_processes 1;", "server 127.0.0.1:7001;", "keepalive 64;",
                 "proxy_pass http://backend;", "proxy_http_version 1.1;",
                 'proxy_set_header Connection "";', "listen 127.0.0.1:7000;"):
        assert line in cfg
