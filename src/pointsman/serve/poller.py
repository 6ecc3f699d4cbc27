"""Readiness callbacks for raw sockets, through one selector the event loop watches.

Why not ``loop.add_reader``: under uvloop (libuv), a socket with a pending
error (a backend's RST, a refused non-blocking connect) reports ``POLLERR``,
and libuv then stops watching that descriptor and drops both its callbacks
without telling them. A relay would hang until its idle timeout. Here one
selector owns every raw socket; the loop watches only the selector's own
descriptor, which never errors; and an error wakes both the reader and the
writer of its socket, so the ``recv``/``splice``/``SO_ERROR`` they call reports it.

The interface mirrors the loop's (``add_reader(fd, callback)`` ...), with
callbacks taking no arguments, so code can move between the two unchanged.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from collections.abc import Callable, Iterable
from functools import partial

__all__ = ["Poller"]

Callback = Callable[[], object]


class Poller:
    """One epoll (or, off Linux, one selector), watched by ``loop``; dispatches per descriptor.

    epoll is used directly where there is one: this is on the path of every
    readiness event, and the ``selectors`` wrapper costs a key object per event.
    An error or hang-up counts as both readable and writable.
    """

    __slots__ = ("_fd", "_impl", "_loop", "_read", "_readable", "_readers", "_ready", "_writable",
                 "_write", "_writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        if hasattr(select, "epoll"):
            epoll = select.epoll()
            self._impl: select.epoll | selectors.BaseSelector = epoll
            self._read, self._write = select.EPOLLIN, select.EPOLLOUT
            hangup = select.EPOLLERR | select.EPOLLHUP
            self._readable, self._writable = select.EPOLLIN | hangup, select.EPOLLOUT | hangup
            self._ready: Callable[[], Iterable[tuple[int, int]]] = partial(epoll.poll, 0)
            self._fd = epoll.fileno()
        else:
            selector = selectors.DefaultSelector()
            self._impl = selector
            self._read = self._readable = selectors.EVENT_READ
            self._write = self._writable = selectors.EVENT_WRITE
            self._ready = lambda: [(key.fd, events) for key, events in selector.select(0)]
            self._fd = selector.fileno()
        loop.add_reader(self._fd, self._dispatch)

    def add_reader(self, fd: int, callback: Callback) -> None:
        had = fd in self._readers or fd in self._writers
        self._readers[fd] = callback
        self._update(fd, had)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd, True)

    def add_writer(self, fd: int, callback: Callback) -> None:
        had = fd in self._readers or fd in self._writers
        self._writers[fd] = callback
        self._update(fd, had)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd, True)

    def forget(self, fd: int) -> None:
        """Drop ``fd``'s callbacks because it is about to be closed.

        Closing a descriptor takes it out of an epoll set by itself, so with
        epoll this costs no system call; a selector is told.
        """
        registered = self._readers.pop(fd, None) is not None
        registered = self._writers.pop(fd, None) is not None or registered
        if registered and not isinstance(self._impl, select.epoll):
            self._impl.unregister(fd)

    def _update(self, fd: int, registered: bool) -> None:
        events = (self._read if fd in self._readers else 0) \
            | (self._write if fd in self._writers else 0)
        if not events:
            self._impl.unregister(fd)
        elif registered:
            self._impl.modify(fd, events)
        else:
            self._impl.register(fd, events)

    def _dispatch(self) -> None:
        readers, writers = self._readers, self._writers
        read, write = self._readable, self._writable
        for fd, events in self._ready():
            # A callback may unregister a later descriptor in this batch; look up afresh.
            if events & read:
                callback = readers.get(fd)
                if callback is not None:
                    callback()
            if events & write:
                callback = writers.get(fd)
                if callback is not None:
                    callback()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self._impl.close()
        self._readers.clear()
        self._writers.clear()
