"""Memory per idle WebSocket on the message gateway, measured at N and extrapolated.

``python -m bench.gateway_memory --connections 10000`` starts a nats-server and
``pointsman serve`` with one gateway listener, reads the gateway's RSS, opens
N WebSockets that each send one envelope (so every socket is also pinned to a
service instance, the realistic idle state) and then stay idle, reads RSS
again, and prints KiB per socket and the extrapolation to 100k. The target
the gateway issue set: <= 40 KiB per idle socket now, 20 KiB the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers import REPO, serve_pointsman
from bench.procs import ProcessSet, free_port

TARGET_KIB = 40.0
GOAL_KIB = 20.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_idle(url: str, count: int, batch: int = 200) -> list[Any]:
    from bench.wsload import _Conn, _Load

    loop = asyncio.get_running_loop()
    load = _Load(url, "json")
    load.stopping = True  # a reply does not trigger another send
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    conns: list[Any] = []
    while len(conns) < count:
        group = [loop.create_connection(lambda: _Conn(load), host, int(port))
                 for _ in range(min(batch, count - len(conns)))]
        for _, conn in await asyncio.gather(*group):
            conns.append(conn)
        for conn in conns[-batch:]:
            await asyncio.wait_for(conn.ready, 30)
            load.send(conn)
    deadline = time.monotonic() + 60
    while sum(len(c.sent) for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return conns


def measure(connections: int, encoding: str) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections * 2 + 1000), hard))
    with tempfile.TemporaryDirectory(prefix="gwmem-") as tmp, ProcessSet(Path(tmp)) as procs:
        nats_port, gw_port = free_port(), free_port()
        nats_url = f"nats://127.0.0.1:{nats_port}"
        nats = procs.start("nats", ["nats-server", "-a", "127.0.0.1", "-p", str(nats_port)])
        nats.wait_listening(nats_port)
        gateway = serve_pointsman(procs, "gateway", f"""
[logging]
access = "off"
[[listeners]]
protocol = "gateway"
name = "mem"
listen = "127.0.0.1:{gw_port}"
encoding = "{encoding}"
nats_url = "{nats_url}"
[listeners.limits]
max_connections = {connections + 10}
""")
        env = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PYTHONUNBUFFERED": "1"}
        gateway.wait_listening(gw_port)
        procs.start("service", [sys.executable, "-m", "bench.ws_backends", "service",
                                "--nats", nats_url, "--encoding", encoding], env=env)
        time.sleep(1.5)
        before = rss_kib(gateway.pid)
        import uvloop

        async def run() -> tuple[int, float]:
            started = time.monotonic()
            conns = await open_idle(f"ws://127.0.0.1:{gw_port}/ws", connections)
            opened = time.monotonic() - started
            await asyncio.sleep(2.0)
            after = rss_kib(gateway.pid)
            for conn in conns:
                conn.transport.close()
            return after, opened

        after, opened = uvloop.run(run())
    per = (after - before) / connections
    return {"connections": connections, "encoding": encoding, "rss_before_kib": before,
            "rss_after_kib": after, "kib_per_socket": round(per, 2),
            "extrapolated_100k_mib": round((before + per * 100_000) / 1024, 1),
            "open_seconds": round(opened, 2), "target_kib": TARGET_KIB, "goal_kib": GOAL_KIB,
            "verdict": "PASS" if per <= TARGET_KIB else "FAIL"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--encoding", default="json", choices=["json", "msgpack"])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    os.environ.setdefault("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    result = measure(args.connections, args.encoding)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
