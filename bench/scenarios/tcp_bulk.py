"""Bulk TCP through a TCP proxy: throughput and CPU seconds per GiB moved.

One iperf3 stream (client to server) runs through each peer in turn. HAProxy
splices in the kernel, so this is the hardest peer for a user-space proxy.
"""

from __future__ import annotations

from typing import Any

from bench import backends, loadgen
from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import (
    Bare,
    Direct,
    HaproxyTcp,
    HaproxyTcpCopy,
    NginxStream,
    Peer,
    PointsmanTcp,
)
from bench.procs import ProcessSet
from bench.scenario import Scenario


class TcpBulk(Scenario):
    name = "tcp_bulk"
    title = "bulk TCP throughput through a TCP proxy (iperf3, one stream)"
    units = Units(
        rate_name="throughput", rate_unit="Gbit/s", cost_unit="CPU-s/GiB", work_unit="GiB"
    )
    targets = (
        Target("rate", "haproxy", ">=", 1.5),
        Target("cost", "haproxy", "<=", 0.5),
        Target("rate", "direct", ">=", 0.7),
    )
    notes = (
        "HAProxy runs mode tcp with option splice-auto/splice-request/splice-response, "
        "nbthread 1; nginx runs the stream module with worker_processes 1.",
        "Client, server and proxy share the machine's cores, so a proxy's CPU also "
        "slows the endpoints; direct is the loopback ceiling with no proxy.",
        "Reference points, not competitors: haproxy-copy is the same HAProxy without "
        "splice; bare-splice (bench/bare_splice.py) is a thread per direction doing "
        "blocking splice with a 1 MiB pipe and nothing else, the floor for a relay in "
        "Python.",
    )

    def peers(self) -> list[Peer]:
        return [PointsmanTcp(), HaproxyTcp(), NginxStream(), HaproxyTcpCopy(),
                Bare("bare-splice", "bench.bare_splice"), Direct()]

    def start_backend(self, procs: ProcessSet) -> Addr:
        return backends.iperf3_server(procs)

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        result = loadgen.run_iperf3(addr, seconds)
        return LoadResult(
            rate=result.gbit_per_s,
            work=result.gib,
            details={"bytes": result.bytes, "seconds": result.seconds,
                     "retransmits": result.retransmits},
        )

    def settings(self) -> dict[str, Any]:
        return {"load": "iperf3 -c ADDR -t SECONDS -J (1 stream, client to server)"}


SCENARIO = TcpBulk()
