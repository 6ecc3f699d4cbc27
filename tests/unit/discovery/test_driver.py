"""The registry on a real event loop: coalesced publishing, prune timer, suspend/resume."""

from __future__ import annotations

import asyncio
import random
import time

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


async def test_a_kept_empty_pool_is_deleted_by_its_own_timer() -> None:
    registry = Registry(keep_empty_pools=0.1)
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30,
                            publish_delay=0.005)
    driver.start()
    driver.register(msg("a.com"))
    driver.unregister(msg("a.com"))
    await asyncio.sleep(0.03)
    assert registry.table.lookup_empty("a.com", "/") is not None
    await asyncio.sleep(0.15)
    assert registry.table.get("a.com") is None and len(registry) == 0
    driver.stop()


async def test_stamped_registrations_feed_the_latency_histogram() -> None:
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30)
    now_ns = time.time_ns()
    driver.register(msg("a.com", endpoint_updated_at_ns=now_ns - 2_000_000_000))
    driver.register(msg("a.com"))  # no stamp: not observed
    driver.register(msg("a.com", endpoint_updated_at_ns=now_ns), "admin")  # NATS only
    assert driver.latency.count == 1
    assert 2.0 <= driver.latency.total < 3.0
    assert dict(driver.latency.buckets())["2.5"] == 1.0
    driver.stop()


async def test_a_registry_without_tables_still_expires_empty_pools_and_publishes_nothing(
        ) -> None:
    registry = Registry(keep_empty_pools=0.05, publishes=False)
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30,
                            publish_delay=0.005)
    published: list[int] = []
    driver.on_publish = lambda: published.append(len(registry.table))
    driver.start()
    driver.register(msg("a.com"))
    driver.unregister(msg("a.com"))
    assert len(registry) == 1  # kept, empty
    await asyncio.sleep(0.15)
    assert len(registry) == 0 and registry.empty_pools_expired == 1
    assert driver.publishes == 0 and published == [] and len(registry.table) == 0
    driver.stop()


async def test_on_publish_is_told_after_each_snapshot() -> None:
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30,
                            publish_delay=0.005)
    published: list[int] = []
    driver.on_publish = lambda: published.append(len(registry.table))
    driver.start()
    for port in range(1, 11):
        driver.register(msg(f"h{port}.com", port))
    await asyncio.sleep(0.05)
    assert published == [10]
    driver.stop()
