"""Per-connection backends (soh-router's model): how fast a new connection is served.

Each peer is ``pointsman serve`` with one TCP listener whose upstream is
``kind = "provision"``: every connection gets a fresh backend of its own, which
is stopped when the connection ends. The peers differ only in the warm pool:
0 (every connection waits for a start), 1 (soh-router's default), 2 and 4.
The backend is ``examples/per-connection/wsecho.py``, as a local process or
as a container (podman's Docker-compatible API, the local busybox image with
this machine's Python mounted read-only, as in the tests).

Two kinds of run:
- ``latency``: new connections paced below what the pool refills, each one
  timed from ``connect()`` to the first byte of the backend's answer to
  ``GET /health`` (accept-to-first-byte as a client sees it). The rate column
  is the p99 of that time in ms (lower is better); p50 and the targets
  (p99 <= 200 ms now, <= 50 ms the goal) are in the notes.
- ``rate``: closed-loop clients opening connections as fast as they are
  served; the rate column is sustained new connections per second.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import REPO, Peer, serve_pointsman
from bench.procs import Managed, ProcessSet, StartError
from bench.scenario import Plan, Scenario

__all__ = ["SCENARIOS", "PointsmanProvision", "ProvisionScenario"]

WARM_SIZES = (0, 1, 2, 4)
WSECHO = REPO / "examples" / "per-connection" / "wsecho.py"
IMAGE = "localhost/pointsman-test-echo:latest"
PODMAN_SCRIPT = REPO / "scripts" / "podman-service"
REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
CONNECT_TIMEOUT = 30.0
SOCKET_WAIT = 60.0
# Paced connections arrive slower than the pool refills: a container start and
# the previous one's removal share podman's (serialising) engine.
PACE_S = {"process": 0.2, "docker": 1.0}
RATE_CLIENTS = 4
SETTLE_S = {"process": 0.5, "docker": 2.0}
P99_TARGET_MS = 200.0
P99_GOAL_MS = 50.0


def _percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least ``pct`` % of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def _one_connection(addr: Addr) -> float | None:
    """Seconds from connect() to the backend's first byte; ``None`` when refused."""
    began = time.perf_counter()
    try:
        with socket.create_connection((addr.host, addr.port), timeout=CONNECT_TIMEOUT) as sock:
            sock.sendall(REQUEST)
            first = sock.recv(1)
            if not first:
                return None
            elapsed = time.perf_counter() - began
            while sock.recv(65536):
                pass
            return elapsed
    except OSError:
        return None


def provider_toml(kind: str, socket_path: str) -> str:
    if kind == "process":
        return (f'kind = "process"\ncommand = ["{sys.executable}", "-S", "-I", "{WSECHO}", '
                '"{port}"]\ngrace = 1.0\n')
    real = os.path.realpath(sys.executable)
    mounts = sorted({"/usr:/usr:ro", f"{sys.base_prefix}:{sys.base_prefix}:ro"})
    mount_list = ", ".join(f'"{m}"' for m in mounts)
    return (f'kind = "docker"\nurl = "unix://{socket_path}"\nimage = "{IMAGE}"\n'
            f'command = ["{real}", "-S", "-I", "/app/wsecho.py", "9000"]\nport = 9000\n'
            f'mounts = [{mount_list}]\npull = "never"\nmemory = "128m"\n')


def pointsman_provision_toml(name: str, listen: Addr, warm: int, provider: str) -> str:
    """A listener whose every connection gets its own backend from a warm pool of ``warm``."""
    max_live = 8 if "docker" in provider else 16
    return f"""\
[logging]
access = "off"

[[listeners]]
name = "{name}"
protocol = "tcp"
listen = "{listen}"
upstream = "fresh"

[upstreams.fresh]
kind = "provision"
instance = "bench-{name}-{os.getpid()}"
warm = {warm}
max_live = {max_live}
max_starting = 2
queue_timeout = 30.0
start_timeout = 20.0

[upstreams.fresh.probe]
kind = "http"
path = "/health"
interval = 0.01

[upstreams.fresh.provider]
{provider}"""


@dataclass
class PointsmanProvision(Peer):
    """``pointsman serve`` with a provision upstream of ``warm`` spare backends."""

    name: str
    warm: int
    scenario: ProvisionScenario

    def missing(self) -> str | None:
        return self.scenario.missing()

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        provider = provider_toml(self.scenario.provider, self.scenario.socket_path)
        self.scenario.names[str(listen)] = self.name
        return serve_pointsman(procs, self.name,
                               pointsman_provision_toml(self.name, listen, self.warm, provider))


@dataclass
class ProvisionScenario(Scenario):
    """One provider, one kind of run, the four warm-pool sizes side by side."""

    provider: str = "process"
    mode: str = "latency"
    socket_path: str = ""
    names: dict[str, str] = field(default_factory=dict)
    latencies: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = f"provision_{self.mode}_{self.provider}"
        self.subject = "warm1"
        self.reference = "warm0"
        self.baseline = "warm0"
        self.full = Plan(seconds=10.0 if self.mode == "latency" else 6.0, rounds=3, warmup_s=0.0)
        self.quick = Plan(seconds=4.0, rounds=1, warmup_s=0.0, retries=0)
        if self.mode == "latency":
            self.title = (f"accept-to-first-byte of a new connection to its own fresh "
                          f"{self.provider} backend, by warm pool size (paced)")
            self.units = Units(rate_name="p99 first byte", rate_unit="ms",
                               cost_unit="CPU-ms/conn", work_unit="connections",
                               cost_scale=1e3)
            self.targets = (Target("rate", "warm0", "<=", 0.5),)
        else:
            self.title = (f"sustained new connections per second, each to its own fresh "
                          f"{self.provider} backend, by warm pool size")
            self.units = Units(rate_name="connections", rate_unit="conn/s",
                               cost_unit="CPU-ms/conn", work_unit="connections",
                               cost_scale=1e3)
            self.targets = ()

    def missing(self) -> str | None:
        if self.provider == "docker" and os.geteuid() != 0:
            return "rootful podman needs root"
        return None

    def peers(self) -> list[Peer]:
        return [PointsmanProvision(f"warm{n}", n, self) for n in WARM_SIZES]

    def start_backend(self, procs: ProcessSet) -> Addr:
        """The podman API for the docker provider; the process provider needs nothing."""
        if self.provider == "docker":
            workdir = Path(procs.workdir) / "podman"
            workdir.mkdir(exist_ok=True)
            service = procs.start("podman-service",
                                  [str(PODMAN_SCRIPT), "--foreground", str(workdir)])
            self.socket_path = str(workdir / "podman.sock")
            _wait_for_socket(service, self.socket_path)
        return Addr("127.0.0.1", 9)  # unused: each peer provisions its own backends

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        time.sleep(SETTLE_S[self.provider])  # let the pool refill after the last run
        if self.mode == "latency":
            samples, errors = self._paced(addr, seconds)
        else:
            samples, errors, seconds = self._closed_loop(addr, seconds)
        details = {"connections": float(len(samples)), "errors": float(errors)}
        if samples:
            p50, p99 = _percentile(samples, 50) * 1e3, _percentile(samples, 99) * 1e3
            details.update(p50_ms=round(p50, 3), p99_ms=round(p99, 3),
                           max_ms=round(max(samples) * 1e3, 3))
            self.latencies.setdefault(self.names.get(str(addr), str(addr)), []).append(
                (p50, p99))
        if self.mode == "latency":
            rate = details.get("p99_ms", float("nan"))
        else:
            rate = len(samples) / seconds if seconds > 0 else 0.0
        return LoadResult(rate=rate, work=float(len(samples)), errors=errors, details=details)

    def _paced(self, addr: Addr, seconds: float) -> tuple[list[float], int]:
        pace = PACE_S[self.provider]
        samples: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        while next_at < deadline:
            elapsed = _one_connection(addr)
            if elapsed is None:
                errors += 1
            else:
                samples.append(elapsed)
            next_at += pace
            time.sleep(max(0.0, next_at - time.monotonic()))
        return samples, errors

    def _closed_loop(self, addr: Addr, seconds: float) -> tuple[list[float], int, float]:
        samples: list[float] = []
        errors = [0]
        lock = threading.Lock()
        began = time.monotonic()
        deadline = began + seconds

        def client() -> None:
            while time.monotonic() < deadline:
                elapsed = _one_connection(addr)
                with lock:
                    if elapsed is None:
                        errors[0] += 1
                    else:
                        samples.append(elapsed)

        threads = [threading.Thread(target=client) for _ in range(RATE_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return samples, errors[0], time.monotonic() - began

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        lines = [
            f"Backend: {WSECHO.name} as a {self.provider} backend; each connection sends "
            "GET /health and is timed from connect() to the first byte of the answer.",
        ]
        if self.mode == "latency":
            lines.append(f"Paced: one new connection every {PACE_S[self.provider]:g} s; the "
                         "rate column is the p99 in ms (lower is better).")
        else:
            lines.append(f"{RATE_CLIENTS} closed-loop clients, each opening its next "
                         "connection as soon as the last one was answered.")
        for peer, runs in sorted(self.latencies.items()):
            p50 = statistics.median(run[0] for run in runs)
            p99 = statistics.median(run[1] for run in runs)
            verdict = ""
            if self.mode == "latency" and peer != "warm0":
                verdict = (f"; p99 <= {P99_TARGET_MS:g} ms: "
                           f"{'PASS' if p99 <= P99_TARGET_MS else 'FAIL'}, goal <= "
                           f"{P99_GOAL_MS:g} ms: {'PASS' if p99 <= P99_GOAL_MS else 'FAIL'}")
            lines.append(f"{peer}: first byte p50 {p50:.1f} ms, p99 {p99:.1f} ms (median over "
                         f"all {len(runs)} load run(s), those taken again because other "
                         f"work disturbed them included){verdict}")
        return tuple(lines)

    def settings(self) -> dict[str, Any]:
        return {"provider": self.provider, "mode": self.mode, "warm_sizes": list(WARM_SIZES),
                "pace_s": PACE_S[self.provider] if self.mode == "latency" else None,
                "clients": RATE_CLIENTS if self.mode == "rate" else None}


def _wait_for_socket(service: Managed, path: str) -> None:
    """The API answers ``/_ping`` once the service is up; setup may install packages first."""
    deadline = time.monotonic() + SOCKET_WAIT
    while time.monotonic() < deadline:
        if not service.alive():
            raise StartError(f"podman-service exited: {service.log_tail()}")
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise StartError(f"podman API did not answer on {path}: {service.log_tail()}")


SCENARIOS = tuple(ProvisionScenario(provider=provider, mode=mode)
                  for mode in ("latency", "rate") for provider in ("process", "docker"))
