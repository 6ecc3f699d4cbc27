"""The admin API: a small HTTP/1.1 server and a table of handlers.

Extending it is one call: ``admin.add("GET", "/things", handler)`` where
``handler`` is ``async (Request) -> Response``. Group related endpoints in an
``install_*`` function that captures what the handlers need (as
``control/admin_routes.py`` does for health, metrics and routes) and call it
where the runtime builds the ``Admin`` (``Runtime._start_admin``).
``prefix=True`` matches a path and everything under it (``/dashboard/...``);
``public=True`` skips the bearer token (only ``/health`` is public by
default). A handler raises ``HttpError(status, message)`` to refuse; any other
exception is logged and answered with a bare 500, never its text.

Every endpoint but the public ones requires ``Authorization: Bearer TOKEN``
(constant-time compared). With no token configured every such endpoint
answers 401: an admin API is never open by accident. It binds to loopback by
default. Optional HTTP Basic credentials (gorouter's status user) may read,
GET and HEAD only, never change anything.

The server is an ``asyncio.Protocol`` over httptools; requests on one
connection are handled one at a time in order (pipelining works, keep-alive
is the default), bodies are capped at ``MAX_BODY``, headers at
``MAX_HEADER_BYTES``, idle connections close after ``IDLE_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs

import httptools
import msgspec

from pointsman.config import AdminConfig

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_BODY",
    "MAX_HEADER_BYTES",
    "Admin",
    "Handler",
    "HttpError",
    "Request",
    "Response",
]

MAX_BODY = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT = 60.0

_json = msgspec.json.Encoder()


class HttpError(Exception):
    """Refuse a request: ``status`` and a message the client may see."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message or HTTPStatus(status).phrase
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] | None = None

    def json(self, kind: Any = Any) -> Any:
        """The body decoded as ``kind``; a 400 naming what is wrong otherwise."""
        try:
            return msgspec.json.decode(self.body, type=kind)
        except msgspec.DecodeError as exc:
            raise HttpError(400, f"bad JSON body: {exc}") from None


@dataclass(slots=True)
class Response:
    """A reply; ``stream`` (chunks sent with chunked encoding) replaces ``body``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, _json.encode(value) + b"\n", "application/json")

    @classmethod
    def text(cls, value: str, status: int = 200) -> Response:
        return cls(status, value.encode())


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    public: bool


class _Events:
    def event(self, level: str, name: str, **fields: Any) -> None:
        """No log configured: drop events."""


class Admin:
    """The handler table and the listening server around it."""

    @classmethod
    def from_config(cls, config: AdminConfig, events: Any) -> Admin:
        """The admin API of ``[admin]``: its token from the file or ``POINTSMAN_ADMIN_TOKEN``.

        Without either, it warns once: everything but ``/health`` will answer 401.
        """
        token = config.token or os.environ.get("POINTSMAN_ADMIN_TOKEN") or None
        if token is None:
            events.event("warning", "admin_token_missing",
                         detail="set [admin] token or POINTSMAN_ADMIN_TOKEN; "
                                "every endpoint but /health answers 401")
        reader = None
        if config.status_user is not None and config.status_password is not None:
            reader = (config.status_user, config.status_password)
        return cls(token, events, reader)

    def __init__(self, token: str | None, events: Any = None,
                 reader: tuple[str, str] | None = None) -> None:
        self.token = token.encode() if token else None
        # ``user:password`` as Basic auth carries it, base64-encoded: read-only access.
        self.reader = base64.b64encode(f"{reader[0]}:{reader[1]}".encode()) \
            if reader is not None else None
        self.events = events if events is not None else _Events()
        self._exact: dict[tuple[str, str], _Route] = {}
        self._prefixes: list[tuple[str, str, _Route]] = []
        self._server: asyncio.Server | None = None
        self._connections: set[_AdminProtocol] = set()

    # -- the handler table ----------------------------------------------------------

    def add(self, method: str, path: str, handler: Handler, *, public: bool = False,
            prefix: bool = False) -> None:
        """Serve ``method path`` with ``handler``; a later ``add`` of the same pair wins."""
        route = _Route(handler, public)
        if prefix:
            self._prefixes.append((method.upper(), path.rstrip("/"), route))
            self._prefixes.sort(key=lambda item: -len(item[1]))
        else:
            self._exact[(method.upper(), path)] = route

    def paths(self) -> list[str]:
        """Every ``METHOD /path`` served, for the index and for people."""
        exact = [f"{method} {path}" for method, path in self._exact]
        return sorted(exact + [f"{m} {p}/..." for m, p, _ in self._prefixes])

    def _resolve(self, method: str, path: str) -> _Route:
        route = self._exact.get((method, path))
        if route is not None:
            return route
        if method == "HEAD":  # a GET without its body
            return self._resolve("GET", path)
        for m, prefix, candidate in self._prefixes:
            if m == method and (path == prefix or path.startswith(prefix + "/")):
                return candidate
        known = any(p == path for _, p in self._exact) or any(
            path == p or path.startswith(p + "/") for _, p, _ in self._prefixes)
        raise HttpError(405 if known else 404)

    def authorized(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(credential.strip().encode(), self.token)
        if scheme == "basic" and self.reader is not None and request.method in ("GET", "HEAD"):
            return hmac.compare_digest(credential.strip().encode(), self.reader)
        return False

    async def handle(self, request: Request) -> Response:
        """Route, authorize and run one request; never raises."""
        try:
            route = self._resolve(request.method, request.path)
            if not route.public and not self.authorized(request):
                response = Response.json({"error": "a bearer token is required"}, 401)
                response.headers.append(("WWW-Authenticate", 'Bearer realm="pointsman"'))
                if self.reader is not None and request.method in ("GET", "HEAD"):
                    response.headers.append(("WWW-Authenticate", 'Basic realm="pointsman"'))
                return response
            return await route.handler(request)
        except HttpError as exc:
            return Response.json({"error": exc.message}, exc.status)
        except Exception as exc:  # a handler bug must not kill the connection or the process
            self.events.event("error", "admin_handler_failed", method=request.method,
                              path=request.path, error=repr(exc))
            return Response.json({"error": "internal error"}, 500)

    # -- the server -----------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _AdminProtocol(self), host, port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None


class _AdminProtocol(asyncio.Protocol):
    """One admin connection: parse with httptools, answer requests in order."""

    def __init__(self, admin: Admin) -> None:
        # Global state
        self.admin = admin
        self.loop = asyncio.get_running_loop()
        # Per-connection state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[tuple[Request, bool]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.client: tuple[str, int] | None = None
        # Per-request state
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self.transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.admin._connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.admin._connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.worker is not None:
            self.worker.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, HttpError):
                self._fail(cause.status, cause.message)
            else:
                self._fail(400, "malformed request")
        except httptools.HttpParserUpgrade:
            self._fail(400, "upgrade is not supported here")
        except httptools.HttpParserError:
            self._fail(400, "malformed request")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_BODY:
            raise HttpError(413, f"body over {MAX_BODY} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        path = (url.path or b"/").decode("latin-1")
        query = parse_qs((url.query or b"").decode("latin-1"))
        method = self.parser.get_method().decode("latin-1").upper()
        request = Request(method, path, query, self.headers, b"".join(self.body), self.client)
        self.queue.append((request, self.parser.should_keep_alive()))
        if self.worker is None:
            self.worker = self.loop.create_task(self._work())

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes")

    async def _work(self) -> None:
        try:
            while self.queue and self.transport is not None:
                request, keep_alive = self.queue.popleft()
                if self.idle is not None:
                    self.idle.cancel()
                response = await self.admin.handle(request)
                await self._send(response, keep_alive, request.method == "HEAD")
                if not keep_alive:
                    self.close()
                    return
                self._arm_idle()
        finally:
            self.worker = None

    async def _send(self, response: Response, keep_alive: bool, head: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        phrase = HTTPStatus(response.status).phrase if response.status in _STATUSES else ""
        lines = [f"HTTP/1.1 {response.status} {phrase}",
                 f"Content-Type: {response.content_type}",
                 f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if response.stream is None:
            lines.append(f"Content-Length: {len(response.body)}")
            head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            transport.write(head_bytes if head else head_bytes + response.body)
            return
        lines.append("Transfer-Encoding: chunked")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        async for chunk in response.stream:
            if self.transport is None:
                return
            if chunk:
                self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if self.transport is not None:
            self.transport.write(b"0\r\n\r\n")

    def _fail(self, status: int, message: str) -> None:
        if self.transport is not None:
            body = _json.encode({"error": message}) + b"\n"
            self.transport.write(
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                .encode() + body)
        self.close()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.loop.call_later(IDLE_TIMEOUT, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


_STATUSES = {status.value for status in HTTPStatus}
