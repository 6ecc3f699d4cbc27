"""The admin API's built-in endpoints: health, metrics and the route registry.

Each ``install_*`` function adds one group of endpoints to an ``Admin`` and
captures what its handlers need; the runtime calls them when it starts the
admin server. New groups follow the same shape.

* ``GET /health`` (public): ``ok`` while serving, 503 once stopping;
* ``GET /metrics``: Prometheus text exposition;
* ``GET /routes``: gorouter's ``/routes`` body, ``{uri: [endpoint, ...]}``;
* ``POST /routes``: register, body in the ``router.register`` shape;
* ``DELETE /routes``: unregister, same body.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from pointsman.control.admin import Admin, HttpError, Request, Response
from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.registry import Registry
from pointsman.wire.gorouter import MalformedRegistration, RegistryMessage, decode_registration

__all__ = ["change_route", "check_shard", "install_health", "install_metrics", "install_routes"]


def install_health(admin: Admin, healthy: Callable[[], bool]) -> None:
    async def health(request: Request) -> Response:
        response = Response.text("ok\n") if healthy() else Response.text("stopping\n", 503)
        response.headers.append(("Cache-Control", "private, max-age=0"))
        return response

    admin.add("GET", "/health", health, public=True)


def install_metrics(admin: Admin, registry: CollectorRegistry = REGISTRY) -> None:
    async def metrics(request: Request) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    admin.add("GET", "/metrics", metrics)


def install_routes(admin: Admin, driver: RegistryDriver) -> None:
    registry = driver.registry

    async def list_routes(request: Request) -> Response:
        return Response.json(registry.describe(driver.now()))

    async def add_route(request: Request) -> Response:
        message, changed = change_route(driver, request, "register")
        return Response.json({"changed": changed, "uris": list(message.uris)})

    async def remove_route(request: Request) -> Response:
        message, changed = change_route(driver, request, "unregister")
        return Response.json({"changed": changed, "uris": list(message.uris)})

    admin.add("GET", "/routes", list_routes)
    admin.add("POST", "/routes", add_route)
    admin.add("DELETE", "/routes", remove_route)


def change_route(driver: RegistryDriver, request: Request,
                 op: str) -> tuple[RegistryMessage, int]:
    """Apply an API register/unregister body at once: the message and what changed.

    409 for an endpoint outside this router's shard or owned by the config
    file, 404 for unregistering an endpoint that is not there.
    """
    registry = driver.registry
    message = _message(request)
    check_shard(registry, message)
    refused = registry.refused
    apply = driver.register if op == "register" else driver.unregister
    changed = apply(message, "admin")
    driver.publish_now()
    if registry.refused > refused and not changed:
        raise HttpError(409, "the endpoint comes from the config file; change it there")
    if op == "unregister" and not changed:
        raise HttpError(404, "no such endpoint under those uris")
    return message, changed


def check_shard(registry: Registry, message: RegistryMessage) -> None:
    """409 for an endpoint this router does not take (routing_table_sharding_mode)."""
    if not registry.accepts(message, "admin"):
        registry.outside_shard += 1
        raise HttpError(409, f"isolation_segment {message.isolation_segment!r} is not served "
                             f"here (routing_table_sharding_mode = "
                             f"{registry.sharding_mode!r})")


def _message(request: Request) -> RegistryMessage:
    try:
        message = decode_registration(request.body)
    except MalformedRegistration as exc:
        raise HttpError(400, f"not a router.register body: {exc}") from None
    if not message.uris:
        raise HttpError(400, "not a router.register body: no uris")
    return message
