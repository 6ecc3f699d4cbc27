"""The listening sockets a leader owns on behalf of its workers.

nginx's model: the leader binds, the workers inherit. Each listen address
gets one ``SO_REUSEPORT`` socket per worker slot, so the kernel spreads new
connections over the workers, and a slot's socket outlives any one worker:
a replacement (after a crash or a reload) inherits the very same socket and
takes over the connections already waiting in its queue. The leader itself
never accepts on them.

A listen address with port 0 (tests, examples) is resolved once, by the
first socket of the group; every other slot and every later generation binds
that concrete port, so a reload never moves a listener.

Listener kinds that cannot take inherited sockets still get a stable port:
the leader reserves it with a bound, non-listening ``SO_REUSEPORT`` socket and
hands the workers the concrete address instead of port 0.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from typing import Any

from pointsman.config import parse_listen
from pointsman.serve.sockets import bind_address, resolve_listen

__all__ = ["SocketTable", "format_address"]

Key = tuple[str, int]  # (listen string, socket kind)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _with_port(address: Any, port: int) -> Any:
    return (address[0], port, *address[2:])


class SocketTable:
    """Listen address -> worker slot -> the bound sockets for each resolved address."""

    def __init__(self) -> None:
        self._groups: dict[Key, list[list[socket.socket]]] = {}
        self._reserved: dict[tuple[str, str, int], tuple[socket.socket, str]] = {}

    def shared(self, listen: str, kind: int, slots: int) -> None:
        """Make sure ``listen`` has bound sockets for ``slots`` workers."""
        key = (listen, kind)
        group = self._groups.get(key)
        if group is None:
            group = []
            targets = resolve_listen(listen, kind)
        else:
            targets = [(sock.family, sock.getsockname()) for sock in group[0]]
        created: list[list[socket.socket]] = []
        try:
            while len(group) + len(created) < slots:
                slot: list[socket.socket] = []
                created.append(slot)
                for index, (family, address) in enumerate(targets):
                    sock = bind_address(family, address, kind)
                    slot.append(sock)
                    if address[1] == 0:  # the first socket fixes the port for all the others
                        targets[index] = (family, _with_port(address, sock.getsockname()[1]))
        except OSError:
            for slot in created:
                for sock in slot:
                    sock.close()
            raise
        group.extend(created)
        self._groups[key] = group

    def reserve(self, name: str, listen: str, kind: int) -> str:
        """A concrete ``host:port`` for a port-0 address a worker will bind itself."""
        host, port = parse_listen(listen)
        if port != 0:
            return listen
        held = self._reserved.get((name, listen, kind))
        if held is not None:
            return held[1]
        family, address = resolve_listen(listen, kind)[0]
        sock = bind_address(family, address, kind, listen=False)
        concrete = format_address(host, sock.getsockname()[1])
        self._reserved[(name, listen, kind)] = (sock, concrete)
        return concrete

    def for_slot(self, slot: int) -> dict[str, list[socket.socket]]:
        """What the worker in ``slot`` inherits, keyed by listen string."""
        return {listen: group[slot] for (listen, _kind), group in self._groups.items()
                if slot < len(group)}

    def filenos(self) -> set[int]:
        found = {sock.fileno() for group in self._groups.values() for slot in group
                 for sock in slot}
        found.update(sock.fileno() for sock, _ in self._reserved.values())
        return found

    def retain(self, wanted: Iterable[tuple[str, int, int]],
               reserved: Iterable[tuple[str, str, int]]) -> None:
        """Close every socket the running config no longer names (or slot beyond its count)."""
        keep = {(listen, kind): slots for listen, kind, slots in wanted}
        for key in list(self._groups):
            slots = keep.get(key, 0)
            group = self._groups[key]
            for slot in group[slots:]:
                for sock in slot:
                    sock.close()
            if slots:
                self._groups[key] = group[:slots]
            else:
                del self._groups[key]
        keep_reserved = set(reserved)
        for held in list(self._reserved):
            if held not in keep_reserved:
                self._reserved.pop(held)[0].close()

    def close(self) -> None:
        self.retain((), ())

    def describe(self) -> dict[str, list[str]]:
        """listen string -> the concrete addresses it is bound to."""
        return {listen: [format_address(*sock.getsockname()[:2]) for sock in group[0]]
                for (listen, _kind), group in self._groups.items() if group}


def close_quietly(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
