"""Gateway services on provisioned backends: one fresh SDK instance per gateway socket.

A real ``pointsman serve`` runs a gateway listener whose service ``term`` is a
``kind = "provision"`` upstream of processes (``provisioned_service.py``, an
SDK service given ``{nats_url}`` and ``{instance_id}``) over a real
nats-server. Each socket is pinned to the instance it leased; closing the
socket stops that process; an exhausted pool closes the socket with 1013.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from provision_support import PYTHON, terminal_labels, unique_instance
from registry_support import TOKEN, admin_call, admin_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from harness import NatsServer, Pointsman
from pointsman.cli import main
from pointsman.upstream.providers.base import service_instance_id
from pointsman.upstream.providers.process import processes_with_env

SERVICE = Path(__file__).resolve().parent / "provisioned_service.py"


def gateway_config(nats_url: str, instance: str, **pool: object) -> str:
    settings = {"warm": 1, "max_live": 4, "queue_timeout": 5.0, "start_timeout": 10.0,
                "backoff_initial": 0.05, **pool}
    lines = "\n".join(f"{key} = {value!r}" for key, value in settings.items())
    return f"""
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[listeners]]
protocol = "gateway"
name = "gw"
listen = "127.0.0.1:0"
gateway_name = "gw"
nats_url = "{nats_url}"
announce_interval = 0.5

[[listeners.services]]
name = "term"
upstream = "term"

[upstreams.term]
kind = "provision"
instance = "{instance}"
{lines}

[upstreams.term.probe]
kind = "announce"
interval = 0.05

[upstreams.term.provider]
kind = "process"
command = ["{PYTHON}", "{SERVICE}", "{{nats_url}}", "{{instance_id}}"]
grace = 2.0
"""


def service_pids(instance: str) -> list[int]:
    """The running service processes of ``instance``'s ``term`` pool."""
    return processes_with_env(terminal_labels(instance, "term"))


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def ready(proxy: Pointsman, count: int) -> None:
    """Until the pool has ``count`` spares ready (announced), as the admin API shows it."""
    base = admin_url(proxy)
    await wait_for(lambda: admin_call(base, "GET", "/provision")[1]["term"]["counts"]["ready"]
                   == count)


async def whoami(ws: ClientConnection, ident: str) -> dict[str, Any]:
    await ws.send(json.dumps({"path": "/whoami", "id": ident}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["id"] == ident, reply
    data: dict[str, Any] = reply["data"]
    return data


async def test_each_socket_gets_its_own_instance_removed_when_it_closes(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        nats_server: NatsServer, capsys: pytest.CaptureFixture[str]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(gateway_config(nats_server.url,
                                                                     instance))))
    host, port = proxy.address("gw")
    url = f"ws://{host}:{port}/ws"
    try:
        await wait_for(lambda: len(service_pids(instance)) == 1)  # warm
        async with connect(url, open_timeout=10) as first, \
                connect(url, open_timeout=10) as second:
            one = [await whoami(first, f"a{i}") for i in range(3)]
            two = await whoami(second, "b0")
            # pinned: every message of a socket reaches the same instance, which has
            # this socket alone and keeps its per-socket state
            assert {answer["instance"] for answer in one} == {one[0]["instance"]}
            assert [answer["count"] for answer in one] == [1, 2, 3]
            assert one[-1]["sockets"] == 1 and two["sockets"] == 1
            assert two["instance"] != one[0]["instance"]
            live = service_pids(instance)
            assert {one[0]["pid"], two["pid"]} <= set(live)
            # `pointsman routes` lists them, busy
            capsys.readouterr()
            assert main(["routes", "--admin", admin_url(proxy), "--token", TOKEN]) == 0
            shown = capsys.readouterr().out
            busy = [line for line in shown.splitlines() if line.startswith("term ")
                    and " busy " in line]
            assert {line.split()[1] for line in busy} == {one[0]["instance"], two["instance"]}
            # the pool warms the next one (ready once announced); a third socket takes it
            await ready(proxy, 1)
            began = time.monotonic()
            async with connect(url, open_timeout=10) as third:
                assert time.monotonic() - began < 0.5
                three = await whoami(third, "c0")
                assert three["instance"] not in (one[0]["instance"], two["instance"])
            await wait_for(lambda: three["pid"] not in service_pids(instance))
        # both sockets closed: their instances are gone, the spare stays
        await wait_for(lambda: not {one[0]["pid"], two["pid"]}
                       & set(service_pids(instance)))
        await wait_for(lambda: len(service_pids(instance)) == 1)
        # each socket's access record names the backend that served it
        records = proxy.wait_access(3)
        served = {service_instance_id(r["backend_ids"]["term"]): r["frames_in"] for r in records}
        # the messages sent, and the close
        assert served == {one[0]["instance"]: 4, two["instance"]: 2, three["instance"]: 2}
        assert all(r["kind"] == "gateway" and r["code"] == 1000 for r in records)
    finally:
        proxy.stop()
    assert service_pids(instance) == []


async def test_an_exhausted_pool_closes_the_socket_with_1013(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        nats_server: NatsServer) -> None:
    instance = unique_instance()
    text = gateway_config(nats_server.url, instance, warm=1, max_live=1, queue_timeout=0.3)
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("gw")
    url = f"ws://{host}:{port}/ws"
    try:
        await ready(proxy, 1)
        async with connect(url, open_timeout=10) as first:  # the only one there may be
            assert (await whoami(first, "a"))["sockets"] == 1
            async with connect(url, open_timeout=10) as refused:
                with pytest.raises(ConnectionClosed) as closed:
                    await refused.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013,
                                                                          "try again later")
        refused_record = proxy.wait_access(1)[0]
        assert (refused_record["reason"], refused_record["code"]) == ("pool_exhausted", 1013)
    finally:
        proxy.stop()
    assert service_pids(instance) == []


async def test_a_vanished_instance_closes_its_socket_with_1011(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        nats_server: NatsServer) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(gateway_config(nats_server.url,
                                                                     instance))))
    host, port = proxy.address("gw")
    try:
        async with connect(f"ws://{host}:{port}/ws", open_timeout=10) as ws:
            pid = (await whoami(ws, "a"))["pid"]
            import os
            import signal
            os.kill(pid, signal.SIGTERM)  # the service says goodbye (stopping)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    finally:
        proxy.stop()
    assert service_pids(instance) == []


async def test_a_handshake_waiting_for_an_instance_ends_when_pointsman_stops(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        nats_server: NatsServer) -> None:
    instance = unique_instance()
    text = gateway_config(nats_server.url, instance, warm=1, max_live=1, queue_timeout=30.0)
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("gw")
    url = f"ws://{host}:{port}/ws"
    await ready(proxy, 1)
    async with connect(url, open_timeout=10) as first:
        assert (await whoami(first, "a"))["sockets"] == 1
        waiting = asyncio.ensure_future(connect(url, open_timeout=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # queued: the pool has no instance to give
        began = time.monotonic()
        proxy.stop()
        with pytest.raises(Exception):  # noqa: B017 - the handshake never completes
            await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - began < 5.0
    assert service_pids(instance) == []
