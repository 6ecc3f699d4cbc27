"""Helpers shared by the provision tests: the echo app, config builders, a WebSocket greeting."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import connect

from pointsman.config import ProvisionUpstream
from pointsman.upstream.providers.process import label_env

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


def terminal_upstream(instance: str | None, app: Path = WSECHO, **pool: object) -> str:
    """TOML for ``[upstreams.terminal]``: ``app`` as a process per connection, probed over HTTP.

    ``instance=None`` leaves the default instance (host name + config path).
    """
    settings = {"warm": 1, "start_timeout": 5.0, **pool}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    named = f'instance = "{instance}"' if instance else ""
    return f"""
[upstreams.terminal]
kind = "provision"
{named}
{lines}

[upstreams.terminal.probe]
kind = "http"
path = "/health"
interval = 0.02

[upstreams.terminal.provider]
kind = "process"
command = ["{PYTHON}", "-S", "-I", "{app}", "{{port}}"]
grace = 1.0
"""


def terminal_labels(instance: str, upstream: str = "terminal", **more: str) -> dict[str, str]:
    """The labels (as the environment of processes) of ``instance``'s backends of ``upstream``."""
    return label_env({"pointsman.managed": "1", "pointsman.instance": instance,
                      "pointsman.upstream": upstream, **more})


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
