"""The registry on a real event loop: coalesced publishing, prune timer, suspend/resume."""

from __future__ import annotations

import asyncio
import random

from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.nats_registry import RECONNECT_BASE, RECONNECT_MAX, reconnect_delay
from pointsman.discovery.registry import Registry
from pointsman.wire.gorouter import RegistryMessage


def msg(uri: str, port: int = 80, **fields: object) -> RegistryMessage:
    return RegistryMessage(host="127.0.0.1", port=port, uris=(uri,), **fields)  # type: ignore[arg-type]


async def test_a_burst_is_published_once_shortly_after() -> None:
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30,
                            publish_delay=0.01)
    driver.start()
    for port in range(1, 1001):
        driver.register(msg("a.com", port))
    assert registry.table.lookup("a.com", "/") is None
    await asyncio.sleep(0.05)
    pool = registry.table.lookup("a.com", "/")
    assert pool is not None and len(pool.endpoints) == 1000
    assert driver.publishes == 1
    driver.register(msg("a.com", 1))  # heartbeat: nothing to publish
    await asyncio.sleep(0.03)
    assert driver.publishes == 1
    driver.stop()


async def test_prune_timer_and_suspend_resume() -> None:
    loop = asyncio.get_running_loop()
    registry = Registry()
    driver = RegistryDriver(registry, loop, prune_interval=0.05)
    driver.start()
    driver.register(msg("a.com", stale_threshold_in_seconds=1))
    driver.publish_now()
    driver.suspend()
    registry.registrations_of("a.com")[0].updated -= 10  # long stale
    await asyncio.sleep(0.15)
    assert registry.table.lookup("a.com", "/") is not None  # suspended: kept
    driver.resume_after(0.05)
    await asyncio.sleep(0.15)
    assert registry.table.lookup("a.com", "/") is not None  # resumed fresh
    assert not registry.pruning_suspended
    registry.registrations_of("a.com")[0].updated -= 10
    await asyncio.sleep(0.15)
    assert registry.table.lookup("a.com", "/") is None
    driver.stop()


async def test_suspend_cancels_a_pending_resume() -> None:
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30)
    driver.suspend()
    driver.resume_after(0.02)
    driver.suspend()
    await asyncio.sleep(0.06)
    assert registry.pruning_suspended
    driver.stop()


def test_reconnect_delay_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    first = [reconnect_delay(0, rng) for _ in range(50)]
    assert all(RECONNECT_BASE / 2 <= d <= RECONNECT_BASE for d in first)
    late = [reconnect_delay(40, rng) for _ in range(50)]
    assert all(RECONNECT_MAX / 2 <= d <= RECONNECT_MAX for d in late)
    assert len(set(late)) > 40
