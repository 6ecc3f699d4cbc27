"""The SDK for services behind a pointsman gateway.

::

    from pointsman.service import Router, Service, NatsTransport

    router = Router()

    @router.public_bind("/hello/:name")
    async def hello(ctx):
        return {"greeting": f"hello {ctx.params['name']}"}

    Service("hello", NatsTransport("nats://127.0.0.1:4222"), router).run()
"""

from pointsman.service.context import Connection, Context
from pointsman.service.errors import (
    InvalidData,
    NoResponders,
    NotFound,
    RequestTimeout,
    ServiceError,
    SocketClosed,
    TransportError,
    TransportTimeout,
)
from pointsman.service.nats_transport import NatsTransport
from pointsman.service.router import Router
from pointsman.service.service import Service
from pointsman.service.transport import LocalTransport, Msg, Transport

__all__ = [
    "Connection",
    "Context",
    "InvalidData",
    "LocalTransport",
    "Msg",
    "NatsTransport",
    "NoResponders",
    "NotFound",
    "RequestTimeout",
    "Router",
    "Service",
    "ServiceError",
    "SocketClosed",
    "Transport",
    "TransportError",
    "TransportTimeout",
]
