"""gorouter's NATS registration messages, as JSON bytes in and structs out.

A ``router.register`` / ``router.unregister`` payload decodes to a
``RegistryMessage`` with gorouter's exact JSON names (mbus/subscriber.go).
Unknown fields are ignored and ``null`` reads as the field's zero value, as
Go's ``encoding/json`` does, so any client that works against gorouter works
here. Anything gorouter would drop (bad JSON, a wrong type, a port outside
0..65535, a ``route_service_url`` that is not https) raises
``MalformedRegistration``; so does a message no endpoint can be made from (no
host, or neither port set), which gorouter would register as an unusable
``host:0``.

``RouterStart`` is what the router announces on ``router.start`` and answers
on ``router.greet`` (common/component.go).

Sans-I/O: bytes in, structs or bytes out.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "LOAD_BALANCING",
    "MalformedRegistration",
    "RegistryMessage",
    "RouterStart",
    "decode_registration",
    "encode_registration",
    "encode_router_start",
]

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]

LOAD_BALANCING = {"round-robin": "round_robin", "least-connection": "least_conn"}
"""gorouter's ``options.loadbalancing`` values and pointsman's balance names."""


class MalformedRegistration(ValueError):
    """A payload gorouter would drop; the message says why, for the log."""


class _RawOptions(msgspec.Struct):
    loadbalancing: str | None = None


class _RawRegistryMessage(msgspec.Struct):
    """The payload as sent: every field optional and nullable, like Go's decoder."""

    host: str | None = None
    port: Port | None = None
    tls_port: Port | None = None
    uris: list[str | None] | None = None
    app: str | None = None
    availability_zone: str | None = None
    endpoint_updated_at_ns: int | None = None
    isolation_segment: str | None = None
    private_instance_id: str | None = None
    private_instance_index: str | None = None
    protocol: str | None = None
    route_service_url: str | None = None
    server_cert_domain_san: str | None = None
    stale_threshold_in_seconds: int | None = None
    tags: dict[str, str | None] | None = None
    options: _RawOptions | None = None


class RegistryMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One registration with gorouter's zero values filled in.

    ``tls_port`` set means the endpoint is ``host:tls_port`` over TLS;
    otherwise it is ``host:port`` in the clear (route/pool.go ``NewEndpoint``).
    ``load_balancing`` is ``options.loadbalancing`` as sent (``""`` if absent).
    """

    host: str
    port: int = 0
    tls_port: int = 0
    uris: tuple[str, ...] = ()
    app: str = ""
    availability_zone: str = ""
    endpoint_updated_at_ns: int = 0
    isolation_segment: str = ""
    private_instance_id: str = ""
    private_instance_index: str = ""
    protocol: str = ""
    route_service_url: str = ""
    server_cert_domain_san: str = ""
    stale_threshold_in_seconds: int = 0
    tags: tuple[tuple[str, str], ...] = ()
    load_balancing: str = ""

    @property
    def tls(self) -> bool:
        return self.tls_port != 0

    @property
    def endpoint_port(self) -> int:
        return self.tls_port or self.port


class RouterStart(msgspec.Struct, frozen=True, rename="camel"):
    """``router.start`` / the ``router.greet`` reply; field names as gorouter spells them."""

    id: str
    hosts: list[str]
    minimum_register_interval_in_seconds: int
    prune_threshold_in_seconds: int


_decoder = msgspec.json.Decoder(_RawRegistryMessage)
_encoder = msgspec.json.Encoder()


def decode_registration(data: bytes | bytearray | memoryview | str) -> RegistryMessage:
    """The message in ``data``, or ``MalformedRegistration`` saying what is wrong."""
    try:
        raw = _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise MalformedRegistration(str(exc)) from None
    host = raw.host
    if not host:
        raise MalformedRegistration("no host")
    port = raw.port or 0
    tls_port = raw.tls_port or 0
    if not (port or tls_port):
        raise MalformedRegistration("neither port nor tls_port is set")
    route_service_url = raw.route_service_url or ""
    if route_service_url and not route_service_url.startswith("https"):
        raise MalformedRegistration("route_service_url must be https")
    raw_tags = raw.tags
    tags = tuple(sorted((k, v or "") for k, v in raw_tags.items())) if raw_tags else ()
    options = raw.options
    return RegistryMessage(
        host=host,
        port=port,
        tls_port=tls_port,
        uris=tuple(uri for uri in raw.uris if uri) if raw.uris else (),
        app=raw.app or "",
        availability_zone=raw.availability_zone or "",
        endpoint_updated_at_ns=raw.endpoint_updated_at_ns or 0,
        isolation_segment=raw.isolation_segment or "",
        private_instance_id=raw.private_instance_id or "",
        private_instance_index=raw.private_instance_index or "",
        protocol=raw.protocol or "",
        route_service_url=route_service_url,
        server_cert_domain_san=raw.server_cert_domain_san or "",
        stale_threshold_in_seconds=raw.stale_threshold_in_seconds or 0,
        tags=tags,
        load_balancing=(options.loadbalancing or "") if options is not None else "",
    )


def encode_registration(message: RegistryMessage) -> bytes:
    """The JSON a gorouter client would send for ``message`` (zero values left out)."""
    body: dict[str, object] = {"host": message.host, "uris": list(message.uris)}
    for name in ("port", "tls_port", "app", "availability_zone", "endpoint_updated_at_ns",
                 "isolation_segment", "private_instance_id", "private_instance_index",
                 "protocol", "route_service_url", "server_cert_domain_san",
                 "stale_threshold_in_seconds"):
        value = getattr(message, name)
        if value:
            body[name] = value
    if message.tags:
        body["tags"] = dict(message.tags)
    if message.load_balancing:
        body["options"] = {"loadbalancing": message.load_balancing}
    return _encoder.encode(body)


def encode_router_start(start: RouterStart) -> bytes:
    return _encoder.encode(start)
