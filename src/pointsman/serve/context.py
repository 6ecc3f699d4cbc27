"""What every listener is handed by the process that runs it.

``serve`` must not import ``control``; the control layer builds a
``ServeContext`` and passes it down, so listeners log, find upstreams and
register their connections without knowing who runs them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pointsman.routing.table import TableHolder
from pointsman.serve.poller import Poller
from pointsman.serve.provision import ProvisionPool
from pointsman.serve.sockets import open_listening_sockets
from pointsman.upstream.pool import Pool

__all__ = [
    "ERROR_REASONS",
    "FAILURE_CLOSE_CODES",
    "EventSink",
    "RecordSink",
    "Running",
    "ServeContext",
    "failed_connection",
]


ERROR_REASONS = frozenset({"bad_decision", "route_error", "no_endpoint", "connect_failed",
                           "connect_timeout", "backend_error", "decision_timeout",
                           "buffer_limit"})
"""Connection end reasons that mean the router failed the client (not the client leaving)."""

FAILURE_CLOSE_CODES = frozenset({1011, 1013, 1014})
"""WebSocket close codes the router sends when it failed the client: an instance
went away (1011), none could be had (1013, try again later), bad gateway (1014)."""


def failed_connection(reason: str) -> bool:
    """Whether a TCP connection that ended for ``reason`` was failed by the router."""
    return reason in ERROR_REASONS or reason.startswith("pool_exhausted")


class RecordSink(Protocol):
    """The access log as listeners see it.

    A listener builds a record only when ``enabled``; otherwise it calls
    ``count``, so the per-listener request and error counts every process
    reports cost no record (and no clock read or decode) per request.
    """

    @property
    def enabled(self) -> bool: ...

    def write(self, record: dict[str, Any]) -> None: ...

    def count(self, listener: str, error: bool) -> None: ...


class EventSink(Protocol):
    def wants(self, level: str) -> bool: ...

    def event(self, level: str, name: str, **fields: Any) -> None: ...


class Running(Protocol):
    """A started listener."""

    name: str

    @property
    def addresses(self) -> list[tuple[str, int]]: ...

    @property
    def active(self) -> int: ...

    def stop_accepting(self) -> None: ...

    async def drain(self, timeout: float) -> None:
        """Wait for open connections to end, up to ``timeout``; then cut the rest."""
        ...


@dataclass(slots=True)
class ServeContext:
    loop: asyncio.AbstractEventLoop
    poller: Poller
    access: RecordSink
    events: EventSink
    config_dir: Path = field(default_factory=Path)
    pools: dict[str, Pool] = field(default_factory=dict)
    provision: dict[str, ProvisionPool] = field(default_factory=dict)
    routes: TableHolder = field(default_factory=TableHolder)
    reuse_port: bool = True
    inherited: dict[str, list[socket.socket]] = field(default_factory=dict)
    endpoint_failed: Callable[[str, str], object] | None = None
    """Told (route key, endpoint address) when a request cannot reach a TLS endpoint."""

    def listening_sockets(self, listen: str,
                          kind: int = socket.SOCK_STREAM) -> list[socket.socket]:
        """The sockets for ``listen``: the ones a leader bound for us, else freshly bound.

        Every listener kind binds through here, so that under a leader all
        workers share the leader's sockets (and their queues survive reloads).
        """
        inherited = self.inherited.pop(listen, None)
        if inherited is not None and all(sock.type == kind for sock in inherited):
            return inherited
        return open_listening_sockets(listen, self.reuse_port, kind)
