"""Joining two sockets both ways, with bulk bytes kept out of Python on Linux.

Each direction is a ``Half`` driven by readiness callbacks (no coroutine per
chunk). A direction starts by copying: ``recv_into`` one buffer shared by every
relay, then ``send``, which for the few bytes of a short exchange is the
cheapest path. Once a direction has moved ``SPLICE_AFTER`` bytes it is
streaming and switches to ``os.splice`` through a pipe, so bulk payload never
becomes a Python object (HAProxy's splice-auto has the same idea). Elsewhere
than Linux it copies throughout.

Either way a half stops reading its source while its destination cannot take
more, so a slow reader costs at most one pipe or one chunk of memory, however
much the other side sends, and an idle connection holds neither.

An end of stream on one side becomes ``shutdown(SHUT_WR)`` on the other (a
half-close), and the relay ends when both directions have ended or either side
fails. An idle timer ends it when no byte moved for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import sys
from collections.abc import Callable

from pointsman.serve.poller import Poller

__all__ = ["SPLICE_AVAILABLE", "PipePool", "Relay"]

SPLICE_AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
PIPE_SIZE = 1 << 18
COPY_CHUNK = 1 << 16
SPLICE_AFTER = 1 << 16
MAX_PUMPS_PER_WAKEUP = 8
_SPLICE_FLAGS = (
    getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
    if SPLICE_AVAILABLE else 0
)
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ; not every build names it
_GONE = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT,
                   errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNABORTED})


class PipePool:
    """What relays borrow to move bytes: empty pipes, and one copy buffer.

    Pipes come back only when known to be empty; a pipe whose contents are
    unknown (a relay that ended in an error) is closed instead. The copy buffer
    is shared by every relay of one event loop: a half that cannot send all it
    read keeps only the unsent tail.
    """

    __slots__ = ("_free", "buffer", "limit", "splice", "view")

    def __init__(self, limit: int = 64, splice: bool = SPLICE_AVAILABLE) -> None:
        self._free: list[tuple[int, int]] = []
        self.limit = limit
        self.splice = splice and SPLICE_AVAILABLE
        self.buffer = bytearray(COPY_CHUNK)
        self.view = memoryview(self.buffer)

    def acquire(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # A lower pipe-max-size or the per-user pipe budget: keep the default size.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
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

    ``staged`` holds bytes read but not yet sent (at first, what must reach
    ``dst`` before anything from ``src``: the replayed buffer, a PROXY protocol
    header); ``pending`` counts bytes waiting in ``pipe``. At most one of the
    two is non-empty, because a half changes mode only when both are.
    """

    __slots__ = ("_reading", "done", "dst", "dst_fd", "eof", "moved", "pending", "pipe",
                 "pipes", "poller", "relay", "src", "src_fd", "staged")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket,
                 backlog: bytes) -> None:
        self.relay = relay
        self.poller = relay.poller
        self.pipes = relay.pipes
        self.src = src
        self.dst = dst
        self.src_fd = src.fileno()
        self.dst_fd = dst.fileno()
        self.staged: memoryview | None = memoryview(backlog) if backlog else None
        self.pipe: tuple[int, int] | None = None
        self.pending = 0
        self.moved = 0
        self.eof = False
        self.done = False
        self._reading = False

    def start(self) -> None:
        if self.drain():
            self._resume()

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

    def on_writable(self) -> None:
        self.poller.remove_writer(self.dst_fd)
        if not self.drain():
            return
        if self.eof:
            self.finish()
        else:
            self._resume()

    def on_readable(self) -> None:
        if self.pipes.splice and self.moved >= SPLICE_AFTER:
            self._splice_in()
        else:
            self._copy_in()

    def _copy_in(self) -> None:
        recv_into, send = self.src.recv_into, self.dst.send
        buffer, view = self.pipes.buffer, self.pipes.view
        for _ in range(MAX_PUMPS_PER_WAKEUP):
            try:
                count = recv_into(buffer)
            except BlockingIOError:
                return
            except OSError as exc:
                self.relay.fail(exc, self.src)
                return
            if count == 0:
                self.source_ended()
                return
            try:
                sent = send(view[:count])
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.relay.fail(exc, self.dst)
                return
            self.moved += sent
            if sent < count:
                # Keep only the unsent tail: the shared buffer is reused at once.
                self.staged = memoryview(bytes(view[sent:count]))
                self._wait_writable()
                return
            if count < COPY_CHUNK or (self.pipes.splice and self.moved >= SPLICE_AFTER):
                return

    def _splice_in(self) -> None:
        pipe = self.pipe
        if pipe is None:
            pipe = self.pipe = self.pipes.acquire()
        splice, src_fd, pipe_w = os.splice, self.src_fd, pipe[1]
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
        finally:
            if self.pipe is not None and not self.pending:
                # Give the empty pipe back: idle connections hold none.
                self.pipes.release(self.pipe, clean=True)
                self.pipe = None

    def drain(self) -> bool:
        """Push staged and piped bytes to ``dst``; ``False`` when ``dst`` is full."""
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
        if not self.pending:
            return True
        assert self.pipe is not None
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

    def source_ended(self) -> None:
        self.eof = True
        if not self.drain():
            return  # waiting for ``dst``, which stopped reading ``src``
        self.finish()
        if not self.relay.ended:
            # The other way still flows. (When the relay ended, closing the
            # sockets took them out of the poller: no call needed here.)
            self._pause()

    def finish(self) -> None:
        """Everything from ``src`` reached ``dst``: pass the end of stream on."""
        if self.done:
            return
        self.done = True
        relay = self.relay
        if not (relay.down if self is relay.up else relay.up).done:
            # The other direction still flows: a half-close. Otherwise the relay
            # closes both sockets next, and close() sends the FIN itself.
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)
        relay.half_done()

    def release(self) -> None:
        if self.pipe is not None:
            self.pipes.release(self.pipe, clean=not self.pending)
            self.pipe = None


class Relay:
    """Two connected sockets joined until both directions end.

    ``pipes=None`` copies throughout (and gives the relay a buffer of its own).

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
        self.pipes = pipes if pipes is not None else PipePool(0, splice=False)
        self.idle_timeout = idle_timeout
        self._on_done: Callable[[str], None] | None = on_done
        self.reason = ""
        self.up = Half(self, client, backend, to_backend)
        self.down = Half(self, backend, client, b"")
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

    @property
    def ended(self) -> bool:
        return self._on_done is None

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
            half.release()
        for sock in (self.client, self.backend):
            self.poller.forget(sock.fileno())
            sock.close()
        on_done(reason)

