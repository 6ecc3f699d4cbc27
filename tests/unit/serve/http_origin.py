"""A small HTTP origin for tests of the serving code: ``ok`` to every request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def origin(name: bytes = b"") -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                         Awaitable[None]]:
    """An origin answering ``ok`` to every request, its ``name`` in an ``X-Origin`` field."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nX-Origin: %s\r\nContent-Length: 2\r\n\r\nok"
                             % name)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return serve
