"""Serving code runs under both asyncio's own loop and uvloop: every async test here runs twice.

``http_proxy`` is an HTTP listener with one route, ``app.test``, to an origin
answering ``ok`` to every request (``http_origin.origin`` makes more of them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
import uvloop
from http_origin import origin

from pointsman.config import HttpListener, HttpRoute
from pointsman.control.counters import CountingSink
from pointsman.control.logs import JsonLog
from pointsman.serve import http1
from pointsman.serve.context import ServeContext
from pointsman.serve.poller import Poller

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, LoopFactory]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def http_proxy() -> AsyncIterator[tuple[http1.HttpServer, ServeContext]]:
    loop = asyncio.get_running_loop()
    server_a = await asyncio.start_server(origin(b"a"), "127.0.0.1", 0)
    port = server_a.sockets[0].getsockname()[1]
    ctx = ServeContext(loop=loop, poller=Poller(loop), access=CountingSink(JsonLog("off")),
                       events=JsonLog("off"))
    config = HttpListener(name="web", listen="127.0.0.1:0", routes=[
        HttpRoute(host="app.test", endpoints=[f"127.0.0.1:{port}"])])
    server = await http1.start(config, ctx)
    yield server, ctx
    await server.drain(1.0)
    server_a.close()
    ctx.poller.close()
