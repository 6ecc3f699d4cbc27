"""Protocol errors raised by the sans-I/O codecs.

::

    ProtocolError            abstract; carries ``status_hint`` (HTTP) for the reply
    ├── LocalProtocolError   we were asked to do something the protocol forbids
    └── RemoteProtocolError  the peer sent something we refuse
        └── TooLarge         a named limit was passed (``what``, ``size``, ``limit``)

The peer is answered with the status hint and a fixed short text; the
exception text is for logs only.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "TooLarge"]


class ProtocolError(Exception):
    """Base of every codec error; never raised as itself."""

    status_hint: int

    def __init__(self, message: str, status_hint: int = 400) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """Our own side broke the protocol (a bug, or an unsupported request)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; answer ``status_hint`` and close."""


class TooLarge(RemoteProtocolError):
    """``what`` grew to ``size``, past ``limit``: 431 for a head, 413 for a body."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} too large: {size} > {limit}",
                         431 if what == "header" else 413)
        self.what = what
        self.size = size
        self.limit = limit
