"""LocalTransport keeps NATS semantics: wildcards, queue groups, no responders."""

from __future__ import annotations

import asyncio

import pytest

from pointsman.service import LocalTransport, Msg, NoResponders, TransportTimeout
from pointsman.service.transport import subject_matches


def test_subject_matching() -> None:
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c")
    assert not subject_matches("a.>", "a")
    assert subject_matches("a.b", "a.b") and not subject_matches("a.b", "a.c")


async def test_queue_groups_share_and_plain_subscribers_all_hear() -> None:
    bus = LocalTransport()
    got: dict[str, list[bytes]] = {"q1": [], "q2": [], "plain": []}

    def sink(name: str):  # type: ignore[no-untyped-def]
        async def cb(msg: Msg) -> None:
            got[name].append(msg.data)
        return cb

    await bus.subscribe("work", sink("q1"), queue="g")
    await bus.subscribe("work", sink("q2"), queue="g")
    await bus.subscribe("work", sink("plain"))
    for i in range(4):
        bus.publish("work", bytes([i]))
    await asyncio.sleep(0.01)
    assert len(got["plain"]) == 4 and len(got["q1"]) + len(got["q2"]) == 4
    assert got["q1"] and got["q2"]
    await bus.close()


async def test_request_reply_and_failures() -> None:
    bus = LocalTransport()

    async def answer(msg: Msg) -> None:
        bus.publish(msg.reply, msg.data.upper())

    async def silent(msg: Msg) -> None:
        return None

    await bus.subscribe("upper", answer)
    await bus.subscribe("silent", silent)
    assert await bus.request("upper", b"hi", timeout=1) == b"HI"
    with pytest.raises(NoResponders):
        await bus.request("nobody", b"", timeout=1)
    with pytest.raises(TransportTimeout):
        await bus.request("silent", b"", timeout=0.05)
    await bus.close()
