"""Multi-core scaling: pointsman and nginx with one and with two worker processes.

The same short-connection TCP load as ``tcp_short`` (wrk, ``Connection:
close``, so every request is a new client connection, a route decision and a
new backend connection) through ``pointsman serve`` with ``[process] workers
= 1`` and ``= 2``, and through nginx's stream module with ``worker_processes
1`` and ``2``. Scaling efficiency is ``rate(2 workers) / (2 x rate(1 worker))``
for each; on a 2-core machine the load generator and the origin share the
cores with the proxy, so neither reaches 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import backends, loadgen, peerconf
from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import (
    Direct,
    NginxStream,
    Peer,
    PointsmanTcp,
    nginx_stream_module,
    serve_pointsman,
    start_nginx,
)
from bench.procs import Managed, ProcessSet
from bench.scenario import Scenario

CONNECTIONS = 64


@dataclass
class PointsmanWorkers(PointsmanTcp):
    """``pointsman serve`` with a configured upstream, the access log off, N workers."""

    workers: int = 1

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        return serve_pointsman(procs, self.name, f"[process]\nworkers = {self.workers}\n\n"
                               + peerconf.pointsman_tcp_toml("bench", listen, target,
                                                             access_log=False))


class NginxWorkers(NginxStream):
    """nginx's stream module with ``worker_processes N``."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.name = f"nginx-w{workers}"

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        prefix = procs.workdir / self.name
        config = peerconf.nginx_stream(prefix, listen, target, nginx_stream_module())
        config = config.replace("worker_processes 1;", f"worker_processes {self.workers};")
        return start_nginx(procs, self.name, config)


class Workers(Scenario):
    name = "workers"
    title = "scaling over cores: 1 vs 2 worker processes, pointsman and nginx (TCP, new " \
            "connection per request)"
    units = Units(rate_name="connections", rate_unit="conn/s", cost_unit="CPU-µs/conn",
                  work_unit="connections", cost_scale=1e6)
    subject = "pointsman-w2"
    reference = "pointsman-w1"
    # Two workers should give at least 1.5x one worker (75 % scaling efficiency).
    targets = (Target("rate", "pointsman-w1", ">=", 1.5), Target("rate", "nginx-w2", ">=", 0.5))
    notes = (
        f"wrk -t 1 -c {CONNECTIONS} with Connection: close against nginx serving "
        f"{backends.SMALL_FILE_BYTES} bytes, through each proxy.",
        "pointsman runs `pointsman serve` ([process] workers = N, access log off); nginx "
        "runs the stream module with worker_processes N. Scaling efficiency = rate(w2) / "
        "(2 x rate(w1)).",
        "Client, origin and proxy share the machine's cores: on 2 cores a proxy with two "
        "workers competes with wrk and the origin for them.",
    )

    def peers(self) -> list[Peer]:
        return [
            PointsmanWorkers(name="pointsman-w1", mode="serve", access_log=False, workers=1),
            PointsmanWorkers(name="pointsman-w2", mode="serve", access_log=False, workers=2),
            NginxWorkers(1),
            NginxWorkers(2),
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


SCENARIO = Workers()
