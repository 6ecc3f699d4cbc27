"""Fixtures of the gateway tests; the helpers live in ``gateway_harness``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from gateway_harness import Cluster


@pytest.fixture
async def cluster(nats_server: Any) -> AsyncIterator[Cluster]:
    """Gateways and instances over the test's nats-server, all closed afterwards."""
    c = Cluster(nats_server.url)
    yield c
    await c.close()


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every gateway test runs on both loops: uvloop in production, asyncio as the reference."""
    import uvloop
    if "chat_example" in item.nodeid:  # subprocesses do the work; one loop is enough
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
