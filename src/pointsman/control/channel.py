"""Leader <-> worker messages: JSON lines over a Unix socket pair.

Each worker holds one end of a ``socketpair``; the leader holds the other.
Messages are small dicts with a ``type`` (``ready``, ``stats``, ``command``
...). The channel also tells each side when the other has gone: a worker
whose leader vanished (even by SIGKILL) sees end of file and quits, so no
worker is ever orphaned.

Runs on readiness callbacks like the rest of the I/O, on either side's loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["MAX_MESSAGE", "Channel"]

MAX_MESSAGE = 16 * 1024 * 1024
RECV_CHUNK = 256 * 1024

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Channel:
    """One end of a worker's message pipe."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[dict[str, Any]], None],
                 on_close: Callable[[], None]) -> None:
        self.sock = sock
        self.loop = loop
        self.on_message = on_message
        self.on_close = on_close
        self.closed = False
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._writing = False

    def start(self) -> None:
        self.sock.setblocking(False)
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message; written at once when the socket has room."""
        if self.closed:
            return
        self._outbox += _encode(message) + b"\n"
        if not self._writing:
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
        while (end := self._inbox.find(b"\n")) >= 0:
            line = bytes(self._inbox[:end])
            del self._inbox[:end + 1]
            try:
                message = _decode(line)
            except msgspec.DecodeError:
                continue
            self.on_message(message)

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
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            if self._writing:
                self.loop.remove_writer(fd)
        self.sock.close()
        self.on_close()
