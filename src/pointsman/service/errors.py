"""Errors of the service SDK and its transports.

::

    ServiceError(code, message)        sent to the client as an error envelope
    ├── NotFound                       no route for the path ("not_found")
    └── InvalidData                    data did not fit the type asked for ("invalid_data")
    TransportError                     the bus failed
    ├── NoResponders                   nobody listens on that subject
    └── TransportTimeout               nobody answered in time (also a TimeoutError)
    SocketClosed                       the client socket ended while waiting on it
    RequestTimeout                     the client did not answer ctx.request in time
"""

from __future__ import annotations

__all__ = [
    "InvalidData",
    "NoResponders",
    "NotFound",
    "RequestTimeout",
    "ServiceError",
    "SocketClosed",
    "TransportError",
    "TransportTimeout",
]


class ServiceError(Exception):
    """Raise from a handler to answer the client with ``{id, error: {code, message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NotFound(ServiceError):
    def __init__(self, path: str) -> None:
        super().__init__("not_found", f"no route for {path!r}")


class InvalidData(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_data", message)


class TransportError(Exception):
    """The gateway/service bus could not carry a message."""


class NoResponders(TransportError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders on {subject}")
        self.subject = subject


class TransportTimeout(TransportError, TimeoutError):
    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no answer on {subject} within {timeout} s")
        self.subject = subject
        self.timeout = timeout


class SocketClosed(Exception):
    """The client's socket closed; pending ``ctx.request`` calls end with this."""

    def __init__(self, socket_id: str) -> None:
        super().__init__(f"socket {socket_id} closed")
        self.socket_id = socket_id


class RequestTimeout(TimeoutError):
    def __init__(self, socket_id: str, timeout: float) -> None:
        super().__init__(f"socket {socket_id} did not answer within {timeout} s")
        self.socket_id = socket_id
        self.timeout = timeout
