"""Routes from the TOML file, in the same shape as a ``router.register`` message.

Two places in the file name routes: top-level ``[[routes]]`` (gorouter's
shape: uris, tags, app, tls) and each HTTP listener's ``[[listeners.routes]]``
(host, path, endpoints or an upstream). The route table is one per process,
so both feed the registry as the ``static`` source, which keeps them from
being pruned or removed by the admin API. Turning them into
``RegistryMessage``s lets the registry treat every source alike.
"""

from __future__ import annotations

from pointsman.config import Config, HttpListener, Upstream, parse_listen
from pointsman.wire.gorouter import LOAD_BALANCING, Options, RegistryMessage

__all__ = ["static_messages"]

_GOROUTER_BALANCE = {ours: theirs for theirs, ours in LOAD_BALANCING.items()}


def static_messages(config: Config) -> list[RegistryMessage]:
    """One message per configured endpoint, carrying all of its route's uris."""
    messages = []
    for route in config.routes:
        options = Options(_GOROUTER_BALANCE[route.balance])
        for text in route.endpoints:
            host, port = parse_listen(text)
            messages.append(RegistryMessage(
                host=host, port=0 if route.tls else port, tls_port=port if route.tls else 0,
                uris=tuple(route.uris), app=route.app, tags=dict(route.tags),
                server_cert_domain_san=route.server_name, options=options))
    for listener in config.listeners:
        if not isinstance(listener, HttpListener):
            continue
        for http_route in listener.routes:
            if http_route.upstream is not None:
                upstream = config.upstreams.get(http_route.upstream)
                # a provision upstream has no endpoints to register: the HTTP
                # listener leases a fresh backend per request for those routes
                endpoints = upstream.endpoints if isinstance(upstream, Upstream) else []
            else:
                endpoints = http_route.endpoints
            balance = _GOROUTER_BALANCE.get(http_route.balance, "round-robin")
            uri = http_route.host + http_route.path
            # The same instance names the HTTP listener gives its own file routes.
            for index, text in enumerate(endpoints):
                host, port = parse_listen(text)
                tls = http_route.tls
                messages.append(RegistryMessage(
                    host=host, port=0 if tls else port, tls_port=port if tls else 0,
                    uris=(uri,), app=http_route.host,
                    private_instance_id=f"{host}:{port}", private_instance_index=str(index),
                    server_cert_domain_san=http_route.server_name, options=Options(balance)))
    return messages
