"""Fixtures of the gateway tests; the helpers live in ``gateway_harness``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway_harness import Cluster


@pytest.fixture
async def cluster(nats_server: Any) -> AsyncIterator[Cluster]:
    """Gateways and instances over the test's nats-server, all closed afterwards."""
    c = Cluster(nats_server.url)
    yield c
    await c.close()
