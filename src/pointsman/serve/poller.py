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
import selectors
from collections.abc import Callable

__all__ = ["Poller"]

Callback = Callable[[], object]
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class Poller:
    """One selector, watched by ``loop``; dispatches to per-descriptor callbacks."""

    __slots__ = ("_loop", "_readers", "_selector", "_writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._selector = selectors.DefaultSelector()
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        loop.add_reader(self._selector.fileno(), self._dispatch)

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

    def _update(self, fd: int, registered: bool) -> None:
        events = (_READ if fd in self._readers else 0) | (_WRITE if fd in self._writers else 0)
        if not events:
            self._selector.unregister(fd)
        elif registered:
            self._selector.modify(fd, events)
        else:
            self._selector.register(fd, events)

    def _dispatch(self) -> None:
        readers, writers = self._readers, self._writers
        for key, events in self._selector.select(0):
            fd = key.fd
            # A callback may unregister a later descriptor in this batch; look up afresh.
            if events & _READ:
                callback = readers.get(fd)
                if callback is not None:
                    callback()
            if events & _WRITE:
                callback = writers.get(fd)
                if callback is not None:
                    callback()

    def close(self) -> None:
        self._loop.remove_reader(self._selector.fileno())
        self._selector.close()
        self._readers.clear()
        self._writers.clear()
