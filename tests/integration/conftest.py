"""Fixtures several integration test files share: a NATS client and three HTTP backends.

A test file that needs something else under the same name defines its own,
which wins over these (``test_registry_nats.py``'s client reconnects fast;
``test_http_proxy.py``'s backends live for the whole module).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from httpkit import Backend
from nats.aio.client import Client

from harness import NatsServer


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A plain nats-py connection to the test's nats-server, as a gorouter client uses."""
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    """Three small HTTP backends, ``b0``..``b2``, that answer with what they saw."""
    started = [Backend(f"b{i}") for i in range(3)]
    yield started
    for backend in started:
        backend.close()
