"""Routes from the TOML file, in the same shape as a ``router.register`` message.

Turning ``[[routes]]`` into ``RegistryMessage``s lets the registry treat every
source alike; the ``static`` source rank is what keeps them from being pruned.
"""

from __future__ import annotations

from collections.abc import Iterable

from pointsman.config import RouteConfig, parse_listen
from pointsman.wire.gorouter import LOAD_BALANCING, RegistryMessage

__all__ = ["static_messages"]

_GOROUTER_BALANCE = {ours: theirs for theirs, ours in LOAD_BALANCING.items()}


def static_messages(routes: Iterable[RouteConfig]) -> list[RegistryMessage]:
    """One message per configured endpoint, carrying all of its route's uris."""
    messages = []
    for route in routes:
        tags = tuple(sorted(route.tags.items()))
        for text in route.endpoints:
            host, port = parse_listen(text)
            messages.append(RegistryMessage(
                host=host, port=0 if route.tls else port, tls_port=port if route.tls else 0,
                uris=tuple(route.uris), app=route.app, tags=tags,
                load_balancing=_GOROUTER_BALANCE[route.balance]))
    return messages
