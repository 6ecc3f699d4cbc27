"""Joining two sockets both ways, with the bytes kept out of Python on Linux.

Each direction is a ``Half`` driven by event-loop readiness callbacks (no
coroutine per chunk). On Linux a half moves bytes with ``os.splice`` through a
pipe, so payload never becomes a Python object; elsewhere it falls back to
``recv_into``/``send`` through one reusable buffer. Either way a half stops
reading its source while its destination cannot take more, so a slow reader
costs at most one pipe (or one buffer) of memory, however much the other side
sends.

An end of stream on one side becomes ``shutdown(SHUT_WR)`` on the other (a
half-close), and the relay ends when both directions have ended or either side
fails. An idle timer ends it when no byte moved for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import Callable

from pointsman.serve.poller import Poller

__all__ = ["SPLICE_AVAILABLE", "PipePool", "Relay"]

SPLICE_AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
PIPE_SIZE = 1 << 18
COPY_CHUNK = 1 << 16
MAX_PUMPS_PER_WAKEUP = 8
_SPLICE_FLAGS = (
    getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
    if SPLICE_AVAILABLE else 0
)
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ; not every build names it
_GONE = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT,
                   errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNABORTED})


class PipePool:
    """Empty pipes kept for reuse, so a short connection costs no ``pipe()`` calls.

    Only pipes known to be empty come back; a pipe whose contents are unknown
    (a relay that ended in an error) is closed instead.
    """

    __slots__ = ("_free", "limit")

    def __init__(self, limit: int = 512) -> None:
        self._free: list[tuple[int, int]] = []
        self.limit = limit

    def acquire(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import fcntl

            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # a lower /proc/sys/fs/pipe-max-size: keep the default size
            pass
        return read_fd, write_fd

    def release(self, pipe: tuple[int, int], clean: bool) -> None:
        if clean and len(self._free) < self.limit:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        while self._free:
            read_fd, write_fd = self._free.pop()
            os.close(read_fd)
            os.close(write_fd)


class Half:
    """One direction: bytes from ``src`` to ``dst``.

    ``backlog`` holds bytes that must reach ``dst`` before anything read from
    ``src`` (the replayed buffer, a PROXY protocol header).
    """

    __slots__ = ("_reading", "backlog", "done", "dst", "dst_fd", "eof", "moved", "poller",
                 "relay", "src", "src_fd")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket,
                 backlog: bytes) -> None:
        self.relay = relay
        self.poller = relay.poller
        self.src = src
        self.dst = dst
        self.src_fd = src.fileno()
        self.dst_fd = dst.fileno()
        self.backlog: memoryview | None = memoryview(backlog) if backlog else None
        self.moved = 0
        self.eof = False
        self.done = False
        self._reading = False

    def start(self) -> None:
        if self.backlog is None or self._flush_backlog():
            self._resume()

    def stop(self) -> None:
        if self._reading:
            self.poller.remove_reader(self.src_fd)
            self._reading = False
        self.poller.remove_writer(self.dst_fd)

    def _resume(self) -> None:
        if not self._reading and not self.eof:
            self._reading = True
            self.poller.add_reader(self.src_fd, self.on_readable)

    def _pause(self) -> None:
        if self._reading:
            self._reading = False
            self.poller.remove_reader(self.src_fd)

    def _wait_writable(self) -> None:
        self._pause()
        self.poller.add_writer(self.dst_fd, self.on_writable)

    def _flush_backlog(self) -> bool:
        """Send the backlog; ``False`` when ``dst`` is full and a writer waits."""
        backlog = self.backlog
        assert backlog is not None
        try:
            sent = self.dst.send(backlog)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.relay.fail(exc, self.dst)
            return False
        self.moved += sent
        if sent < len(backlog):
            self.backlog = backlog[sent:]
            self._wait_writable()
            return False
        self.backlog = None
        return True

    def on_writable(self) -> None:
        self.poller.remove_writer(self.dst_fd)
        if self.backlog is not None and not self._flush_backlog():
            return
        if not self.drain():
            return
        if self.eof:
            self.finish()
        else:
            self._resume()

    def on_readable(self) -> None:
        raise NotImplementedError

    def drain(self) -> bool:
        """Push staged bytes to ``dst``; ``False`` when ``dst`` is full."""
        raise NotImplementedError

    def source_ended(self) -> None:
        self.eof = True
        self._pause()
        if self.drain():
            self.finish()

    def finish(self) -> None:
        """Everything from ``src`` reached ``dst``: pass the end of stream on."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.relay.half_done()


class SpliceHalf(Half):
    """Moves bytes socket -> pipe -> socket inside the kernel."""

    __slots__ = ("pending", "pipe")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket,
                 backlog: bytes) -> None:
        super().__init__(relay, src, dst, backlog)
        self.pipe = relay.pipes.acquire()
        self.pending = 0

    def on_readable(self) -> None:
        splice, src_fd, pipe_w = os.splice, self.src_fd, self.pipe[1]
        try:
            for _ in range(MAX_PUMPS_PER_WAKEUP):
                count = splice(src_fd, pipe_w, PIPE_SIZE, flags=_SPLICE_FLAGS)
                if count == 0:
                    self.source_ended()
                    return
                self.pending += count
                if not self.drain() or count < PIPE_SIZE:
                    return
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.fail(exc, self.src)

    def drain(self) -> bool:
        splice, pipe_r, dst_fd = os.splice, self.pipe[0], self.dst_fd
        while self.pending:
            try:
                count = splice(pipe_r, dst_fd, self.pending, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                self._wait_writable()
                return False
            except OSError as exc:
                self.relay.fail(exc, self.dst)
                return False
            self.pending -= count
            self.moved += count
        return True

    def release(self) -> None:
        self.relay.pipes.release(self.pipe, clean=self.pending == 0)


class CopyHalf(Half):
    """The portable path: one reusable buffer per direction."""

    __slots__ = ("buffer", "staged", "view")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket,
                 backlog: bytes) -> None:
        super().__init__(relay, src, dst, backlog)
        self.buffer = bytearray(COPY_CHUNK)
        self.view = memoryview(self.buffer)
        self.staged: memoryview | None = None

    def on_readable(self) -> None:
        try:
            for _ in range(MAX_PUMPS_PER_WAKEUP):
                count = self.src.recv_into(self.buffer)
                if count == 0:
                    self.source_ended()
                    return
                self.staged = self.view[:count]
                if not self.drain() or count < COPY_CHUNK:
                    return
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.fail(exc, self.src)

    def drain(self) -> bool:
        staged = self.staged
        while staged is not None:
            try:
                sent = self.dst.send(staged)
            except BlockingIOError:
                self.staged = staged
                self._wait_writable()
                return False
            except OSError as exc:
                self.relay.fail(exc, self.dst)
                return False
            self.moved += sent
            staged = staged[sent:] if sent < len(staged) else None
        self.staged = None
        return True

    def release(self) -> None:
        self.view.release()


class Relay:
    """Two connected sockets spliced together until both directions end.

    ``on_done(reason)`` is called exactly once; the relay closes both sockets
    itself. ``reason`` is ``"done"`` for a clean end, ``"idle_timeout"``, or
    ``"client_error"`` / ``"backend_error"`` naming the side that failed.
    """

    __slots__ = ("_idle_handle", "_last_moved", "_on_done", "backend", "client", "down",
                 "idle_timeout", "loop", "pipes", "poller", "reason", "up")

    def __init__(self, loop: asyncio.AbstractEventLoop, poller: Poller, client: socket.socket,
                 backend: socket.socket, *, pipes: PipePool | None, to_backend: bytes = b"",
                 idle_timeout: float = 300.0, on_done: Callable[[str], None]) -> None:
        self.loop = loop
        self.poller = poller
        self.client = client
        self.backend = backend
        self.pipes = pipes if pipes is not None else PipePool(0)
        self.idle_timeout = idle_timeout
        self._on_done: Callable[[str], None] | None = on_done
        self.reason = ""
        half = SpliceHalf if pipes is not None and SPLICE_AVAILABLE else CopyHalf
        self.up: SpliceHalf | CopyHalf = half(self, client, backend, to_backend)
        self.down: SpliceHalf | CopyHalf = half(self, backend, client, b"")
        self._last_moved = -1
        self._idle_handle: asyncio.TimerHandle | None = None

    @property
    def bytes_up(self) -> int:
        return self.up.moved

    @property
    def bytes_down(self) -> int:
        return self.down.moved

    def start(self) -> None:
        self._idle_handle = self.loop.call_later(self.idle_timeout, self._check_idle)
        self.up.start()
        self.down.start()

    def _check_idle(self) -> None:
        moved = self.up.moved + self.down.moved
        if moved == self._last_moved:
            self._end("idle_timeout")
            return
        self._last_moved = moved
        self._idle_handle = self.loop.call_later(self.idle_timeout, self._check_idle)

    def half_done(self) -> None:
        if self.up.done and self.down.done:
            self._end("done")

    def fail(self, exc: OSError, sock: socket.socket) -> None:
        """``sock`` raised ``exc``; name the side in the reason, and the errno if unusual."""
        side = "client" if sock is self.client else "backend"
        self._end(f"{side}_error" if exc.errno in _GONE else f"{side}_error:{exc.errno}")

    def abort(self, reason: str) -> None:
        """End now from outside (shutdown, drain timeout)."""
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self._on_done is None:
            return
        on_done, self._on_done = self._on_done, None
        self.reason = reason
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for half in (self.up, self.down):
            half.stop()
            half.release()
        for sock in (self.client, self.backend):
            sock.close()
        on_done(reason)

