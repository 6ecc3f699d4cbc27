"""Short TCP connections through a TCP proxy: new connections per second.

wrk sends one HTTP request per connection (``Connection: close``) to an
nginx origin serving a small file, through each peer in turn, so every
request is a new client connection, a new route decision and a new backend
connection.
"""

from __future__ import annotations

from typing import Any

from bench import backends, loadgen
from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import Direct, HaproxyTcp, NginxStream, Peer, PointsmanTcp
from bench.procs import ProcessSet
from bench.scenario import Scenario

CONNECTIONS = 32


class TcpShort(Scenario):
    name = "tcp_short"
    title = "new TCP connections per second through a TCP proxy (wrk, Connection: close)"
    units = Units(
        rate_name="connections",
        rate_unit="conn/s",
        cost_unit="CPU-µs/conn",
        work_unit="connections",
        cost_scale=1e6,
    )
    targets = (Target("rate", "haproxy", ">=", 0.5),)
    notes = (
        f"wrk -t 1 -c {CONNECTIONS} with Connection: close against nginx serving "
        f"{backends.SMALL_FILE_BYTES} bytes; each request is one client connection "
        "and one backend connection.",
        "pointsman runs `pointsman tcp -c ROUTER.py` (a Python route function per "
        "connection, one access-log line per connection); pointsman-serve runs "
        "`pointsman serve` with the same route as a configured upstream and the access "
        "log off, as HAProxy and nginx log nothing here.",
    )

    def peers(self) -> list[Peer]:
        return [
            PointsmanTcp(),
            PointsmanTcp(name="pointsman-serve", mode="serve", access_log=False),
            HaproxyTcp(),
            NginxStream(),
            Direct(),
        ]

    def start_backend(self, procs: ProcessSet) -> Addr:
        return backends.nginx_origin(procs)

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        return loadgen.wrk_load(f"http://{addr}/{backends.SMALL_FILE}", seconds,
                                CONNECTIONS, headers=["Connection: close"])

    def settings(self) -> dict[str, Any]:
        return {"load": f"wrk -t 1 -c {CONNECTIONS} -d SECONDS --latency "
                        "-H 'Connection: close' URL"}


SCENARIO = TcpShort()
