"""examples/chat end to end: `pointsman serve`, two service processes, two clients, NATS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[3]
CHAT = ROOT / "examples" / "chat"


def chat_config(nats_url: str) -> str:
    text = (CHAT / "gateway.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    text = text.replace('nats_url = "nats://127.0.0.1:4222"', f'nats_url = "{nats_url}"')
    return text.replace('static = "static"', f'static = "{CHAT / "static"}"')


@pytest.fixture
def chat_services(nats_server: Any) -> Iterator[Callable[[int], list[subprocess.Popen[bytes]]]]:
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def start(count: int) -> list[subprocess.Popen[bytes]]:
        procs = [subprocess.Popen(
            [sys.executable, str(CHAT / "service.py"), "--nats", nats_server.url,
             "--interval", "0.5"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]
        for proc in procs:
            assert proc.stderr is not None
            line = proc.stderr.readline().decode()  # "... service chat instance X started"
            assert "started" in line, line
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def until(ws: ClientConnection, check: Callable[[Any], bool]) -> Any:
    for _ in range(20):
        message = await recv_json(ws)
        if check(message):
            return message
    raise AssertionError("expected message never came")


async def test_chat_across_two_instances(nats_server: Any, pointsman: Any, write_config: Any,
                                         chat_services: Any) -> None:
    gateway = pointsman("serve", "-c", str(write_config(chat_config(nats_server.url))))
    chat_services(2)
    time.sleep(0.3)  # both announcements reach the gateway
    host, port = gateway.address("chat")
    with urllib.request.urlopen(f"http://{host}:{port}/") as page:
        assert b"pointsman chat" in page.read()
    async with connect(f"ws://{host}:{port}/ws") as ada, \
            connect(f"ws://{host}:{port}/ws") as bob:
        await ada.send(json.dumps({"path": "/rooms/lobby/join", "id": 1, "data": {"name": "ada"}}))
        joined_a = await until(ada, lambda m: m.get("id") == 1)
        await bob.send(json.dumps({"path": "/rooms/lobby/join", "id": 1, "data": {"name": "bob"}}))
        joined_b = await until(bob, lambda m: m.get("id") == 1)
        # Least connections put the two sockets on different instances.
        assert joined_a["data"]["instance"] != joined_b["data"]["instance"]
        await until(ada, lambda m: m.get("data", {}).get("event") == "joined"
                    and m["data"]["name"] == "bob")
        await ada.send(json.dumps({"path": "/rooms/lobby/say", "id": 2,
                                   "data": {"text": "hello bob"}}))
        for ws in (ada, bob):
            said = await until(ws, lambda m: m.get("data", {}).get("event") == "message")
            assert said["path"] == "/rooms/lobby/events"
            assert said["data"]["text"] == "hello bob" and said["data"]["name"] == "ada"
        await bob.send(json.dumps({"path": "/rooms/other/say", "id": 3, "data": {"text": "x"}}))
        refused = await until(bob, lambda m: m.get("id") == 3)
        assert refused["error"]["code"] == "not_joined"
