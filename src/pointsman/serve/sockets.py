"""Binding listening sockets, and taking over ones a leader process bound.

A listener never needs to know whether it runs alone or as one of several
workers: it asks its ``ServeContext`` for the sockets of its ``listen``
address. Under a leader those were bound once, before the workers forked, so
every worker (and every generation of workers across reloads) accepts from
the same kernel queues and no connection waiting in a queue is lost when a
worker goes away. Alone, the listener binds them itself.
"""

from __future__ import annotations

import socket
from typing import Any

from pointsman.config import parse_listen

__all__ = ["LISTEN_BACKLOG", "bind_address", "open_listening_sockets", "resolve_listen"]

LISTEN_BACKLOG = 4096


def resolve_listen(listen: str, kind: int = socket.SOCK_STREAM) -> list[tuple[int, Any]]:
    """Every distinct ``(family, sockaddr)`` the ``listen`` string names, in resolver order."""
    host, port = parse_listen(listen)
    infos = socket.getaddrinfo(host or None, port, type=kind, flags=socket.AI_PASSIVE)
    seen: set[Any] = set()
    found: list[tuple[int, Any]] = []
    for family, _kind, _proto, _name, address in infos:
        if address not in seen:
            seen.add(address)
            found.append((family, address))
    return found


def bind_address(family: int, address: Any, kind: int = socket.SOCK_STREAM,
                 reuse_port: bool = True, listen: bool = True) -> socket.socket:
    """One non-blocking socket bound to ``address``; listening too for streams when asked."""
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen and kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_listening_sockets(listen: str, reuse_port: bool,
                           kind: int = socket.SOCK_STREAM) -> list[socket.socket]:
    """Bind ``listen`` (every address the host name resolves to) in non-blocking mode."""
    sockets: list[socket.socket] = []
    try:
        for family, address in resolve_listen(listen, kind):
            sockets.append(bind_address(family, address, kind, reuse_port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
