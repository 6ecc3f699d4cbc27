"""Configuration text for every peer, as pure functions of addresses and paths.

Each peer is held to one worker (one thread, one process doing the work) so the
comparison with a single-worker pointsman is fair, and otherwise keeps its
vendor's defaults except where a setting is the documented way to run it fast
(HAProxy's splice in ``mode tcp``, nginx's upstream keepalive for HTTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Addr",
    "haproxy_http",
    "haproxy_tcp",
    "nginx_http_proxy",
    "nginx_origin",
    "nginx_stream",
    "pointsman_router",
    "pointsman_tcp_toml",
]

NGINX_WORKER_CONNECTIONS = 8192
UPSTREAM_KEEPALIVE = 64  # idle backend connections nginx keeps per worker
HAPROXY_MAXCONN = 4096  # HAProxy raises RLIMIT_NOFILE to ~5x this at start


@dataclass(frozen=True, slots=True)
class Addr:
    """A loopback address; the harness never binds or dials anything else."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def haproxy_tcp(listen: Addr, target: Addr) -> str:
    """HAProxy in ``mode tcp`` with kernel splicing both ways, one thread."""
    return f"""\
global
    nbthread 1
    maxconn {HAPROXY_MAXCONN}

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option splice-auto
    option splice-request
    option splice-response

frontend bench
    bind {listen}
    default_backend target

backend target
    server s1 {target}
"""


def haproxy_http(listen: Addr, target: Addr) -> str:
    """HAProxy ``mode http`` with keep-alive both sides and backend connection reuse."""
    return f"""\
global
    nbthread 1
    maxconn {HAPROXY_MAXCONN}

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    option http-keep-alive

frontend bench
    bind {listen}
    default_backend target

backend target
    http-reuse always
    server s1 {target}
"""


def _nginx_main(prefix: Path, stream_module: Path | None) -> str:
    """The top of every nginx config: one worker, foreground, everything under prefix."""
    load = f"load_module {stream_module};\n" if stream_module is not None else ""
    return f"""\
{load}user root;
worker_processes 1;
daemon off;
master_process on;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections {NGINX_WORKER_CONNECTIONS};
}}
"""


def _nginx_http_paths(prefix: Path) -> str:
    return "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def nginx_stream(prefix: Path, listen: Addr, target: Addr, stream_module: Path | None) -> str:
    """nginx's stream module as a plain TCP proxy."""
    return _nginx_main(prefix, stream_module) + f"""
stream {{
    server {{
        listen {listen};
        proxy_pass {target};
    }}
}}
"""


def nginx_http_proxy(prefix: Path, listen: Addr, target: Addr) -> str:
    """nginx as an HTTP reverse proxy keeping idle HTTP/1.1 connections to the backend."""
    return _nginx_main(prefix, None) + f"""
http {{
    access_log off;
{_nginx_http_paths(prefix)}    keepalive_requests 100000;
    upstream backend {{
        server {target};
        keepalive {UPSTREAM_KEEPALIVE};
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_origin(prefix: Path, listen: Addr, root: Path) -> str:
    """nginx as the HTTP backend: static files from ``root``, no access log."""
    return _nginx_main(prefix, None) + f"""
http {{
    access_log off;
{_nginx_http_paths(prefix)}    keepalive_requests 100000;
    server {{
        listen {listen};
        root {root};
    }}
}}
"""


def pointsman_router(target: Addr) -> str:
    """A ProxyMachine-style route module that sends every connection to ``target``."""
    return f'''\
"""Benchmark route: every connection goes to one backend."""


def route(data, conn):
    return "{target}"
'''


def pointsman_tcp_toml(name: str, listen: Addr, target: Addr, *, access_log: bool = True) -> str:
    """The same route as configuration instead of code, for ``pointsman serve``.

    Without ``access_log`` pointsman writes no line per connection, as the
    HAProxy and nginx configurations here (which log nothing) do.
    """
    logging = "" if access_log else '[logging]\naccess = "off"\n\n'
    return f"""\
{logging}[[listeners]]
name = "{name}"
protocol = "tcp"
listen = "{listen}"
upstream = "backend"

[upstreams.backend]
endpoints = ["{target}"]
"""
