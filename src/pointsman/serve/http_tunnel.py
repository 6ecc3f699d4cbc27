"""Raw byte relay between a client and an upstream after a 101 or a CONNECT 200.

Why a Protocol-level relay instead of handing the sockets to ``serve.relay``:
at the moment of the switch both transports may still hold bytes (the tail
of the 101 in the client's write buffer, frames the backend sent right after
it, bytes the client sent behind its upgrade request), and uvloop owns the
file descriptors; detaching them means dup'ing descriptors and flushing
buffers by hand, with ordering hazards on each side. Staying on the
transports keeps that ordering for free and uses the same rule as the rest
of the proxy: when one side's write buffer passes its high mark, reading
from the other side pauses until it drains (``FlowControl``). Upgraded
traffic is message-sized, where splice would gain little.

End of stream is passed on as a half-close; the tunnel ends when both
directions have ended, either side is lost, or nothing moved for
``idle_timeout`` (checked by the server's periodic sweep).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pointsman.serve.flow import PEER_FULL, TUNNEL, FlowControl

if TYPE_CHECKING:
    from pointsman.serve.http_upstream import UpstreamConnection

__all__ = ["Tunnel"]


class Tunnel:
    """Client transport <-> upstream connection, both ways, with backpressure."""

    __slots__ = ("_on_done", "bytes_down", "bytes_up", "client_eof", "client_flow",
                 "client_transport", "last_moved", "seen", "upstream", "upstream_eof")

    def __init__(self, client_flow: FlowControl, upstream: UpstreamConnection,
                 on_done: Callable[[str], None], now: float) -> None:
        self.client_flow = client_flow
        self.client_transport = client_flow.transport
        self.upstream = upstream
        self._on_done: Callable[[str], None] | None = on_done
        self.client_eof = False
        self.upstream_eof = False
        self.bytes_up = 0
        self.bytes_down = 0
        self.last_moved = now
        self.seen = 0
        upstream.tunnel = self
        upstream.sink = None

    def start(self, to_upstream: bytes, to_client: bytes) -> None:
        if to_client:
            self.from_upstream(to_client)
        if to_upstream:
            self.from_client(to_upstream)
        assert self.upstream.flow is not None
        self.upstream.flow.resume(PEER_FULL)
        self.client_flow.resume(TUNNEL)

    def from_client(self, data: bytes) -> None:
        self.bytes_up += len(data)
        self.upstream.write(data)

    def from_upstream(self, data: bytes) -> None:
        self.bytes_down += len(data)
        self.client_transport.write(data)

    def client_full(self, full: bool) -> None:
        flow = self.upstream.flow
        if flow is not None:
            flow.pause(PEER_FULL) if full else flow.resume(PEER_FULL)

    def upstream_full(self, full: bool) -> None:
        if full:
            self.client_flow.pause(PEER_FULL)
        else:
            self.client_flow.resume(PEER_FULL)

    def client_ended(self) -> bool:
        """The client half-closed: pass it on; keep the client transport open for replies."""
        self.client_eof = True
        transport = self.upstream.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        if self.upstream_eof:
            self.end("done")
        return True

    def upstream_ended(self) -> bool:
        self.upstream_eof = True
        if self.client_transport.can_write_eof():
            self.client_transport.write_eof()
        if self.client_eof:
            self.end("done")
        return True

    def upstream_lost(self) -> None:
        self.end("backend_closed" if not self.upstream_eof else "done")

    def client_lost(self) -> None:
        self.end("client_closed" if not self.client_eof else "done")

    def check_idle(self, now: float, timeout: float) -> None:
        """Called by the periodic sweep: end the tunnel once nothing moved for ``timeout``."""
        moved = self.bytes_up + self.bytes_down
        if moved != self.seen:
            self.seen = moved
            self.last_moved = now
        elif now - self.last_moved > timeout:
            self.end("idle_timeout")

    def end(self, reason: str) -> None:
        if self._on_done is None:
            return
        on_done, self._on_done = self._on_done, None
        self.upstream.tunnel = None
        self.upstream.abort() if reason != "done" else self.upstream.close()
        self.client_transport.close()
        on_done(reason)
