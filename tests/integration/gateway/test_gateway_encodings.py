"""The same service behind JSON, MessagePack and Protocol Buffers gateways."""

from __future__ import annotations

import msgspec
import pytest
from gateway_harness import Cluster, routes_known

from pointsman.service import Context, Router


class Point(msgspec.Struct):
    x: int
    y: int


def echo_router() -> Router:
    router = Router()

    @router.public_bind("/echo")
    async def echo(ctx: Context) -> object:
        return ctx.data

    @router.public_bind("/point")
    async def point(ctx: Context) -> object:
        p = ctx.unmarshal(Point)
        return {"sum": p.x + p.y}

    return router


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_structured_encodings(cluster: Cluster, encoding: str) -> None:
    await cluster.service("echo", echo_router(), encoding=encoding)
    gw = await cluster.gateway(encoding=encoding)
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    payload = {"list": [1, 2.5, "three"], "nested": {"ok": True, "none": None}}
    assert client.value(await client.ask("/echo", payload)) == payload
    assert client.value(await client.ask("/point", {"x": 2, "y": 3})) == {"sum": 5}
    out = await client.ask("/point", {"x": "two"})
    assert out.error is not None and out.error[0] == "invalid_data"


async def test_protobuf_envelope_carries_opaque_bytes(cluster: Cluster) -> None:
    await cluster.service("echo", echo_router(), encoding="protobuf")
    gw = await cluster.gateway(encoding="protobuf")
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    blob = bytes(range(256))
    out = await client.ask("/echo", blob)
    assert out.error is None and out.data == blob
    # Inside the bytes, anything else is carried as JSON by the SDK.
    out = await client.ask("/point", msgspec.json.encode({"x": 1, "y": 1}))
    assert msgspec.json.decode(out.data) == {"sum": 2}
    await client.ws.send(b"\x0a\xff\xff")  # a length that runs past the end
    bad = await client.recv()
    assert bad.error is not None and bad.error[0] == "bad_envelope"


async def test_encoding_mismatch_is_an_error_envelope(cluster: Cluster) -> None:
    await cluster.service("echo", echo_router(), encoding="msgpack")
    gw = await cluster.gateway(encoding="json")
    await routes_known(gw, 1)
    client = await cluster.client(gw)
    out = await client.ask("/echo", 1)
    assert out.error is not None and out.error[0] == "encoding_mismatch"
