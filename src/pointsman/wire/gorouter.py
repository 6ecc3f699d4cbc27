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
    "Options",
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


class Options(msgspec.Struct, frozen=True):
    """``options`` of a registration: only ``loadbalancing`` is defined."""

    loadbalancing: str = ""


class RegistryMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One registration, with gorouter's JSON names and Go's zero values as defaults.

    ``tls_port`` set means the endpoint is ``host:tls_port`` over TLS;
    otherwise it is ``host:port`` in the clear (route/pool.go ``NewEndpoint``).
    """

    host: str = ""
    port: Port = 0
    tls_port: Port = 0
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
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    options: Options | None = None

    def __post_init__(self) -> None:
        """What gorouter drops, plus what no endpoint can be made from."""
        if not self.host:
            raise MalformedRegistration("no host")
        if not (self.port or self.tls_port):
            raise MalformedRegistration("neither port nor tls_port is set")
        if self.route_service_url and not self.route_service_url.startswith("https"):
            raise MalformedRegistration("route_service_url must be https")

    @property
    def tls(self) -> bool:
        return self.tls_port != 0

    @property
    def endpoint_port(self) -> int:
        return self.tls_port or self.port

    @property
    def load_balancing(self) -> str:
        """``options.loadbalancing`` as sent, ``""`` if absent."""
        return self.options.loadbalancing if self.options is not None else ""

    @property
    def tag_items(self) -> tuple[tuple[str, str], ...]:
        """The tags as sorted pairs, hashable for the route table."""
        tags = self.tags
        if len(tags) > 1:
            return tuple(sorted(tags.items()))
        return tuple(tags.items())


class _Nullable(msgspec.Struct):
    """The payload as sent when it carries ``null``s: every field nullable."""

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
    options: dict[str, str | None] | None = None


class RouterStart(msgspec.Struct, frozen=True, rename="camel"):
    """``router.start`` / the ``router.greet`` reply; field names as gorouter spells them."""

    id: str
    hosts: list[str]
    minimum_register_interval_in_seconds: int
    prune_threshold_in_seconds: int


_decoder = msgspec.json.Decoder(RegistryMessage)
_nullable_decoder = msgspec.json.Decoder(_Nullable)
_encoder = msgspec.json.Encoder()


def decode_registration(data: bytes | bytearray | memoryview | str) -> RegistryMessage:
    """The message in ``data``, or ``MalformedRegistration`` saying what is wrong.

    The common case decodes straight into ``RegistryMessage``; a payload with
    ``null`` in it takes a slower path that reads each ``null`` as Go would.
    """
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        first = exc
    raw = bytes(data) if not isinstance(data, str) else data.encode()
    if b"null" not in raw:
        raise MalformedRegistration(str(first)) from None
    try:
        nullable = _nullable_decoder.decode(raw)
        fields = {name: value for name in nullable.__struct_fields__
                  if (value := getattr(nullable, name)) is not None}
        if nullable.uris is not None:
            fields["uris"] = [uri for uri in nullable.uris if uri is not None]
        if nullable.tags is not None:
            fields["tags"] = {k: v or "" for k, v in nullable.tags.items()}
        if nullable.options is not None:
            fields["options"] = {"loadbalancing": nullable.options.get("loadbalancing") or ""}
        return msgspec.convert(fields, RegistryMessage)
    except msgspec.DecodeError as exc:
        raise MalformedRegistration(str(exc)) from None


def encode_registration(message: RegistryMessage) -> bytes:
    """The JSON a gorouter client would send for ``message``."""
    return _encoder.encode(message)


def encode_router_start(start: RouterStart) -> bytes:
    return _encoder.encode(start)
