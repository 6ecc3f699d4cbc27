"""An instance as the bus sees it: acks, replies riding on acks, order, close, re-announce."""

from __future__ import annotations

import asyncio

from pointsman.service import Context, LocalTransport, Msg, Router, Service
from pointsman.wire import gateway_messages as gm


async def collect(bus: LocalTransport, subject: str) -> list[Msg]:
    seen: list[Msg] = []

    async def cb(msg: Msg) -> None:
        seen.append(msg)

    await bus.subscribe(subject, cb)
    return seen


def deliver(bus: LocalTransport, seq: int, path: str, kind: gm.DeliverKind = "message") -> None:
    payload = gm.Deliver(kind=kind, gateway="g", socket="g-1", encoding="json", path=path,
                         id=seq, data=b"null")
    bus.publish(gm.instance_subject("inst"), gm.encode(payload),
                f"{gm.gateway_ack_prefix('g')}{seq}")


async def test_quick_reply_rides_on_the_ack_and_later_output_follows_in_order() -> None:
    bus = LocalTransport()
    router = Router()
    closed = asyncio.Event()
    router.use_close(lambda ctx: closed.set())

    @router.public_bind("/quick")
    async def quick(ctx: Context) -> str:
        return "fast"

    @router.public_bind("/slow")
    async def slow(ctx: Context) -> None:
        ctx.send("first")
        await asyncio.sleep(0.01)
        ctx.send("second")

    service = Service("svc", bus, router, instance="inst", interval=60)
    inbox = await collect(bus, gm.gateway_inbox("g"))
    await service.start()
    deliver(bus, 1, "/quick", kind="open")  # a new socket: plain ack before the open hooks
    deliver(bus, 2, "/quick")
    deliver(bus, 3, "/slow")
    await asyncio.sleep(0.1)
    acks: list[str] = []
    frames: list[bytes] = []
    for msg in inbox:  # what the gateway's one ordered subscription sees
        if msg.subject.startswith(gm.gateway_ack_prefix("g")):
            acks.append(msg.subject.rsplit(".", 1)[1])
            if msg.data:
                out = gm.decode(msg.data, gm.DeliverReply).out
                assert out is not None
                frames.append(out.frame)
        else:
            frames.append(gm.decode(msg.data, gm.ToGateway).frame)
    assert acks == ["1", "2", "3"]
    assert frames == [b'{"id":1,"data":"fast"}', b'{"id":2,"data":"fast"}', b'{"data":"first"}',
                      b'{"data":"second"}']
    assert inbox[0].data == b""  # a new socket is acked before its open hooks run
    assert len(inbox) < 3 + len(frames)  # some output rode on acks
    assert service.connections == 1
    bus.publish(gm.instance_subject("inst"), gm.encode(gm.Deliver(
        kind="close", gateway="g", socket="g-1", encoding="json", code=1000)))
    await asyncio.wait_for(closed.wait(), 1)
    assert service.connections == 0
    await service.stop()


async def test_a_gateway_that_does_not_know_the_instance_gets_an_announcement() -> None:
    bus = LocalTransport()
    service = Service("svc", bus, Router(), instance="inst", interval=60, gateway_names=["a"])
    announcements = await collect(bus, gm.SERVICE_ANNOUNCE)
    await service.start()
    await asyncio.sleep(0.01)
    assert len(announcements) == 1
    for name, known in (("b", []), ("a", ["inst"]), ("a", [])):
        bus.publish(gm.GATEWAY_ANNOUNCE, gm.encode(gm.GatewayAnnounce(
            name=name, gateway="g", interval=1.0, instances=known)))
    await asyncio.sleep(0.01)
    assert len(announcements) == 2  # only gateway "a" without the instance asked
    await service.stop()
    await asyncio.sleep(0.01)
    assert gm.decode(announcements[-1].data, gm.ServiceAnnounce).stopping
