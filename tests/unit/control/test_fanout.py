"""A worker's registry rebuilt from the leader's NATS snapshot routes exactly alike."""

from __future__ import annotations

from pointsman.control.fanout import nats_snapshot
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
