"""A worker's route count reports: the first at once, a burst folded into one more."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pointsman.control.channel import Channel
from pointsman.control.worker import RoutesReporter


async def test_a_burst_of_publishes_costs_two_reports_and_ends_on_the_last_count() -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    received: list[Any] = []
    sender = Channel(left, loop, lambda message: None, lambda: None)
    receiver = Channel(right, loop, received.append, lambda: None)
    sender.start()
    receiver.start()
    count = [0]
    reporter = RoutesReporter(loop, sender, lambda: count[0], interval=0.05)
    started = loop.time()
    for _ in range(100):  # a flood: a publish every millisecond
        count[0] += 10
        reporter.published()
        await asyncio.sleep(0.001)
    flood = loop.time() - started
    await asyncio.sleep(0.2)
    published = [message["published"] for message in received]
    assert published[0] == 10  # the first publish after a quiet spell: at once
    assert published[-1] == 1000  # the last one is never lost
    assert len(published) <= flood / 0.05 + 2, (flood, published)  # one per interval
    assert len(published) < 50
    reporter.published()  # nothing changed since: nothing sent
    await asyncio.sleep(0.1)
    assert len(received) == len(published)
    reporter.stop()
    sender.close()
    receiver.close()
