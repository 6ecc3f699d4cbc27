"""What a handler sees: one message, its socket, and ways to answer.

A ``Context`` is made per message. Socket contexts come from a gateway and
talk back to the client; call contexts come from ``Service.call`` (in-process
or from another service) and have no client: ``reply`` sets the call's
result, and ``send``/``request`` raise ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any, Final

import msgspec

from pointsman.service.errors import InvalidData, RequestTimeout, SocketClosed
from pointsman.wire.envelope import Codec

if TYPE_CHECKING:
    from pointsman.service.service import Service

__all__ = ["Connection", "Context"]

#: Pending ``ctx.request`` calls per socket; past it the oldest is failed.
MAX_PENDING_REQUESTS: Final = 64


class Connection:
    """The service's side of one client socket; lives until the socket ends."""

    __slots__ = ("_ids", "closed", "gateway", "id", "pending", "service", "state")

    def __init__(self, service: Service, gateway: str, socket_id: str) -> None:
        self.service = service
        self.gateway = gateway
        self.id = socket_id
        self.state: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self._ids = itertools.count(1)

    def next_request_id(self) -> str:
        return f"srv:{self.service.instance}:{next(self._ids)}"

    def write(self, frame: bytes, awaiting: str | None = None) -> None:
        if not self.closed.is_set():
            self.service._to_gateway(self, frame, awaiting)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed.is_set():
            self.service._to_gateway(self, b"", None, close=code, reason=reason)

    def answer(self, request_id: str, raw: bytes) -> bool:
        """Resolve a pending ``ctx.request``; ``False`` if nothing waits on that id."""
        future = self.pending.get(request_id)
        if future is None:
            return False
        if not future.done():
            future.set_result(raw)
        return True

    def end(self) -> None:
        self.closed.set()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(SocketClosed(self.id))
        self.pending.clear()


_NOT_DECODED: Final[Any] = object()


class Context:
    """One message being handled."""

    __slots__ = ("_call_state", "_data", "codec", "connection", "message_id", "params", "path",
                 "raw", "replied", "result", "service")

    def __init__(self, service: Service, codec: Codec, path: str, message_id: str | int | None,
                 raw: bytes, connection: Connection | None, data: Any = _NOT_DECODED) -> None:
        self.service = service
        self.codec = codec
        self.path = path
        self.message_id = message_id
        self.raw = raw
        self.connection = connection
        self.params: dict[str, str] = {}
        self.replied = False
        self.result: Any = None
        self._data = data
        self._call_state: dict[str, Any] | None = None

    # -- reading ----------------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The message's data, decoded without a schema (bytes under protobuf)."""
        if self._data is _NOT_DECODED:
            self._data = self.unmarshal(Any)
        return self._data

    def unmarshal(self, kind: Any) -> Any:
        """The data as ``kind`` (a msgspec Struct, dataclass, or any msgspec type).

        Data that does not fit raises ``InvalidData``, which reaches the client
        as an ``invalid_data`` error envelope.
        """
        try:
            if self._data is not _NOT_DECODED:
                return msgspec.convert(self._data, kind)
            return self.codec.decode_data(self.raw, kind)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError) as exc:
            raise InvalidData(str(exc)) from None

    @property
    def socket_id(self) -> str | None:
        return None if self.connection is None else self.connection.id

    @property
    def state(self) -> dict[str, Any]:
        """Per-socket storage: what a handler puts here is there for the socket's next messages."""
        if self.connection is not None:
            return self.connection.state
        if self._call_state is None:
            self._call_state = {}
        return self._call_state

    @property
    def closed(self) -> asyncio.Event:
        """Set when the socket ends; ``await ctx.closed.wait()``."""
        if self.connection is None:
            raise RuntimeError("a call has no client socket")
        return self.connection.closed

    # -- answering ----------------------------------------------------------------------

    def _socket(self) -> Connection:
        if self.connection is None:
            raise RuntimeError("a call has no client socket; use reply()")
        return self.connection

    def reply(self, data: Any = None) -> None:
        """Answer this message: ``{id, data}`` (or the call's result)."""
        self.replied = True
        if self.connection is None:
            self.result = data
            return
        encoded = None if data is None else self.codec.encode_data(data)
        self.connection.write(self.codec.encode(id=self.message_id, data=encoded))

    def send(self, data: Any, path: str | None = None) -> None:
        """Push ``{path?, data}`` to the client, unasked."""
        self._socket().write(self.codec.encode(path=path, data=self.codec.encode_data(data)))

    def fail(self, code: str, message: str) -> None:
        """Answer this message with ``{id, error: {code, message}}``."""
        self.replied = True
        if self.connection is None:
            from pointsman.service.errors import ServiceError
            raise ServiceError(code, message)
        self.connection.write(self.codec.encode(id=self.message_id, error=(code, message)))

    async def request(self, data: Any, *, timeout: float | None = None, path: str | None = None,
                      kind: Any = Any) -> Any:
        """Ask the client and wait for the answer that carries the same id.

        Sends ``{id: <new id>, path, data}``; the client answers with that id
        (the path may be omitted). Raises ``RequestTimeout`` after ``timeout``
        seconds and ``SocketClosed`` if the socket ends first.
        """
        conn = self._socket()
        if conn.closed.is_set():
            raise SocketClosed(conn.id)
        while len(conn.pending) >= MAX_PENDING_REQUESTS:
            oldest = next(iter(conn.pending))
            future = conn.pending.pop(oldest)
            if not future.done():
                future.set_exception(RequestTimeout(conn.id, 0.0))
        request_id = conn.next_request_id()
        future = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = future
        frame = self.codec.encode(id=request_id, path=path or self.path,
                                  data=self.codec.encode_data(data))
        conn.write(frame, awaiting=request_id)
        try:
            raw = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(conn.id, timeout or 0.0) from None
        finally:
            conn.pending.pop(request_id, None)
        try:
            return self.codec.decode_data(raw, kind)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            raise InvalidData(str(exc)) from None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Ask the gateway to close the client's socket."""
        self._socket().close(code, reason)
