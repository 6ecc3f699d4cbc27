"""HTTP/1.1 reverse proxies side by side: pointsman, nginx, HAProxy and proxy.py (PyPI).

wrk keeps 32 keep-alive connections open and sends small GETs through each
peer to the same nginx origin serving a small file. Every proxy runs one
worker: pointsman one process, nginx ``worker_processes 1`` with upstream
keepalive, HAProxy ``nbthread 1`` with ``http-reuse always``, proxy.py one
acceptor and one worker with its ReverseProxy plugin (``--threaded``: its
default threadless mode crashed on the first request here, see notes).
``bare-http`` is not a product but a floor: uvloop and httptools passing
bytes through (``bench/bare_http.py``), what any Python HTTP proxy pays at least.

Besides the load runs, ``settings()`` records the route lookup cost of
pointsman's table at 10 and at 100,000 hosts, measured in this process.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import backends, loadgen
from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import REPO, Bare, Direct, HaproxyHttp, NginxHttp, Peer, serve_pointsman
from bench.procs import Managed, ProcessSet
from bench.scenario import Scenario

CONNECTIONS = 32

PROXYPY_PLUGIN = '''\
"""proxy.py ReverseProxy plugin for the bench: every path goes to the origin's file."""
import os
from proxy.http.server import ReverseProxyBasePlugin

TARGET = os.environ["BENCH_TARGET"].encode()
FILE = os.environ["BENCH_FILE"].encode()


class BenchReverseProxy(ReverseProxyBasePlugin):
    def routes(self):
        return [(r"/.*$", [b"http://" + TARGET + b"/" + FILE])]
'''


def pointsman_http_toml(name: str, listen: Addr, target: Addr) -> str:
    """One HTTP listener, one route for the host wrk sends, access log off like the others."""
    return f"""\
[logging]
access = "off"

[[listeners]]
name = "{name}"
protocol = "http"
listen = "{listen}"

[[listeners.routes]]
host = "{listen.host}"
endpoints = ["{target}"]
"""


@dataclass
class PointsmanHttp(Peer):
    """``pointsman serve`` with one HTTP listener and a static route to the origin."""

    name: str = "pointsman"

    def missing(self) -> str | None:
        if not (REPO / "src" / "pointsman" / "serve" / "http1.py").is_file():
            return "no pointsman HTTP listener in this tree"
        return None

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        return serve_pointsman(procs, self.name, pointsman_http_toml("bench", listen, target))


@dataclass
class ProxyPy(Peer):
    """proxy.py (``pip install proxy.py``) as a reverse proxy, one acceptor, one worker."""

    name: str = "proxy.py"

    def missing(self) -> str | None:
        try:
            import proxy  # noqa: F401
        except ImportError:
            return "proxy.py not installed (pip install proxy.py)"
        return None

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        plugin_dir = procs.workdir / "proxypy"
        plugin_dir.mkdir(exist_ok=True)
        (plugin_dir / "bench_reverse_proxy.py").write_text(PROXYPY_PLUGIN)
        env = {"PYTHONPATH": str(plugin_dir), "BENCH_TARGET": str(target),
               "BENCH_FILE": backends.SMALL_FILE}
        argv = [sys.executable, "-m", "proxy", "--hostname", listen.host,
                "--port", str(listen.port), "--num-acceptors", "1", "--num-workers", "1",
                "--threaded", "--enable-reverse-proxy",
                "--plugins", "bench_reverse_proxy.BenchReverseProxy", "--log-level", "WARNING"]
        return procs.start(self.name, argv, env=env)


def lookup_cost_ns(hosts: int, probes: int = 200_000) -> float:
    """Mean ns per ``RouteTable.lookup`` over existing hosts in a table of ``hosts`` hosts."""
    sys.path.insert(0, str(REPO / "src"))
    from pointsman.routing.table import Endpoint, RoutePool, RouteTable

    endpoint = (Endpoint("127.0.0.1", 8080),)
    table = RouteTable.build(RoutePool(f"app{i}.apps.example.com", endpoint)
                             for i in range(hosts))
    names = [f"app{i % hosts}.apps.example.com" for i in range(min(hosts, 1000))]
    lookup = table.lookup
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(probes):
            lookup(names[i % len(names)], "/index.html")
        best = min(best, time.perf_counter() - start)
    return best / probes * 1e9


class Http(Scenario):
    name = "http"
    title = "HTTP/1.1 reverse proxy: keep-alive GETs through pointsman, nginx, HAProxy, proxy.py"
    units = Units(
        rate_name="requests",
        rate_unit="req/s",
        cost_unit="CPU-µs/req",
        work_unit="requests",
        cost_scale=1e6,
    )
    reference = "nginx"
    targets: tuple[Target, ...] = (
        Target("cost", "nginx", "<=", 1.5),
        Target("cost", "nginx", "<=", 1.0),
        Target("rate", "proxy.py", ">=", 5.0),
        Target("rate", "proxy.py", ">=", 8.0),
    )
    notes: tuple[str, ...] = (
        f"wrk -t 1 -c {CONNECTIONS} keep-alive GETs of {backends.SMALL_FILE_BYTES} bytes from "
        "an nginx origin; one worker per proxy; pointsman's and the others' access logs off.",
        "Targets: CPU per request <= 1.5x nginx now (goal 1.0x); requests/s >= 5x proxy.py "
        "now (goal 8x).",
        "bare-http (bench/bare_http.py) is uvloop and httptools passing bytes through, a "
        "backend connection per client connection, nothing else: the floor for an HTTP "
        "proxy in Python.",
        "proxy.py runs --threaded: in its default threadless mode the worker died on the "
        "first request (FileNotFoundError from selector.modify) on this machine.",
    )

    def peers(self) -> list[Peer]:
        return [PointsmanHttp(), NginxHttp(), HaproxyHttp(), ProxyPy(),
                Bare("bare-http", "bench.bare_http"), Direct()]

    def start_backend(self, procs: ProcessSet) -> Addr:
        return backends.nginx_origin(procs)

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        return loadgen.wrk_load(f"http://{addr}/{backends.SMALL_FILE}", seconds,
                                CONNECTIONS)

    def settings(self) -> dict[str, Any]:
        small = lookup_cost_ns(10)
        large = lookup_cost_ns(100_000)
        return {
            "load": f"wrk -t 1 -c {CONNECTIONS} -d SECONDS --latency URL",
            "route_lookup_ns_10_hosts": round(small, 1),
            "route_lookup_ns_100k_hosts": round(large, 1),
            "route_lookup_ratio_100k_vs_10": round(large / small, 3),
        }


class HttpUnique(Http):
    """The same run with a target of its own on every request.

    pointsman remembers request heads it has seen (by their bytes) and skips
    parsing and rewriting their fields when they come again, as they do from
    wrk, health checks and polling clients. Here no head repeats, so this is
    its cost for traffic that never repeats itself.
    """

    name = "http_unique"
    title = "HTTP/1.1 reverse proxy, every request a target of its own (?n=1, ?n=2, ...)"
    targets = tuple(target for target in Http.targets if target.peer == "nginx")
    notes = (
        f"wrk -t 1 -c {CONNECTIONS} keep-alive GETs of {backends.SMALL_FILE_BYTES} bytes from "
        "an nginx origin, each with a query string of its own (bench/unique_targets.lua); "
        "one worker per proxy; access logs off.",
        "No request head repeats, so pointsman's memo of request heads never hits: its "
        "cost for traffic that does not repeat itself. The targets are the http scenario's.",
    )

    def peers(self) -> list[Peer]:
        return [peer for peer in super().peers() if not isinstance(peer, ProxyPy)]

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        return loadgen.wrk_load(f"http://{addr}/{backends.SMALL_FILE}", seconds, CONNECTIONS,
                                script=str(REPO / "bench" / "unique_targets.lua"))

    def settings(self) -> dict[str, Any]:
        return {"load": f"wrk -t 1 -c {CONNECTIONS} -d SECONDS --latency "
                        "-s bench/unique_targets.lua URL"}


SCENARIO = Http()
UNIQUE = HttpUnique()
