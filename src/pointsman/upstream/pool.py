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
