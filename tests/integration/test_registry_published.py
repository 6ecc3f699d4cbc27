"""``pointsman_registry_published_routes`` under a leader: what every worker routes by.

The leader's registry builds no table; the gauge is the fewest route keys any
serving worker has published, reported by each worker soon after it
publishes. So the gauge never runs ahead of a worker, a stalled worker holds
it back, and a registration shows in it within milliseconds, not at the next
one-second stats.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import nats
from registry_support import admin_call, admin_url, wait_until
from test_leader_admin import ADMIN
from test_process import children, config_text

from harness import NatsServer, Pointsman, ThreadedServer

GAUGE = "pointsman_registry_published_routes"
STATIC = """
[[routes]]
uris = ["static.example.com"]
endpoints = ["127.0.0.1:7001"]
"""


def gauge(base: str) -> float:
    text = admin_call(base, "GET", "/metrics")[1]
    for line in text.splitlines():
        if line.startswith(GAUGE + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {GAUGE} in /metrics")


def worker_keys(base: str) -> list[set[str]]:
    return [set(table["routes"]) for table in admin_call(base, "GET", "/routes?workers=1")[1]]


def _serve(pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
           backend: ThreadedServer, nats_server: NatsServer) -> Pointsman:
    text = (config_text(backend, workers=2) + STATIC + ADMIN
            + f'\n[nats]\nservers = ["{nats_server.url}"]\n')
    return pointsman("serve", "-c", str(write_config(text)))


def _body(i: int) -> bytes:
    return json.dumps({"host": "127.0.0.1", "port": 7100 + i,
                       "uris": [f"app{i}.example.com"]}).encode()


async def test_the_gauge_is_what_every_worker_routes_and_follows_within_milliseconds(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], nats_server: NatsServer) -> None:
    base = admin_url(_serve(pointsman, write_config, echo_server(), nats_server))
    await asyncio.to_thread(wait_until, lambda: gauge(base) == 1.0, 5.0)  # the file's route
    client = await nats.connect(nats_server.url)
    try:
        count = 300
        start = time.monotonic()
        for i in range(count):
            await client.publish("router.register", _body(i))
        await client.flush()
        await asyncio.to_thread(wait_until, lambda: gauge(base) >= 1 + count, 10.0, 0.002)
        elapsed = time.monotonic() - start
        # Reported after each publish, not with the one-second stats.
        assert elapsed < 0.9, elapsed
        wanted = {f"app{i}.example.com" for i in range(count)} | {"static.example.com"}
        tables = await asyncio.to_thread(worker_keys, base)
        assert len(tables) == 2 and all(keys == wanted for keys in tables)
        # The leader publishes no table: the publishes counter is the workers' sum.
        text = admin_call(base, "GET", "/metrics")[1]
        publishes = [line for line in text.splitlines()
                     if line.startswith("pointsman_registry_publishes_total ")]
        assert len(publishes) == 1 and float(publishes[0].split()[1]) >= 2, publishes
        await client.publish("router.unregister", _body(0))
        await client.flush()
        await asyncio.to_thread(wait_until, lambda: gauge(base) == float(count), 5.0)
    finally:
        await client.close()


async def test_a_stalled_worker_holds_the_gauge_back(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], nats_server: NatsServer) -> None:
    handle = _serve(pointsman, write_config, echo_server(), nats_server)
    base = admin_url(handle)
    await asyncio.to_thread(wait_until, lambda: gauge(base) == 1.0, 5.0)
    stalled = children(handle.process.pid)[0]
    client = await nats.connect(nats_server.url)
    os.kill(stalled, signal.SIGSTOP)
    try:
        await client.publish("router.register", _body(1))
        await client.flush()
        # The other worker routes it; the stalled one cannot, and the gauge (the
        # fewest any worker routes by) says so. Each admin call waits for the stalled
        # worker's answer (at most CALL_TIMEOUT), time enough for the other's report.
        await asyncio.to_thread(wait_until, lambda: any(
            "app1.example.com" in keys for keys in worker_keys(base)), 8.0)
        assert await asyncio.to_thread(gauge, base) == 1.0
    finally:
        os.kill(stalled, signal.SIGCONT)
    try:
        await asyncio.to_thread(wait_until, lambda: gauge(base) == 2.0, 5.0)
    finally:
        await client.close()
