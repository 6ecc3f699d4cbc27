"""A crashed worker's provisioned backends are removed by the leader, and only those.

Two workers each warm their own backends (processes), labelled with the
worker's pid. A worker killed with SIGKILL cannot stop what it started; the
leader removes exactly that worker's backends when it reaps it, before the
replacement starts, and the sibling's leased backends keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from provision_support import greeting, terminal_labels, terminal_upstream, unique_instance
from websockets.asyncio.client import ClientConnection, connect

from harness import Pointsman
from pointsman.upstream.providers.process import processes_with_env

MAX_CONNECTIONS = 12


def config_text(instance: str) -> str:
    return """
[process]
workers = 2

[[listeners]]
protocol = "tcp"
name = "ws"
listen = "127.0.0.1:0"
upstream = "terminal"

""" + terminal_upstream(instance, max_live=16, backoff_initial=0.05)


def environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in items if b"=" in item)


def owners(instance: str) -> dict[str, set[int]]:
    """Worker pid (as labelled) -> the backend processes it provisioned."""
    found: dict[str, set[int]] = {}
    for pid in processes_with_env(terminal_labels(instance)):
        with contextlib.suppress(OSError):
            found.setdefault(environ(pid)["POINTSMAN_WORKER"], set()).add(pid)
    return found


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_a_killed_workers_backends_go_and_its_siblings_stay(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(config_text(instance))))
    host, port = proxy.address("ws")
    held: list[tuple[ClientConnection, str]] = []  # (socket, worker pid of its backend)
    try:
        await wait_for(lambda: len(owners(instance)) == 2)  # each worker warmed one
        # hold connections until both workers have a leased backend
        for _ in range(MAX_CONNECTIONS):
            ws = await connect(f"ws://{host}:{port}/", open_timeout=10)
            hello = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(hello, str)
            backend = hello.removeprefix("hello from ")
            pid = processes_with_env({**terminal_labels(instance), "POINTSMAN_BACKEND": backend})[0]
            held.append((ws, environ(pid)["POINTSMAN_WORKER"]))
            if len({worker for _, worker in held}) == 2:
                break
        workers = {worker for _, worker in held}
        assert len(workers) == 2, "connections never reached both workers"
        victim = held[0][1]
        survivor = next(worker for worker in workers if worker != victim)
        before = owners(instance)
        assert before[victim] and before[survivor]

        os.kill(int(victim), signal.SIGKILL)
        took = await wait_for(lambda: victim not in owners(instance), timeout=5.0)
        assert took < 5.0
        swept = proxy.wait_event("provision.worker_swept",
                                 predicate=lambda e: e["pid"] == int(victim))
        assert swept["count"] == len(before[victim])
        # the sibling's backends, leased ones included, were not touched and still serve
        assert before[survivor] <= owners(instance).get(survivor, set())
        for ws, worker in held:
            if worker == survivor:
                await ws.send("still there?")
                assert await asyncio.wait_for(ws.recv(), 5) == "$ still there?"
        # the restarted worker serves new connections with backends of its own
        proxy.wait_event("worker_restarted", predicate=lambda e: e["replaced"] == int(victim))
        await wait_for(lambda: len(owners(instance)) == 2)
        for _ in range(4):
            assert (await greeting(host, port)).startswith("hello from ")
    finally:
        for ws, _ in held:
            with contextlib.suppress(Exception):
                await ws.close()
        proxy.stop(signal.SIGTERM)
        for pid in processes_with_env(terminal_labels(instance)):  # never leave our own behind
            os.kill(pid, signal.SIGKILL)
    assert processes_with_env(terminal_labels(instance)) == []
