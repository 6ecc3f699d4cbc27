"""Bus payloads: msgpack maps with the documented keys."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pointsman.wire import gateway_messages as gm


def test_payloads_are_maps_with_documented_keys() -> None:
    deliver = gm.Deliver(kind="open", gateway="g", socket="g-1", encoding="json", path="/a", id=3,
                         data=b"\x01")
    raw = msgspec.msgpack.decode(gm.encode(deliver))
    assert raw == {"kind": "open", "gateway": "g", "socket": "g-1", "encoding": "json",
                   "path": "/a", "id": 3, "data": b"\x01"}
    announce = gm.ServiceAnnounce(name="chat", instance="i", routes=["/x"], interval=2.0,
                                  encoding="json")
    assert gm.decode(gm.encode(announce), gm.ServiceAnnounce) == announce


def test_a_deliver_reply_carries_an_error_or_output() -> None:
    out = gm.ToGateway(socket="s", instance="i", frame=b"{}")
    reply = gm.decode(gm.encode(gm.DeliverReply(out=out)), gm.DeliverReply)
    assert reply.out == out and reply.error is None
    assert msgspec.msgpack.decode(gm.encode(gm.DeliverReply(error=gm.CallError("c", "m")))) == {
        "error": {"code": "c", "message": "m"}}


def test_decode_rejects_other_shapes() -> None:
    with pytest.raises(msgspec.ValidationError):
        gm.decode(gm.encode(gm.Call(path="/x")), gm.Deliver)


def test_subjects() -> None:
    assert gm.instance_subject("abc") == "pointsman.gw.instance.abc"
    assert gm.gateway_subject("g") == "pointsman.gw.gateway.g.out"
    assert gm.gateway_ack_prefix("g") == "pointsman.gw.gateway.g.ack."
    assert gm.gateway_inbox("g") == "pointsman.gw.gateway.g.>"
    assert gm.call_subject("chat") == "pointsman.gw.call.chat"
    assert gm.broadcast_subject("chat") == "pointsman.gw.broadcast.chat"


def test_wire_is_sans_io() -> None:
    import pointsman.wire.envelope as envelope

    for module in (envelope, gm):
        source = Path(module.__file__ or "").read_text()
        for banned in ("import asyncio", "import socket", "import time"):
            assert banned not in source, (module.__name__, banned)
