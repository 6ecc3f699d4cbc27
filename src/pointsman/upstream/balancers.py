"""Choosing an endpoint: one small class per policy, all pure and synchronous.

A balancer sees a sequence of ``EndpointState`` and a key (the client address
for ``hash``) and answers one endpoint or ``None`` when every endpoint is down
or full. Counters live on the endpoint state, which the serving code updates as
connections open and close; nothing here blocks or does I/O.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Balancer",
    "EndpointState",
    "HashBalancer",
    "LeastConnBalancer",
    "RoundRobinBalancer",
    "make_balancer",
]


@dataclass(slots=True, eq=False)
class EndpointState:
    """One backend address and what the router has seen of it lately.

    ``down_until`` is a monotonic deadline: after ``max_fails`` consecutive
    failures the endpoint is skipped until then (nginx's ``max_fails`` /
    ``fail_timeout``), and one success clears the count.
    """

    host: str
    port: int
    max_connections: int = 0
    active: int = 0
    fails: int = 0
    down_until: float = 0.0
    total: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def available(self, now: float) -> bool:
        if self.down_until > now:
            return False
        return not (self.max_connections and self.active >= self.max_connections)

    def failed(self, now: float, max_fails: int, fail_timeout: float) -> None:
        self.fails += 1
        if self.fails >= max_fails:
            self.down_until = now + fail_timeout

    def succeeded(self) -> None:
        self.fails = 0
        self.down_until = 0.0


class Balancer(Protocol):
    """``select`` answers an available endpoint, or ``None`` when there is none."""

    def select(self, endpoints: Sequence[EndpointState], key: str, now: float,
               exclude: frozenset[EndpointState] = frozenset()) -> EndpointState | None: ...


class RoundRobinBalancer:
    """Take turns, starting at a random place so several routers do not march in step."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = random.randrange(1 << 16)

    def select(self, endpoints: Sequence[EndpointState], key: str, now: float,
               exclude: frozenset[EndpointState] = frozenset()) -> EndpointState | None:
        count = len(endpoints)
        turn = self._next
        for _ in range(count):
            endpoint = endpoints[turn % count]
            turn += 1
            if endpoint not in exclude and endpoint.available(now):
                self._next = turn
                return endpoint
        self._next = turn
        return None


class LeastConnBalancer:
    """Fewest active connections; ties broken at random so load spreads evenly."""

    __slots__ = ()

    def select(self, endpoints: Sequence[EndpointState], key: str, now: float,
               exclude: frozenset[EndpointState] = frozenset()) -> EndpointState | None:
        best: EndpointState | None = None
        ties = 0
        for endpoint in endpoints:
            if endpoint in exclude or not endpoint.available(now):
                continue
            if best is None or endpoint.active < best.active:
                best, ties = endpoint, 1
            elif endpoint.active == best.active:
                ties += 1
                if random.randrange(ties) == 0:
                    best = endpoint
        return best


class HashBalancer:
    """The same key goes to the same endpoint while the set is stable.

    Rendezvous hashing: when an endpoint goes down only its keys move.
    """

    __slots__ = ()

    def select(self, endpoints: Sequence[EndpointState], key: str, now: float,
               exclude: frozenset[EndpointState] = frozenset()) -> EndpointState | None:
        best: EndpointState | None = None
        best_score = -1
        encoded = key.encode()
        for endpoint in endpoints:
            if endpoint in exclude or not endpoint.available(now):
                continue
            score = zlib.crc32(endpoint.address.encode(), zlib.crc32(encoded))
            if score > best_score:
                best, best_score = endpoint, score
        return best


_POLICIES: dict[str, type[RoundRobinBalancer] | type[LeastConnBalancer] | type[HashBalancer]] = {
    "round_robin": RoundRobinBalancer,
    "least_conn": LeastConnBalancer,
    "hash": HashBalancer,
}


def make_balancer(policy: str) -> Balancer:
    """A fresh balancer for ``round_robin``, ``least_conn`` or ``hash``."""
    try:
        return _POLICIES[policy]()
    except KeyError:
        raise ValueError(f"unknown balance policy {policy!r}") from None
