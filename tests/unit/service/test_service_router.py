"""Router, Context and Service over LocalTransport, without a gateway."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pointsman.service import Context, InvalidData, LocalTransport, Router, Service, ServiceError


@dataclass
class Order:
    item: str
    qty: int


def make_router(trace: list[str]) -> Router:
    router = Router()

    @router.use
    async def first(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        trace.append(f"mw:{ctx.path}")
        await call_next()

    @router.public_bind("/orders/:id")
    def order(ctx: Context) -> dict[str, object]:  # a plain function works too
        o = ctx.unmarshal(Order)
        return {"id": ctx.params["id"], "total": o.qty}

    @router.bind("/internal/ping")
    async def ping(ctx: Context) -> str:
        return "pong"

    return router


def test_public_and_private_patterns() -> None:
    router = make_router([])
    assert router.public_patterns() == ["/orders/:id"]
    with pytest.raises(ValueError, match="already bound"):
        router.bind("/orders/:id", lambda ctx: None)


async def test_in_process_calls_reach_private_routes_and_validate() -> None:
    trace: list[str] = []
    service = Service("orders", LocalTransport(), make_router(trace))
    assert await service.call("/internal/ping") == "pong"
    assert await service.call("/orders/9", {"item": "tea", "qty": 2}) == {"id": "9", "total": 2}
    with pytest.raises(InvalidData):
        await service.call("/orders/9", {"item": "tea"})
    with pytest.raises(ServiceError) as info:
        await service.call("/missing")
    assert info.value.code == "not_found"
    assert trace[:2] == ["mw:/internal/ping", "mw:/orders/9"]


async def test_calls_between_services_over_the_transport() -> None:
    bus = LocalTransport()
    orders = Service("orders", bus, make_router([]), interval=60)
    client = Service("client", bus, Router(), interval=60)
    await orders.start()
    await client.start()
    try:
        assert await client.call("/internal/ping", service="orders") == "pong"
        assert await client.call("/orders/1", {"item": "x", "qty": 5},
                                 service="orders") == {"id": "1", "total": 5}
        with pytest.raises(ServiceError) as info:
            await client.call("/orders/1", {"qty": "no"}, service="orders")
        assert info.value.code == "invalid_data"
    finally:
        await client.stop()
        await orders.stop()
