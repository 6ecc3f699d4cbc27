"""The content-routing contract: what a user's route function may answer.

A route function sees the client's bytes buffered so far and answers where the
connection belongs. This module turns every answer a user may give into one of
three normalised decisions, so the serving code never has to guess:

* ``Route`` with a ``remote``: connect there, replay the buffer, splice.
* ``Route`` without a ``remote``: send ``reply`` to the client, replace the
  buffer with ``data`` and keep waiting (how a PostgreSQL SSLRequest is
  declined before the startup message arrives).
* ``NOOP``: wait for more bytes; ``CLOSE``: send ``reply`` (if any) and close.

Nothing here does I/O; it is the pure half of ``serve.tcp``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "CLOSE",
    "NOOP",
    "BadDecision",
    "Conn",
    "ConnectErrorHandler",
    "Decision",
    "Remote",
    "Route",
    "RouteFunction",
    "normalise",
    "parse_remote",
]


class Verdict(enum.Enum):
    """The two answers that carry no destination."""

    NOOP = "noop"
    CLOSE = "close"

    def __repr__(self) -> str:
        return self.value.upper()


NOOP = Verdict.NOOP
CLOSE = Verdict.CLOSE


class BadDecision(ValueError):
    """A route function answered something that is not a decision.

    The connection is closed and the answer logged; the process goes on.
    """


@dataclass(frozen=True, slots=True)
class Remote:
    """A backend address, or the name of a configured upstream to pick from."""

    host: str = ""
    port: int = 0
    upstream: str | None = None

    def __str__(self) -> str:
        if self.upstream is not None:
            return f"@{self.upstream}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


ConnectErrorHandler = Callable[[str, BaseException], "str | Route | None"]


@dataclass(frozen=True, slots=True)
class Route:
    """A full answer, ProxyMachine's hash in Python.

    ``remote`` is ``"host:port"``, ``"[v6]:port"``, ``(host, port)``, a
    ``Remote``, or ``"@name"`` for a configured upstream. ``data`` replaces the
    buffered bytes before they are replayed (or kept, when there is no remote);
    ``reply`` goes to the client first. Timeouts are seconds and override the
    listener's. ``on_connect_error(remote, error)`` may name another remote
    when the connect fails; returning ``None`` closes the client.
    """

    remote: Any = None
    data: bytes | None = None
    reply: bytes | None = None
    close: bool = False
    connect_timeout: float | None = None
    inactivity_timeout: float | None = None
    on_connect_error: ConnectErrorHandler | None = None


Decision = Route | Verdict


@dataclass(slots=True)
class Conn:
    """What a route function knows about the connection besides its bytes.

    ``client`` is the peer address (the original client when a PROXY protocol
    header was accepted), ``state`` a dict that lives as long as the connection,
    for parsers that want to remember where they got to.
    """

    client: tuple[str, int]
    local: tuple[str, int]
    listener: str
    state: dict[str, Any] = field(default_factory=dict)
    tls_server_name: str | None = None


RouteFunction = Callable[[bytes, Conn], "Decision | str | Awaitable[Decision | str] | Any"]


def parse_remote(value: Any) -> Remote:
    """Read every spelling of a backend address; raise ``BadDecision`` otherwise."""
    if isinstance(value, Remote):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
        if isinstance(host, str) and isinstance(port, int) and 0 < port < 65536:
            return Remote(host, port)
        raise BadDecision(f"expected (host, port), got {value!r}")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not value:
        raise BadDecision(f"expected 'host:port', got {value!r}")
    return _parse_remote_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_remote_text(value: str) -> Remote:
    """Route functions answer the same few addresses again and again: parse each once."""
    if value.startswith("@"):
        if len(value) == 1:
            raise BadDecision("expected an upstream name after '@'")
        return Remote(upstream=value[1:])
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise BadDecision(f"expected 'host:port', got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise BadDecision(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Remote(host, port)


@functools.lru_cache(maxsize=4096)
def _route_to(value: str) -> Route:
    """``Route(remote=...)`` for a ``"host:port"`` answer; Routes are immutable, so shared."""
    return Route(remote=parse_remote(value))


def normalise(answer: Any) -> Decision:
    """Turn a route function's answer into a ``Route``, ``NOOP`` or ``CLOSE``.

    A returned ``Route`` with a remote always carries a parsed ``Remote``.

    ``None`` and ``False`` mean "not yet" (a function that falls off its end
    is waiting), ``True`` is not an answer.
    """
    if type(answer) is str:
        return _route_to(answer)  # the common answer, checked first
    if answer is None or answer is False:
        return NOOP
    if isinstance(answer, Verdict):
        return answer
    if isinstance(answer, Route):
        if answer.remote is None:
            if answer.close or answer.reply is not None or answer.data is not None:
                return answer
            raise BadDecision("Route() needs a remote, a reply, data or close=True")
        return replace(answer, remote=parse_remote(answer.remote))
    if isinstance(answer, str | bytes | tuple | Remote):
        return Route(remote=parse_remote(answer))
    raise BadDecision(
        "a route function must answer 'host:port', Route, NOOP or CLOSE, "
        f"got {type(answer).__name__}"
    )
