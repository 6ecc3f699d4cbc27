"""Choosing the endpoint of one request: balancer, sticky session, or a named instance.

A ``RoutePool`` from the immutable table is joined here with the live
``EndpointState`` counters (one per address, kept in ``upstream``) and the
route's balancer. The join is cached per route key and rebuilt only when the
table hands out a different pool object, so a request pays one dict lookup
and an identity check; a route keeps its balancer (and so its round-robin
position) across table versions while its policy stays the same.

What a request to an endpoint needs beyond its address is worked out here,
once per endpoint and route version, not per request: the key of its idle
connections (TLS ones apart, see ``pool_key``) and the gorouter fields naming
its instance (``X-CF-InstanceID`` and friends) as ready-made header bytes.
"""

from __future__ import annotations

from pointsman.routing.table import Endpoint, RoutePool
from pointsman.upstream.balancers import Balancer, EndpointState, make_balancer
from pointsman.upstream.pool import EndpointStates
from pointsman.wire.forward import cf_instance_fields

__all__ = ["Chooser", "RouteState", "context_path", "pool_key", "tls_name"]

MAX_CACHED_ROUTES = 200_000


def tls_name(endpoint: Endpoint) -> str:
    """The name a TLS endpoint's certificate must carry (and the SNI sent): SAN, else host."""
    return endpoint.server_cert_domain_san or endpoint.host


def pool_key(endpoint: Endpoint) -> str:
    """Key of the endpoint's idle connections: its address, plus the verified name if TLS.

    A plain and a TLS endpoint on one address, or two TLS endpoints expecting
    different names there, must never be handed each other's connections.
    """
    if endpoint.tls:
        return f"{endpoint.address} tls {tls_name(endpoint)}"
    return endpoint.address


def context_path(pool: RoutePool | None) -> bytes:
    """The path a route serves (``/`` for a whole host): where its cookies apply."""
    if pool is None:
        return b"/"
    cut = pool.key.find("/")
    return pool.key[cut:].encode() if cut >= 0 else b"/"


class RouteState:
    """A pool joined with its live states and balancer.

    ``endpoint_of`` and ``target_of`` are keyed by the state object itself
    (states hash by identity), the two lookups every request makes;
    ``target_of`` gives the endpoint's ``pool_key`` and its encoded
    ``cf_instance_fields``.
    """

    __slots__ = ("balance", "balancer", "cookie_path", "endpoint_of", "local", "pool", "states",
                 "target_of")

    def __init__(self, pool: RoutePool, live: EndpointStates, balancer: Balancer,
                 zone: str = "") -> None:
        self.pool = pool
        self.cookie_path = context_path(pool)
        self.balance = pool.balance
        self.balancer = balancer
        self.states = [live.get(e.host, e.port, e.address) for e in pool.endpoints]
        pairs = list(zip(self.states, pool.endpoints, strict=True))
        # The endpoints in the listener's own zone, tried first; None when that
        # would choose from the same set anyway (no preference, all or none local).
        local = [state for state, endpoint in pairs if zone and endpoint.zone == zone]
        self.local = local if local and len(local) < len(pairs) else None
        self.endpoint_of: dict[EndpointState, Endpoint] = dict(pairs)
        self.target_of = {
            state: (pool_key(endpoint),
                    cf_instance_fields(endpoint.app, endpoint.instance_index,
                                       endpoint.instance_id, endpoint.address))
            for state, endpoint in pairs}

    def instance(self, instance_id: str) -> EndpointState | None:
        """The state of the endpoint whose ``instance_id`` (or address) is given."""
        for endpoint, state in zip(self.pool.endpoints, self.states, strict=True):
            if endpoint.instance_id == instance_id:
                return state
        return None

    def app_instance(self, app: str, index: str) -> EndpointState | None:
        for endpoint, state in zip(self.pool.endpoints, self.states, strict=True):
            if endpoint.app == app and endpoint.instance_index == index:
                return state
        return None


class Chooser:
    """Route states by key, over one listener's ``EndpointStates``."""

    __slots__ = ("_routes", "live", "zone")

    def __init__(self, live: EndpointStates, zone: str = "") -> None:
        self.live = live
        self.zone = zone  # prefer endpoints of this availability zone ("": no preference)
        self._routes: dict[str, RouteState] = {}

    def route(self, pool: RoutePool) -> RouteState:
        state = self._routes.get(pool.key)
        if state is not None and state.pool is pool:
            return state
        if state is not None and state.balance == pool.balance:
            balancer = state.balancer
        else:
            balancer = make_balancer(pool.balance)
        if len(self._routes) >= MAX_CACHED_ROUTES:
            self._routes.clear()
        fresh = RouteState(pool, self.live, balancer, self.zone)
        self._routes[pool.key] = fresh
        return fresh
