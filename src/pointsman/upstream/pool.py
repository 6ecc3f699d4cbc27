"""A named pool of endpoints with its balancer and failure policy.

The pool is the unit listeners name in ``upstream = "..."``. It keeps the
bookkeeping that turns connect failures into passive health (an endpoint that
fails ``max_fails`` times in a row rests for ``fail_timeout`` seconds).
"""

from __future__ import annotations

from collections.abc import Iterable

from pointsman.upstream.balancers import Balancer, EndpointState, make_balancer

__all__ = ["Pool"]


class Pool:
    """Endpoints of one upstream, chosen by one balancer."""

    __slots__ = ("balancer", "endpoints", "fail_timeout", "max_fails", "name")

    def __init__(self, name: str, endpoints: Iterable[EndpointState], balancer: Balancer,
                 max_fails: int = 1, fail_timeout: float = 10.0) -> None:
        self.name = name
        self.endpoints = list(endpoints)
        self.balancer = balancer
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout

    @classmethod
    def from_addresses(cls, name: str, addresses: Iterable[tuple[str, int]], policy: str,
                       max_fails: int = 1, fail_timeout: float = 10.0) -> Pool:
        states = [EndpointState(host, port) for host, port in addresses]
        return cls(name, states, make_balancer(policy), max_fails, fail_timeout)

    def pick(self, key: str, now: float,
             exclude: frozenset[EndpointState] = frozenset()) -> EndpointState | None:
        return self.balancer.select(self.endpoints, key, now, exclude)

    def failed(self, endpoint: EndpointState, now: float) -> None:
        endpoint.failed(now, self.max_fails, self.fail_timeout)

    def succeeded(self, endpoint: EndpointState) -> None:
        endpoint.succeeded()


class EndpointStates:
    """Live counters of endpoints that come and go with route tables, keyed by address.

    Route tables are immutable and rebuilt on every registration, so the
    counters balancers and passive health need (active requests, failures,
    the rest deadline) live here instead, one ``EndpointState`` per
    ``host:port`` however many routes name it. States of addresses no longer
    in use are dropped by ``sweep``.
    """

    __slots__ = ("_states", "fail_timeout", "max_connections", "max_fails")

    def __init__(self, max_connections: int = 0, max_fails: int = 1,
                 fail_timeout: float = 30.0) -> None:
        self._states: dict[str, EndpointState] = {}
        self.max_connections = max_connections
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout

    def get(self, host: str, port: int, address: str) -> EndpointState:
        state = self._states.get(address)
        if state is None:
            state = EndpointState(host, port, max_connections=self.max_connections)
            self._states[address] = state
        return state

    def failed(self, state: EndpointState, now: float) -> None:
        state.failed(now, self.max_fails, self.fail_timeout)

    def succeeded(self, state: EndpointState) -> None:
        if state.fails:
            state.succeeded()

    def sweep(self, in_use: set[str]) -> None:
        """Forget idle states whose address no route names any more."""
        for address in [a for a, s in self._states.items() if a not in in_use and not s.active]:
            del self._states[address]

    def __len__(self) -> int:
        return len(self._states)
