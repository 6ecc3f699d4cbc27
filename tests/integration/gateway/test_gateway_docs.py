"""The service in docs/gateway.md runs as printed (minus its NATS line) and is under 20 lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway_harness import eventually
from websockets.asyncio.client import connect

from pointsman.serve.gateway import GatewaySettings
from pointsman.serve.gateway_server import serve_gateway
from pointsman.service import LocalTransport, Router, Service

DOC = Path(__file__).resolve().parents[3] / "docs" / "gateway.md"
RUN_LINE = 'Service("counter", NatsTransport("nats://127.0.0.1:4222"), router).run()'


def documented_router() -> Router:
    block = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    assert len(block.strip().splitlines()) < 20
    assert RUN_LINE in block
    namespace: dict[str, object] = {}
    exec(block.replace(RUN_LINE, ""), namespace)
    router = namespace["router"]
    assert isinstance(router, Router)
    return router


async def test_documented_service() -> None:
    bus = LocalTransport()
    service = Service("counter", bus, documented_router())
    await service.start()
    server = await serve_gateway(GatewaySettings(), bus)
    try:
        await eventually(lambda: len(server.gateway.index) == 1)
        host, port = server.addresses[0]
        async with connect(f"ws://{host}:{port}/ws") as ws:
            for seen in (1, 2):
                await ws.send(json.dumps({"path": "/counter/ada", "id": seen}))
                assert json.loads(await ws.recv())["data"] == {"name": "ada", "seen": seen}
            await ws.send(json.dumps({"path": "/health", "id": 3}))
            assert json.loads(await ws.recv())["error"]["code"] == "not_found"
        assert await service.call("/health") == "ok"
    finally:
        await server.close()
        await service.stop()
