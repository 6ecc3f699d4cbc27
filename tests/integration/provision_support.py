"""Helpers shared by the provision tests: the echo app, config builders, a WebSocket greeting."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import connect

from pointsman.config import ProvisionUpstream

ROOT = Path(__file__).resolve().parents[2]
WSECHO = ROOT / "examples" / "per-connection" / "wsecho.py"
PYTHON = sys.executable


def unique_instance(prefix: str = "test") -> str:
    """An instance id no other test run shares, so clean-up never crosses runs."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def provision_config(provider: dict[str, Any], **pool: Any) -> ProvisionUpstream:
    pool.setdefault("backoff_initial", 0.05)
    pool.setdefault("backoff_max", 0.2)
    pool.setdefault("start_timeout", 5.0)
    pool.setdefault("probe", {"kind": "tcp", "timeout": 0.5, "interval": 0.02})
    return msgspec.convert({"kind": "provision", "provider": provider, **pool},
                           ProvisionUpstream)


def process_provider(**extra: Any) -> dict[str, Any]:
    """The echo app as a local process, started fast (no site imports)."""
    provider: dict[str, Any] = {"kind": "process",
                                "command": [PYTHON, "-S", "-I", str(WSECHO), "{port}"],
                                "grace": 1.0}
    provider.update(extra)
    return provider


async def greeting(host: str, port: int, path: str = "/") -> str:
    """Open a WebSocket, return the backend's hello, send one message and check its echo."""
    async with connect(f"ws://{host}:{port}{path}", open_timeout=5) as ws:
        hello = await ws.recv()
        await ws.send("ping")
        assert await ws.recv() == "$ ping"
        assert isinstance(hello, str)
        return hello


class PrintEvents:
    """Pool events on stdout, which pytest shows when a test fails."""

    def event(self, level: str, name: str, **fields: Any) -> None:
        print(f"{time.monotonic():.3f} {level} {name} {fields}")
