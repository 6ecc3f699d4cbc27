"""The floor for an HTTP proxy in Python: uvloop and httptools passing bytes through.

Not pointsman: a reference peer for ``http``. Each client connection gets
its own backend connection, opened when the client arrives; both directions
run through llhttp (so message boundaries are known, as a proxy must know
them) and the bytes are forwarded unchanged. No routing, no header rewriting,
no pooling, no timeouts, no retries, no logs, no flow control. It shows what
the event loop, the parser and the kernel cost per request on this machine,
which no Python HTTP proxy can go below.

    python -m bench.bare_http LISTEN_HOST:PORT TARGET_HOST:PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import httptools
import uvloop


class Backend(asyncio.Protocol):
    """The backend side of one client's connection: responses parsed, then passed on."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    """One client connection: requests parsed, then passed to its own backend connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.parser = httptools.HttpRequestParser(self)
        self.backend: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            backend, _ = await loop.create_connection(lambda: Backend(self.transport),
                                                      *self.target)
        except OSError:
            self.transport.close()
            return
        if self.gone:
            backend.close()
            return
        self.backend = backend
        backend.writelines(self.early)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        if self.backend is None:
            self.early.append(data)
        else:
            self.backend.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self.backend is not None:
            self.backend.close()


async def serve(listen: str, target: str) -> None:
    host, port = listen.rsplit(":", 1)
    target_host, target_port = target.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client((target_host, int(target_port))),
                                      host, int(port))
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1], sys.argv[2]))
