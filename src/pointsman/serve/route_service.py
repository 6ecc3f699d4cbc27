"""Requests on routes bound to a route service: out to the service, back, then to the app.

gorouter's handlers/routeservice.go, step by step, for a request whose route
has a ``route_service_url``:

* route services off (no ``[listeners.route_services]`` secret) -> 502
  ``route_service_unsupported``; a WebSocket upgrade -> 503, likewise;
* no ``X-CF-Proxy-Signature`` -> the request goes to the route service: its
  URL's path and query become the target and its host the Host, and
  ``X-CF-Forwarded-Url`` / ``-Proxy-Signature`` / ``-Proxy-Metadata`` are
  set (``wire.route_service``). The service is reached over TLS with the
  listener's backend TLS settings (``[listeners.backends]``), its certificate
  checked for the URL's host, up to ``max_attempts`` times; with hairpinning,
  a service URL that is one of this router's own routes goes straight to
  that route's endpoints instead;
* with a signature -> it must open with the secret (or the decrypt-only
  one), be no older than ``timeout`` (else 504), and name a URL of this same
  route (else 502); then the three headers are removed and the request goes
  to the app's endpoints as any other.

The route service leg is an ordinary attempt of the ``Exchange``: a route of
its own (one TLS endpoint per allowed attempt) so the exchange's connect,
retry, timeout and streaming code runs unchanged. Its access record names
the service's address as the backend (and the service URL's path as the
target); both legs count under the app's route. What happened to each such
request is counted in ``pointsman_http_route_service_requests_total{listener,
outcome}``: ``to_service``, ``returned``, ``expired``, ``invalid``,
``unsupported``, ``websocket``, ``bad_url``. Nothing here runs for a route
without a route service.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from prometheus_client.core import REGISTRY, CounterMetricFamily

from pointsman.config import HttpRouteServices
from pointsman.routing.table import Endpoint, RoutePool, RouteTable
from pointsman.serve.http_choice import RouteState
from pointsman.upstream.balancers import EndpointState, make_balancer
from pointsman.upstream.pool import EndpointStates
from pointsman.wire.route_service import (
    FORWARDED_URL,
    METADATA,
    NONCE_BYTES,
    SIGNATURE,
    InvalidSignature,
    SignatureError,
    SignatureExpired,
    SigningKey,
    check_fresh,
    decode,
    encode,
    forwarded_url,
    host_without_port,
)

if TYPE_CHECKING:
    from pointsman.serve.http_exchange import Exchange

__all__ = ["RouteServices", "ServiceTarget", "through_route_service"]

_OWN = frozenset({SIGNATURE.lower(), METADATA.lower(), FORWARDED_URL.lower()})
_DROPPED = _OWN | {b"host"}
MAX_TARGETS = 10_000
"""Parsed route service URLs kept; past this the cache starts over."""


_COUNTS: dict[tuple[str, str], int] = {}


def _count(exchange: Exchange, outcome: str) -> None:
    key = (exchange.client.server.name, outcome)
    _COUNTS[key] = _COUNTS.get(key, 0) + 1


class _Collector:
    """``pointsman_http_route_service_requests_total``, made from plain counts when scraped."""

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("pointsman_http_route_service_requests",
                                     "Requests on routes bound to a route service, by outcome",
                                     labels=["listener", "outcome"])
        for (listener, outcome), count in list(_COUNTS.items()):
            family.add_metric([listener, outcome], count)
        yield family


REGISTRY.register(_Collector())


class ServiceTarget(msgspec.Struct, frozen=True, gc=False):
    """A route service URL, parsed once: where to connect and what to send."""

    host: str
    port: int
    tls: bool
    host_header: bytes
    target: bytes
    route_key: str
    """``host/path`` without port: the route a hairpinned request would take."""

    @classmethod
    def parse(cls, url: str) -> ServiceTarget:
        """``ValueError`` for a URL that names no reachable service."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        netloc = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = host_without_port(netloc.encode()).decode().lower() + parts.path.rstrip("/")
        return cls(parts.hostname, port, tls, netloc.encode(), target.encode(), key)


class _Separate(EndpointStates):
    """A new state per call, so one service URL yields one candidate per attempt."""

    def get(self, host: str, port: int, address: str) -> EndpointState:
        return EndpointState(host, port)


class RouteServices:
    """One listener's route service settings, with the secrets' keys derived once."""

    __slots__ = ("_targets", "allowlist", "hairpinning", "https", "keys", "max_attempts",
                 "timeout")

    def __init__(self, config: HttpRouteServices) -> None:
        self.keys = [SigningKey(config.secret)]
        if config.secret_decrypt_only:
            self.keys.append(SigningKey(config.secret_decrypt_only))
        self.timeout = config.timeout
        self.https = config.recommend_https
        self.max_attempts = config.max_attempts
        self.hairpinning = config.hairpinning
        self.allowlist = frozenset(entry.lower().removeprefix("*")
                                   for entry in config.hairpinning_allowlist)
        self._targets: dict[str, ServiceTarget] = {}

    @classmethod
    def of(cls, config: HttpRouteServices) -> RouteServices | None:
        """The listener's route services, or ``None`` when they are off (no secret)."""
        return cls(config) if config.secret else None

    def target(self, url: str) -> ServiceTarget:
        found = self._targets.get(url)
        if found is None:
            found = ServiceTarget.parse(url)
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = found
        return found

    def sign(self, url: bytes, now_ns: int) -> tuple[bytes, bytes]:
        return encode(self.keys[0], url.decode("utf-8", "replace"), now_ns,
                      os.urandom(NONCE_BYTES))

    def validate(self, signature: bytes, metadata: bytes, pool: RoutePool,
                 table: RouteTable, now_ns: int) -> None:
        """Accept a returning request's signature for ``pool``, or raise ``SignatureError``."""
        signed = decode(self.keys, signature, metadata)
        check_fresh(signed, now_ns, self.timeout)
        parts = urlsplit(signed.forwarded_url)
        if not parts.netloc:
            raise InvalidSignature("the signed URL has no host")
        host = host_without_port(parts.netloc.encode()).decode()
        path = parts.path or "/"
        found = table.lookup(host, path) or table.lookup_empty(host, path)
        if found is None or found.key != pool.key:
            raise InvalidSignature("the signed URL is not this route's")

    def hairpin(self, target: ServiceTarget, table: RouteTable) -> RoutePool | None:
        """This router's own route for the service URL, when the request may take it."""
        if not self.hairpinning:
            return None
        host, _, path = target.route_key.partition("/")
        pool = table.lookup(host, "/" + path)
        if pool is None or pool.route_service_url or not pool.endpoints:
            return None
        if self.allowlist:
            name = pool.key.partition("/")[0]
            dot = name.find(".")
            if name not in self.allowlist and (dot < 0 or name[dot:] not in self.allowlist):
                return None
        return pool

    def route_of(self, target: ServiceTarget, key: str) -> RouteState:
        """A route whose candidates are ``max_attempts`` copies of the service's endpoint.

        Under the app route's ``key``, so cookies and metrics stay the route's.
        """
        endpoint = Endpoint(target.host, target.port, tls=target.tls)
        pool = RoutePool(key, (endpoint,) * self.max_attempts)
        return RouteState(pool, _Separate(), make_balancer("round_robin"))


def _is_websocket(exchange: Exchange) -> bool:
    for name, value in exchange.head.headers:
        if len(name) == 7 and name.lower() == b"upgrade":
            return value.strip().lower() == b"websocket"
    return False


def through_route_service(exchange: Exchange, pool: RoutePool) -> None:
    """Route ``exchange``, whose route ``pool`` has a route service (see the module doc)."""
    server = exchange.client.server
    services: RouteServices | None = server.route_services
    if services is None:
        _count(exchange, "unsupported")
        exchange.fail(502, "route_service_unsupported", "Support for route services is disabled.")
        return
    exchange.pool = pool
    head = exchange.head
    if head.upgrade and _is_websocket(exchange):
        _count(exchange, "websocket")
        exchange.fail(503, "route_service_unsupported",
                      "Websocket requests are not supported for routes bound to Route Services.")
        return
    signature = metadata = b""
    for name, value in head.headers:
        if len(name) in (19, 20):
            lname = name.lower()
            if lname == b"x-cf-proxy-signature" and not signature:
                signature = value.strip()
            elif lname == b"x-cf-proxy-metadata" and not metadata:
                metadata = value.strip()
    if signature:
        _returned(exchange, pool, services, signature, metadata)
    else:
        _to_service(exchange, pool, services)


def _returned(exchange: Exchange, pool: RoutePool, services: RouteServices,
              signature: bytes, metadata: bytes) -> None:
    """Back from the route service: check the signature, then on to the app."""
    server = exchange.client.server
    try:
        services.validate(signature, metadata, pool, server.routes.table, time.time_ns())
    except SignatureExpired as exc:
        _count(exchange, "expired")
        exchange.fail(exc.status_hint, "expired_route_service_signature",
                      "Failed to validate Route Service Signature: route service request expired")
        return
    except SignatureError as exc:
        _count(exchange, "invalid")
        exchange.fail(exc.status_hint, "invalid_route_service_signature",
                      "Failed to validate Route Service Signature.")
        return
    _count(exchange, "returned")
    head = exchange.head
    exchange.head = head.rewritten([(n, v) for n, v in head.headers if n.lower() not in _OWN])
    if not pool.endpoints:
        exchange.fail(503, "no_endpoints", "No endpoint can take the request.")
        return
    exchange.route_to(pool)


def _to_service(exchange: Exchange, pool: RoutePool, services: RouteServices) -> None:
    """First pass: the request goes to the route service, signed."""
    server = exchange.client.server
    head = exchange.head
    try:
        target = services.target(pool.route_service_url)
    except ValueError:
        _count(exchange, "bad_url")
        exchange.fail(500, "route_service_failed", "Route service request failed.")
        return
    _count(exchange, "to_service")
    url = forwarded_url(services.https, head.host, head.target)
    signature, metadata = services.sign(url, time.time_ns())
    headers = [(b"Host", target.host_header)]
    headers += [(n, v) for n, v in head.headers if n.lower() not in _DROPPED]
    headers += [(SIGNATURE, signature), (METADATA, metadata), (FORWARDED_URL, url)]
    exchange.head = head.rewritten(headers, target.target)
    own = services.hairpin(target, server.routes.table)
    exchange.route = server.chooser.route(own) if own is not None \
        else services.route_of(target, pool.key)
    exchange.pick(None)
