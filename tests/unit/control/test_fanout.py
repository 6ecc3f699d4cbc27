"""A worker's registry rebuilt from the leader's NATS snapshot routes exactly alike;
the leader's plane forwards NATS changes to its workers from the first message."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
from prometheus_client import CollectorRegistry

from harness import NatsServer
from pointsman.config import Config, NatsConfig
from pointsman.control.channel import RouteChange
from pointsman.control.fanout import LeaderRoutePlane, nats_snapshot
from pointsman.control.logs import JsonLog
from pointsman.discovery.registry import Registry
from pointsman.wire.gorouter import decode_registration


def test_snapshot_recreates_nats_endpoints_with_their_details() -> None:
    leader = Registry()
    leader.register(decode_registration(
        b'{"host":"10.0.0.1","port":8080,"uris":["a.example.com","b.example.com/api"],'
        b'"app":"shop","private_instance_id":"i-1","tags":{"zone":"z1"},'
        b'"stale_threshold_in_seconds":30,"options":{"loadbalancing":"least-connection"}}'),
        now=1.0)
    leader.register(decode_registration(b'{"host":"10.0.0.2","tls_port":8443,'
                                        b'"uris":["a.example.com"]}'), now=1.0)
    leader.register(decode_registration(b'{"host":"10.0.0.3","port":9000,'
                                        b'"uris":["admin.example.com"]}'), now=1.0,
                    source="admin")
    worker = Registry()
    for body in nats_snapshot(leader, 1.0):
        worker.register(decode_registration(body), now=1.0)

    def view(registry: Registry) -> dict[str, list[dict[str, object]]]:
        return {key: sorted((row for row in rows if row["source"] == "nats"),
                            key=lambda row: str(row["address"]))
                for key, rows in registry.describe(1.0).items()
                if any(row["source"] == "nats" for row in rows)}

    assert view(worker) == view(leader)
    assert "admin.example.com" not in worker.describe(1.0)
    assert worker.balance_of("a.example.com") == leader.balance_of("a.example.com")


async def test_leader_plane_forwards_registrations_from_its_first_message(
        nats_server: NatsServer) -> None:
    # A gorouter client registers the moment it hears router.start, which the
    # plane publishes while it is still starting.
    client = await nats.connect(nats_server.url)
    body = json.dumps({"host": "127.0.0.1", "port": 9001, "uris": ["a.example.com"]}).encode()

    async def answer(_msg: Any) -> None:
        await client.publish("router.register", body)

    await client.subscribe("router.start", cb=answer)
    await client.flush()
    forwarded: list[RouteChange] = []
    plane = LeaderRoutePlane(Config(nats=NatsConfig(servers=[nats_server.url],
                                                    routes_bucket="")), JsonLog("off"),
                             CollectorRegistry())
    plane.forward = forwarded.append
    try:
        await plane.start()
        deadline = time.monotonic() + 2.0
        while not forwarded:
            assert time.monotonic() < deadline, "nothing forwarded"
            await asyncio.sleep(0.005)
        assert forwarded[0].op == "register" and forwarded[0].source == "nats"
        assert forwarded[0].message.uris == ("a.example.com",)
    finally:
        await plane.stop()
        await client.close()
