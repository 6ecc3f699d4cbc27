"""Leader <-> worker messages: JSON lines over a Unix socket pair.

Each worker holds one end of a ``socketpair``; the leader holds the other.
Messages are small dicts with a ``type`` (``ready``, ``stats``, ``command``
...). The channel also tells each side when the other has gone: a worker
whose leader vanished (even by SIGKILL) sees end of file and quits, so no
worker is ever orphaned.

Route changes, the bulk of the traffic (a NATS flood is forwarded to every
worker message by message), travel as compact arrays instead,
``[op, source, registration]``, decoded straight into ``RouteChange``: the
leader encodes the registration it already holds, once for all workers, and
a worker gets it back without a second decode of a string inside the line.

Writes are coalesced: ``send`` queues the line and everything queued in one
loop iteration goes out in one ``send`` call at its end, in order, so a
flood costs a syscall per batch, not per message.

Runs on readiness callbacks like the rest of the I/O, on either side's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from pointsman.wire.gorouter import RegistryMessage

__all__ = ["MAX_MESSAGE", "Channel", "RouteChange", "RouteOp", "encode"]

MAX_MESSAGE = 16 * 1024 * 1024
RECV_CHUNK = 256 * 1024


RouteOp = Literal["register", "unregister"]


class RouteChange(msgspec.Struct, array_like=True, frozen=True):
    """One registration to apply in a worker's registry, as its source gave it."""

    op: RouteOp
    source: Literal["nats", "admin"]
    message: RegistryMessage


_encoder = msgspec.json.Encoder()
# An object is a plain message, an array a route change: a union msgspec can tell apart.
_decode = msgspec.json.Decoder(dict[str, Any] | RouteChange).decode


def encode(message: dict[str, Any] | RouteChange) -> bytes:
    """One message as a line, ready for ``Channel.write`` (to send it on several channels)."""
    return _encoder.encode(message) + b"\n"


class Channel:
    """One end of a worker's message pipe."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[Any], None],
                 on_close: Callable[[], None]) -> None:
        self.sock = sock
        self.loop = loop
        self.on_message = on_message
        self.on_close = on_close
        self.closed = False
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._writing = False  # waiting for the socket to have room
        self._flushing = False  # a flush is due at the end of this loop iteration

    def start(self) -> None:
        self.sock.setblocking(False)
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def send(self, message: dict[str, Any] | RouteChange) -> None:
        """Queue one message; it goes out with the others at the end of this iteration."""
        if not self.closed:
            self.write(_encoder.encode(message) + b"\n")

    def write(self, line: bytes) -> None:
        """Queue one line made by ``encode``."""
        if self.closed:
            return
        self._outbox += line
        if not self._flushing and not self._writing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if not self.closed and not self._writing:
            self._on_writable()

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self._outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        del self._outbox[:sent]
        if self._outbox and not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._on_writable)
        elif not self._outbox and self._writing:
            self._writing = False
            self.loop.remove_writer(self.sock.fileno())

    def _on_readable(self) -> None:
        try:
            chunk = self.sock.recv(RECV_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        self._inbox += chunk
        if len(self._inbox) > MAX_MESSAGE:
            self.close()
            return
        inbox = self._inbox
        start = 0
        try:
            while (end := inbox.find(b"\n", start)) >= 0:
                line = inbox[start:end]
                start = end + 1
                try:
                    message = _decode(line)
                except msgspec.DecodeError:
                    continue
                self.on_message(message)
        finally:
            # Once per chunk (per line, it moved the rest of the chunk each time), and
            # even if a handler raised: no line is handled twice.
            del inbox[:start]

    def drain_inbox(self) -> None:
        """Read whatever the peer wrote before it went (its last words come first)."""
        while not self.closed:
            self._on_readable()
            if self.closed:
                return
            try:
                pending = self.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return
            except OSError:
                pending = b""
            if not pending:
                self.close()
                return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._outbox:  # what was queued this iteration, as far as the socket takes it
            with contextlib.suppress(OSError):
                self.sock.send(self._outbox)
            self._outbox.clear()
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            if self._writing:
                self.loop.remove_writer(fd)
        self.sock.close()
        self.on_close()
