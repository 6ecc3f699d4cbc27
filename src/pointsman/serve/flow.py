"""Pausing a transport's reading for several independent reasons at once.

A proxied connection stops reading when its peer cannot take more (the other
transport's write buffer passed its high mark), when a request body has no
upstream to go to yet, or when pipelined requests pile up. Each reason is a
bit; reading resumes only when every reason has cleared, and the transport
is told only on the edges, so pause and resume are idempotent and cheap.
"""

from __future__ import annotations

import asyncio

__all__ = ["BACKLOG", "PEER_FULL", "PIPELINE", "TUNNEL", "WRITE_HIGH", "WRITE_LOW",
           "FlowControl"]

WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024

PEER_FULL = 1
BACKLOG = 2
PIPELINE = 4
TUNNEL = 8


class FlowControl:
    """Reading of one transport, paused while any reason bit is set."""

    __slots__ = ("reasons", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.reasons = 0

    def pause(self, reason: int) -> None:
        if not self.reasons:
            self.transport.pause_reading()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if self.reasons & reason:
            self.reasons &= ~reason
            if not self.reasons and not self.transport.is_closing():
                self.transport.resume_reading()
