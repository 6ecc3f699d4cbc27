"""WebSocket clients through a real ``pointsman serve`` TCP listener to per-connection processes.

The listener names a ``kind = "provision"`` upstream; each connection leases a
backend of its own, the access log names it, and the backend is stopped when
the connection ends. (The docker provider gets the same treatment in
``test_provision_docker.py``.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from provision_support import greeting, terminal_labels, terminal_upstream, unique_instance
from registry_support import TOKEN, admin_call, admin_url
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness import Pointsman
from pointsman.serve.provision import default_instance
from pointsman.upstream.providers.process import processes_with_env


def config_text(instance: str | None, **pool: object) -> str:
    """The listener config; ``instance=None`` leaves the default (host name + file path)."""
    settings = {"max_live": 4, "queue_timeout": 2.0, "backoff_initial": 0.05, **pool}
    return """
[[listeners]]
protocol = "tcp"
name = "ws"
listen = "127.0.0.1:0"
upstream = "terminal"
""" + terminal_upstream(instance, **settings)


def backend_of(pid: int) -> str:
    """The backend id a provisioned process carries in its environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [item for item in environ if item.startswith(b"POINTSMAN_BACKEND=")]
    return found[0].split(b"=", 1)[1].decode()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


async def test_each_websocket_gets_its_own_process_named_in_the_access_log(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    admin = f'[admin]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'
    proxy = pointsman("serve", "-c", str(write_config(admin + config_text(instance))))
    host, port = proxy.address("ws")
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) >= 1)  # warmed
    hellos = await asyncio.gather(greeting(host, port), greeting(host, port))
    assert hellos[0] != hellos[1]
    records = proxy.wait_access(2)
    ids = {record["backend_id"] for record in records}
    assert {f"hello from {backend_id}" for backend_id in ids} == set(hellos)
    assert all(record["reason"] == "done" for record in records)
    # the connections are over, so their processes are gone; one warm spare remains
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 1)
    # the pool as the admin API and the metrics show it
    base = admin_url(proxy)
    status, state = admin_call(base, "GET", "/provision")
    assert status == 200 and state["terminal"]["totals"]["leases"] == 2
    assert state["terminal"]["provider"] == "process"
    status, text = admin_call(base, "GET", "/metrics")
    assert 'pointsman_provision_leases_total{upstream="terminal"} 2.0' in text
    proxy.stop(signal.SIGTERM)
    assert processes_with_env(terminal_labels(instance)) == []


async def test_exhausted_pool_closes_the_tcp_connection(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    text = config_text(instance, warm=0, max_live=1, queue_timeout=0.3)
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("ws")
    async with connect(f"ws://{host}:{port}/", open_timeout=5) as first:
        assert (await first.recv()).startswith("hello from ")
        began = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - closed before the handshake completes
            async with connect(f"ws://{host}:{port}/", open_timeout=5):
                pass
        assert 0.25 <= time.monotonic() - began < 2.0
    records = proxy.wait_access(2)
    refused = [r for r in records if r["reason"] == "pool_exhausted:timeout"]
    assert len(refused) == 1 and "backend_id" not in refused[0]


async def test_sigkill_then_restart_removes_the_leftovers(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    # no explicit instance: the default (host name + config path) must survive a restart
    path = write_config(config_text(None, warm=2))
    instance = default_instance(str(path))
    proxy = pointsman("serve", "-c", str(path))
    host, port = proxy.address("ws")
    held = socket.create_connection((host, port))  # one leased backend, two warm
    try:
        wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 3)
        before = processes_with_env(terminal_labels(instance))
        proxy.stop(signal.SIGKILL)
        assert processes_with_env(terminal_labels(instance)) == before  # orphans, still running
        again = pointsman("serve", "-c", str(path))
        again.wait_event("provision.leftovers_removed",
                         predicate=lambda event: event["count"] == 3)
        wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 2)
        assert not set(before) & set(processes_with_env(terminal_labels(instance)))
        again.stop(signal.SIGTERM)
        assert processes_with_env(terminal_labels(instance)) == []
    finally:
        held.close()
        for pid in processes_with_env(terminal_labels(instance)):  # never leave our own behind
            os.kill(pid, signal.SIGKILL)


def http_config_text(instance: str, **pool: object) -> str:
    """An HTTP listener whose route for 127.0.0.1 provisions a process per connection."""
    tcp = config_text(instance, **pool)
    upstream = tcp[tcp.index("[upstreams.terminal]"):]
    return f"""
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"

[[listeners.routes]]
host = "127.0.0.1"
upstream = "terminal"

{upstream}"""


def http_get(host: str, port: int, path: str) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                     .encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_http_route_gives_each_websocket_its_own_backend(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(http_config_text(instance))))
    host, port = proxy.address("web")
    hellos = await asyncio.gather(greeting(host, port, "/a"), greeting(host, port, "/b"))
    assert hellos[0] != hellos[1]
    records = proxy.wait_access(2)
    assert {f"hello from {r['backend_id']}" for r in records} == set(hellos)
    assert all(record["status"] == 101 for record in records)
    # a plain request gets a backend too, stopped once its connection closes
    assert http_get(host, port, "/health").startswith(b"HTTP/1.1 200")
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 1)  # the warm spare
    proxy.stop(signal.SIGTERM)
    assert processes_with_env(terminal_labels(instance)) == []


async def test_http_route_refuses_with_503_or_1013_when_the_pool_is_exhausted(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    text = http_config_text(instance, warm=0, max_live=1, queue_timeout=0.3)
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("web")
    async with connect(f"ws://{host}:{port}/", open_timeout=5) as first:
        assert (await first.recv()).startswith("hello from ")
        response = await asyncio.get_running_loop().run_in_executor(
            None, http_get, host, port, "/health")
        assert response.startswith(b"HTTP/1.1 503")
        # a WebSocket is told "try again later" with close code 1013, which page code can
        # see (a refused handshake reaches a browser's WebSocket as 1006)
        async with connect(f"ws://{host}:{port}/", open_timeout=5) as refused:
            with pytest.raises(ConnectionClosed) as closed:
                await refused.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "try again later")
    records = proxy.wait_access(3)
    assert sorted(record["status"] for record in records) == [101, 503, 503]


async def test_reload_moves_pools_to_the_new_workers_and_stops_the_old_spares(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    """A reload starts new workers with pools of their own; the old workers' spares go.

    Pools live in worker processes, so a reload cannot hand a warm spare from an
    old worker to a new one: the new generation warms its own, and each old
    worker stops its backends as it drains (it never sweeps: a sweep by the
    shared instance label would take its siblings' backends too).
    """
    instance = unique_instance()
    path = write_config(config_text(instance, warm=1))
    proxy = pointsman("serve", "-c", str(path))
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 1)
    first = processes_with_env(terminal_labels(instance))
    path.write_text(config_text(instance, warm=1).replace('name = "ws"', 'name = "ws2"'))
    proxy.signal(signal.SIGHUP)
    reloaded = proxy.wait_event("reloaded")
    host, _, port = reloaded["listeners"]["ws2"][0].rpartition(":")
    hello = await greeting(host, int(port))
    assert hello.startswith("hello from ")
    wait_until(lambda: not set(first) & set(processes_with_env(terminal_labels(instance))))
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 1)  # the new spare
    path.write_text(config_text(instance, warm=2))
    proxy.signal(signal.SIGHUP)
    spare = processes_with_env(terminal_labels(instance))
    proxy.wait_event("reloaded", predicate=lambda e: "ws" in e.get("listeners", {}))
    wait_until(lambda: not set(spare) & set(processes_with_env(terminal_labels(instance))))
    wait_until(lambda: len(processes_with_env(terminal_labels(instance))) == 2)
    proxy.stop(signal.SIGTERM)
    assert processes_with_env(terminal_labels(instance)) == []
