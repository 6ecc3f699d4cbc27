"""HTTP/1.1 keep-alive requests through a reverse proxy: requests per second.

wrk keeps 32 connections open and sends small GETs through each peer to an
nginx origin. pointsman joins this comparison when its HTTP listener lands;
until then the scenario measures the peers it will be held against.
"""

from __future__ import annotations

from typing import Any

from bench import backends, loadgen
from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import Direct, HaproxyHttp, NginxHttp, Peer
from bench.procs import ProcessSet
from bench.scenario import Scenario

CONNECTIONS = 32


class HttpKeepalive(Scenario):
    name = "http_keepalive"
    title = "HTTP/1.1 keep-alive requests per second through a reverse proxy (wrk)"
    units = Units(
        rate_name="requests",
        rate_unit="req/s",
        cost_unit="CPU-µs/req",
        work_unit="requests",
        cost_scale=1e6,
    )
    targets = (Target("rate", "nginx", ">=", 1.0), Target("cost", "nginx", "<=", 1.0))
    reference = "nginx"
    notes = (
        f"wrk -t 1 -c {CONNECTIONS} keep-alive against nginx serving "
        f"{backends.SMALL_FILE_BYTES} bytes; nginx proxies with upstream keepalive, "
        "HAProxy runs mode http with http-reuse always.",
        "pointsman's HTTP listener is not in this tree yet: this scenario measures its peers.",
    )

    def peers(self) -> list[Peer]:
        return [HaproxyHttp(), NginxHttp(), Direct()]

    def start_backend(self, procs: ProcessSet) -> Addr:
        return backends.nginx_origin(procs)

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        result = loadgen.run_wrk(
            f"http://{addr}/{backends.SMALL_FILE}", seconds, connections=CONNECTIONS
        )
        return LoadResult(
            rate=result.requests_per_s,
            work=result.requests,
            errors=result.errors,
            details={"requests": result.requests, "seconds": result.seconds,
                     **{f"latency_{k}_ms": v for k, v in result.latency_ms.items()}},
        )

    def settings(self) -> dict[str, Any]:
        return {"load": f"wrk -t 1 -c {CONNECTIONS} -d SECONDS --latency URL"}


SCENARIO = HttpKeepalive()
