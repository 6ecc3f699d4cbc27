"""The admin API of a leader: everything an operator (or the dashboard) asks for.

Installed on the ``control.admin.Admin`` server the leader runs; every
endpoint but ``/health``, ``/openapi.json`` and the dashboard's static files
needs the bearer token. ``docs/openapi.json`` is generated from ``OPENAPI``
in ``control.openapi``; the two must not drift (a test compares them).

* ``GET /status``: the leader, its workers and listeners;
* ``GET /stats``: per-listener totals and active connections (the dashboard
  polls it and draws rates);
* ``GET /config``: the running config with secrets replaced by ``"***"``;
* ``GET|POST|DELETE /routes``: the route registry; changes go to every
  worker at once and are persisted (``GET /routes?workers=1``: each worker's
  own table, to check they agree);
* ``GET /upstreams``: each endpoint's health, connections and totals, summed
  over the workers; ``POST /drain``: take one endpoint of an upstream, or of
  an HTTP route key (``{"route": ..., "endpoint": ...}``), out of balancing;
* ``GET /connections``: open connections, per listener and a sample;
* ``POST /reload``: the HUP reload, answering with its errors when refused;
* ``GET /metrics``: Prometheus, one exposition for all workers;
* ``GET /workers/NAME``: every worker's answer to a question other subsystems
  register in ``control.worker_ops.WORKER_CALLS`` (the dashboard shows
  ``gateway`` and ``provision`` when they exist).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST

from pointsman.config import Upstream
from pointsman.control.admin import Admin, HttpError, Request, Response
from pointsman.control.admin_routes import change_route, install_health
from pointsman.control.metrics import family_names, process_families, render
from pointsman.control.openapi import OPENAPI
from pointsman.control.provision_admin import install_provision, merge_worker_states
from pointsman.control.worker_ops import WORKER_CALLS
from pointsman.routing.table import route_key

if TYPE_CHECKING:
    from pointsman.control.process import Leader

__all__ = ["STATIC_DIR", "install_leader", "redact"]

STATIC_DIR = Path(__file__).parent / "static"
SECRET_KEYS = re.compile(r"token|password|secret|credential", re.IGNORECASE)
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def redact(value: Any) -> Any:
    """The config as plain data, with every secret-looking value hidden."""
    if isinstance(value, dict):
        return {key: ("***" if SECRET_KEYS.search(str(key)) and item else redact(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class _DrainBody(msgspec.Struct, forbid_unknown_fields=True):
    endpoint: str
    upstream: str | None = None
    route: str | None = None
    drain: bool = True


def install_leader(admin: Admin, leader: Leader) -> None:
    install_health(admin, lambda: not leader.stopping)

    async def status(request: Request) -> Response:
        body = leader.status()
        body["admin_state"] = leader.state.describe()
        if leader.kv is not None:
            body["admin_state"]["bucket"] = leader.kv.describe()
        return Response.json(body)

    async def stats(request: Request) -> Response:
        await leader.refresh_stats()
        live = leader.live_stats()
        return Response.json({
            "time": leader.clock(),
            "workers": len(leader.current),
            "requests": leader.aggregator.totals(live, "requests"),
            "errors": leader.aggregator.totals(live, "errors"),
            "active": leader.active(),
            "listeners": leader.listeners,
            "routes": len(leader.plane.registry),
        })

    async def config(request: Request) -> Response:
        return Response.json(redact(msgspec.to_builtins(leader.config)))

    async def metrics(request: Request) -> Response:
        await leader.refresh_stats()
        live = leader.live_stats()
        own = list(leader.metrics_registry.collect())
        skip = family_names(leader.metrics_registry)
        process = process_families(leader.status(), leader.aggregator.totals(live, "requests"),
                                   leader.aggregator.totals(live, "errors"), leader.active(),
                                   leader.restarts)
        body = render(own, process, leader.aggregator.families(live, skip))
        return Response(200, body, CONTENT_TYPE_LATEST)

    async def list_routes(request: Request) -> Response:
        if request.query.get("workers"):  # what each worker routes by: proof they agree
            return Response.json(await leader.ask("routes"))
        driver = leader.plane.driver
        if driver is None:
            return Response.json({})
        return Response.json(leader.plane.registry.describe(driver.now()))

    async def change_route_everywhere(request: Request, op: str) -> Response:
        """Apply it here, then in every worker and the saved state; answer once routed."""
        message, changed = change_route(_driver(leader), request, op)
        leader.route_changed(op, message)
        await leader.ask("sync")
        return Response.json({"changed": changed, "uris": list(message.uris)})

    async def add_route(request: Request) -> Response:
        return await change_route_everywhere(request, "register")

    async def remove_route(request: Request) -> Response:
        return await change_route_everywhere(request, "unregister")

    async def upstreams(request: Request) -> Response:
        replies = await leader.ask("upstreams")
        merged: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for reply in replies:
            for name, endpoints in reply.items():
                for row in endpoints:
                    seen = merged[name].get(row["address"])
                    if seen is None:
                        merged[name][row["address"]] = dict(row)
                        continue
                    for key in ("active", "total", "fails"):
                        seen[key] += row[key]
                    seen["healthy"] = seen["healthy"] and row["healthy"]
        return Response.json({name: list(rows.values()) for name, rows in merged.items()})

    async def drain(request: Request) -> Response:
        body = request.json(_DrainBody)
        if (body.upstream is None) == (body.route is None):
            raise HttpError(400, "expected exactly one of 'upstream' or 'route'")
        if body.route is not None:
            response = drain_route(body.route, body.endpoint, body.drain)
        else:
            assert body.upstream is not None
            response = drain_upstream(body.upstream, body.endpoint, body.drain)
        await leader.ask("sync")  # every worker has applied it when this answers
        return response

    def drain_upstream(name: str, endpoint: str, on: bool) -> Response:
        upstream = leader.config.upstreams.get(name)
        if upstream is None:
            raise HttpError(404, f"no upstream named {name!r}")
        if not isinstance(upstream, Upstream):
            raise HttpError(409, f"upstream {name!r} provisions its backends: "
                                 "nothing to drain by address")
        if endpoint not in upstream.endpoints:
            raise HttpError(404, f"upstream {name!r} has no endpoint {endpoint!r}")
        leader.drain(name, endpoint, on)
        return Response.json({"upstream": name, "endpoint": endpoint, "draining": on})

    def drain_route(route: str, endpoint: str, on: bool) -> Response:
        registry = leader.plane.registry
        known = any(entry.endpoint.address == endpoint
                    for entry in registry.registrations_of(route))
        if not known and not (not on and registry.is_drained(route, endpoint)):
            raise HttpError(404, f"route {route!r} has no endpoint {endpoint!r}")
        key = route_key(route)
        leader.drain_route(key, endpoint, on)
        return Response.json({"route": key, "endpoint": endpoint, "draining": on})

    async def connections(request: Request) -> Response:
        replies = await leader.ask("connections")
        listed = [row for reply in replies for row in reply.get("connections", [])]
        return Response.json({"active": leader.active(), "connections": listed[:100]})

    async def reload(request: Request) -> Response:
        result = await leader.reload()
        return Response.json(result, 200 if result.get("ok") else 422)

    async def per_worker(request: Request) -> Response:
        op = request.path.removeprefix("/workers/")
        if op not in WORKER_CALLS and op not in ("upstreams", "connections", "routes"):
            raise HttpError(404, f"workers answer no {op!r}")
        return Response.json(await leader.ask(op))

    async def openapi(request: Request) -> Response:
        return Response.json(OPENAPI)

    async def static(request: Request) -> Response:
        name = "index.html" if request.path in ("/", "/dashboard") else \
            request.path.removeprefix("/static/")
        path = (STATIC_DIR / name).resolve()
        if STATIC_DIR.resolve() not in path.parents or not path.is_file():
            raise HttpError(404)
        response = Response(200, path.read_bytes(),
                            STATIC_TYPES.get(path.suffix, "application/octet-stream"))
        response.headers.append(("Cache-Control", "no-cache"))
        return response

    admin.add("GET", "/status", status)
    admin.add("GET", "/stats", stats)
    admin.add("GET", "/config", config)
    admin.add("GET", "/metrics", metrics)
    admin.add("GET", "/routes", list_routes)
    admin.add("POST", "/routes", add_route)
    admin.add("DELETE", "/routes", remove_route)
    admin.add("GET", "/upstreams", upstreams)
    admin.add("POST", "/drain", drain)
    admin.add("GET", "/connections", connections)
    admin.add("POST", "/reload", reload)
    admin.add("GET", "/workers", per_worker, prefix=True)
    install_provision(admin, lambda: _provision(leader))
    admin.add("GET", "/openapi.json", openapi, public=True)
    admin.add("GET", "/", static, public=True)
    admin.add("GET", "/dashboard", static, public=True)
    admin.add("GET", "/static", static, public=True, prefix=True)


def _driver(leader: Leader) -> Any:
    driver = leader.plane.driver
    if driver is None:
        raise HttpError(503, "the route registry is not running")
    return driver


async def _provision(leader: Leader) -> dict[str, Any]:
    return merge_worker_states([reply for reply in await leader.ask("provision")
                                if isinstance(reply, dict) and "error" not in reply])
