"""What gateways and services say to each other over the bus (NATS or in-process).

Every payload is a MessagePack map keyed by the field names below; binary
fields are msgpack ``bin``. Subjects (``<x>`` is an id made of ``[a-z0-9]``):

======================================  ================  ===========================
subject                                 payload           who publishes
======================================  ================  ===========================
``pointsman.gw.announce.service``       ServiceAnnounce   services, at start and every
                                                          ``interval`` s (the heartbeat)
``pointsman.gw.announce.gateway``       GatewayAnnounce   gateways, at start and every
                                                          ``interval`` s
``pointsman.gw.instance.<instance>``    Deliver           a gateway; ``message`` and ``open``
                                                          are requests acked with an empty
                                                          reply, ``close`` is published
``pointsman.gw.gateway.<gateway>.out``  ToGateway         a service instance, to reach a
                                                          socket held by that gateway
``pointsman.gw.call.<service>``         Call              any service: request one instance
                                                          (queue group ``<service>``); the
                                                          reply is a CallReply
``pointsman.gw.broadcast.<service>``    Call              any service: every instance
======================================  ================  ===========================

Rules a service in another language must follow:

* Announce on start and every ``interval`` seconds; a gateway drops an
  instance whose announcement is late by more than ``interval`` (one missed
  heartbeat, with half an interval of grace), and on any failed delivery.
* When a GatewayAnnounce arrives whose ``name`` is allowed by your
  ``gateway_names`` and whose ``instances`` lacks your instance id, announce
  again at once: that is how a restarted gateway learns about you.
* Ack every ``open``/``message`` Deliver on its reply subject as soon as it
  is received, before handling it. The ack is empty, or a DeliverReply: its
  ``error`` becomes an error envelope for the client; its ``out`` is a
  ToGateway carried by the ack (an instance may hold the ack back until the
  end of the current loop iteration so that a quick reply travels with it:
  one bus message instead of two). Gateways read acks and ToGateway messages
  in one ordered subscription, so frames never overtake each other.
* Envelopes sent in ``ToGateway.frame`` are complete client frames in the
  gateway's encoding; the gateway writes them unchanged.
* Forget a gateway's sockets when its announcements stop for
  ``2.5 * interval``: it has gone away without closing them.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

__all__ = [
    "BROADCAST_PREFIX",
    "CALL_PREFIX",
    "GATEWAY_ANNOUNCE",
    "SERVICE_ANNOUNCE",
    "Call",
    "CallError",
    "CallReply",
    "Deliver",
    "DeliverReply",
    "GatewayAnnounce",
    "ServiceAnnounce",
    "ToGateway",
    "broadcast_subject",
    "call_subject",
    "decode",
    "encode",
    "gateway_ack_prefix",
    "gateway_inbox",
    "gateway_subject",
    "instance_subject",
]

SERVICE_ANNOUNCE: Final = "pointsman.gw.announce.service"
GATEWAY_ANNOUNCE: Final = "pointsman.gw.announce.gateway"
INSTANCE_PREFIX: Final = "pointsman.gw.instance."
GATEWAY_PREFIX: Final = "pointsman.gw.gateway."
CALL_PREFIX: Final = "pointsman.gw.call."
BROADCAST_PREFIX: Final = "pointsman.gw.broadcast."

#: An instance is dropped when its heartbeat is this many intervals late.
HEARTBEAT_TOLERANCE: Final = 2.5


class ServiceAnnounce(msgspec.Struct, frozen=True, omit_defaults=True):
    """One instance says: I exist, these public patterns are mine, heartbeat every ``interval``.

    ``stopping`` is sent once by an instance shutting down cleanly so that
    gateways drop it at once instead of waiting for the missed heartbeat.
    """

    name: str
    instance: str
    routes: list[str]
    interval: float
    encoding: str
    gateway_names: list[str] = msgspec.field(default_factory=list)
    stopping: bool = False


class GatewayAnnounce(msgspec.Struct, frozen=True, omit_defaults=True):
    """A gateway says which instances it knows; services missing from it announce again."""

    name: str
    gateway: str
    interval: float
    instances: list[str] = msgspec.field(default_factory=list)
    stopping: bool = False


DeliverKind = Literal["message", "open", "close"]


class Deliver(msgspec.Struct, frozen=True, omit_defaults=True):
    """Gateway to instance: one event of one client socket.

    ``open`` carries the socket's first message for this instance (so the open
    hooks run before it is handled); ``close`` carries the WebSocket close code.
    ``data`` is the envelope's data field, still in ``encoding``.
    """

    kind: DeliverKind
    gateway: str
    socket: str
    encoding: str
    path: str = ""
    id: str | int | None = None
    data: bytes = b""
    code: int = 0
    reason: str = ""


class ToGateway(msgspec.Struct, frozen=True, omit_defaults=True):
    """Instance to gateway: a frame for one socket, and/or a request to close it.

    ``awaiting`` is set when the frame asks the client something: the client's
    answer carrying that id goes back to ``instance`` whatever its path.
    """

    socket: str
    instance: str
    frame: bytes = b""
    binary: bool = False
    awaiting: str | int | None = None
    close: int = 0
    reason: str = ""


class CallError(msgspec.Struct, frozen=True):
    """A failure reported back in place of a value (Deliver acks and CallReply)."""

    code: str
    message: str


class DeliverReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """A non-empty ack: the delivery was refused (``error``), or here is its first output."""

    error: CallError | None = None
    out: ToGateway | None = None


class Call(msgspec.Struct, frozen=True, omit_defaults=True):
    """Service to service: run a route (public or private) with this data (msgpack value)."""

    path: str
    data: bytes = b""


class CallReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a Call answered: ``data`` (msgpack) or ``error``."""

    data: bytes = b""
    error: CallError | None = None


def instance_subject(instance: str) -> str:
    return INSTANCE_PREFIX + instance


def gateway_subject(gateway: str) -> str:
    """Where instances publish ToGateway for sockets of ``gateway``."""
    return f"{GATEWAY_PREFIX}{gateway}.out"


def gateway_ack_prefix(gateway: str) -> str:
    """Reply subjects of a gateway's deliveries are this plus a sequence number."""
    return f"{GATEWAY_PREFIX}{gateway}.ack."


def gateway_inbox(gateway: str) -> str:
    """The one subscription a gateway reads both acks and ToGateway from, in order."""
    return f"{GATEWAY_PREFIX}{gateway}.>"


def call_subject(service: str) -> str:
    return CALL_PREFIX + service


def broadcast_subject(service: str) -> str:
    return BROADCAST_PREFIX + service


_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """MessagePack map of any struct above."""
    return _encoder.encode(message)


_decoders: dict[type, Any] = {}


def decode(payload: bytes, kind: type[T]) -> T:
    """Decode one payload; ``msgspec.DecodeError``/``ValidationError`` when it is not one."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    result: T = decoder.decode(payload)
    return result
