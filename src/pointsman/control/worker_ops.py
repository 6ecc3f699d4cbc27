"""What a worker does when its leader asks, and what it reports back.

The leader is the one place operators talk to (admin API, signals); the
workers hold the state traffic needs. Each instruction is a small message on
the worker's channel:

* a ``RouteChange`` -- an admin-API or NATS route change, applied to this
  worker's registry exactly as the leader applied it to its own (so every
  worker routes alike);
* ``drain`` -- take one upstream endpoint, or one endpoint of an HTTP route
  key, out of balancing (its open connections and requests finish) or put it
  back;
* ``call`` -- a question (``upstreams``, ``connections``, ``routes``) answered with a
  ``reply`` carrying the same ``id``.

Every second the worker sends ``stats``: per-listener active connections,
request and error counts, and its own Prometheus exposition, which the
leader sums into one ``/metrics``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from pointsman.control.channel import RouteChange
from pointsman.control.runtime import Runtime
from pointsman.discovery.registry import Source
from pointsman.wire.gorouter import MalformedRegistration, RegistryMessage, decode_registration

__all__ = ["MAX_CONNECTIONS_LISTED", "WORKER_CALLS", "WorkerOps"]

# Questions other subsystems teach workers to answer (gateway sockets, provisioned
# backends, ...): ``WORKER_CALLS["gateway"] = lambda runtime: {...}`` makes
# ``GET /workers/gateway`` on the leader's admin API return every worker's answer.
WORKER_CALLS: dict[str, Callable[[Runtime], Any]] = {}

MAX_CONNECTIONS_LISTED = 100
DRAINED = math.inf


class WorkerOps:
    """A worker's side of the conversation with its leader."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.drained: set[tuple[str, str]] = set()

    # -- instructions -------------------------------------------------------------------------

    def handle(self, message: dict[str, Any] | RouteChange) -> dict[str, Any] | None:
        """Apply one message; the reply to send back, if it asked a question."""
        if isinstance(message, RouteChange):
            self.apply(message.op, message.message, message.source)
            return None
        kind = message.get("type")
        if kind == "drain" and message.get("route") is not None:
            self.drain_route(str(message.get("route")), str(message.get("endpoint")),
                             bool(message.get("on", True)))
        elif kind == "drain":
            self.drain(str(message.get("upstream")), str(message.get("endpoint")),
                       bool(message.get("on", True)))
        elif kind == "call":
            op = message.get("op")
            result: Any = {"error": f"unknown call {op!r}"}
            if op == "upstreams":
                result = self.upstreams()
            elif op == "connections":
                result = self.connections()
            elif op == "routes":
                result = self.routes()
            elif op == "stats":
                result = self.stats()
            elif op == "sync":
                # Answered after every message sent before it (the channel keeps order),
                # so the leader knows those changes are in this worker's table.
                result = True
            elif isinstance(op, str) and op in WORKER_CALLS:
                try:
                    result = WORKER_CALLS[op](self.runtime)
                except Exception as exc:  # a broken probe must not take the worker down
                    result = {"error": f"{type(exc).__name__}: {exc}"}
            return {"type": "reply", "id": message.get("id"), "result": result}
        return None

    def apply_route(self, op: str, body: str, source: Source = "admin") -> None:
        """``apply`` for a registration body (the routes a worker is given at fork time)."""
        try:
            message = decode_registration(body)
        except MalformedRegistration:
            return
        self.apply(op, message, source)

    def apply(self, op: str, message: RegistryMessage, source: Source = "admin") -> None:
        """A route change the leader applied, applied here exactly alike."""
        driver = self.runtime.routes.driver
        if driver is None:
            return
        if op == "register":
            driver.register(message, source)
        elif op == "unregister":
            driver.unregister(message, source)
        if source != "nats":
            # An admin change is routable when the API answers. NATS changes
            # come in floods (a route-emitter's burst, a snapshot) and are
            # batched by the driver's publish delay, as in the leader: a
            # snapshot per message made the worker rebuild its table per message.
            driver.publish_now()

    def drain(self, upstream: str, endpoint: str, on: bool) -> None:
        if on:
            self.drained.add((upstream, endpoint))
        else:
            self.drained.discard((upstream, endpoint))
        self.apply_drained()

    def drain_route(self, route: str, endpoint: str, on: bool) -> None:
        """The route table's next snapshot leaves ``endpoint`` out of ``route`` (or not)."""
        driver = self.runtime.routes.driver
        if driver is not None and driver.registry.set_drained(route, endpoint, on):
            driver.publish_now()

    def apply_drained(self) -> None:
        """Drained endpoints rest for ever; undrained ones are available again at once."""
        context = self.runtime.context
        if context is None:
            return
        for name, pool in context.pools.items():
            for state in pool.endpoints:
                drained = (name, state.address) in self.drained
                if drained:
                    state.down_until = DRAINED
                elif state.down_until == DRAINED:
                    state.down_until = 0.0

    # -- questions ----------------------------------------------------------------------------

    def upstreams(self) -> dict[str, Any]:
        context = self.runtime.context
        now = time.monotonic()
        out: dict[str, Any] = {}
        if context is None:
            return out
        for name, pool in context.pools.items():
            out[name] = [{
                "address": state.address,
                "active": state.active,
                "total": state.total,
                "fails": state.fails,
                "draining": (name, state.address) in self.drained,
                "healthy": state.down_until <= now,
            } for state in pool.endpoints]
        return out

    def routes(self) -> dict[str, Any]:
        """The route keys and endpoint addresses this worker routes by, right now."""
        registry = self.runtime.routes.registry
        driver = self.runtime.routes.driver
        now = driver.now() if driver is not None else 0.0
        return {"pid": os.getpid(),
                "routes": {key: sorted(row["address"] for row in rows)
                           for key, rows in registry.describe(now).items()}}

    def connections(self) -> dict[str, Any]:
        now = time.monotonic()
        listed: list[dict[str, Any]] = []
        for running in self.runtime.listeners:
            for session in list(getattr(running, "sessions", ()))[:MAX_CONNECTIONS_LISTED]:
                if len(listed) >= MAX_CONNECTIONS_LISTED:
                    break
                conn = getattr(session, "conn", None)
                endpoint = getattr(session, "endpoint", None)
                started = getattr(session, "started", now)
                listed.append({
                    "listener": running.name,
                    "client": _address(getattr(conn, "client", None)),
                    "backend": getattr(endpoint, "address", None),
                    "age": round(now - started, 3),
                })
        return {"active": {running.name: running.active for running in self.runtime.listeners},
                "connections": listed}

    def stats(self) -> dict[str, Any]:
        counts = self.runtime.counts
        return {
            "type": "stats",
            "active": {running.name: running.active for running in self.runtime.listeners},
            "requests": dict(counts.requests),
            "errors": dict(counts.errors),
            "metrics": generate_latest(REGISTRY).decode(),
        }


def _address(value: Any) -> str | None:
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return None
