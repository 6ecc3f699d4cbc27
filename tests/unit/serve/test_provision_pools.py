"""Pools built from a config: ``{nats_url}`` filled from the gateway, worker labels."""

from __future__ import annotations

from pointsman.config import ProcessProviderConfig, loads
from pointsman.serve.provision import build_pools

CONFIG = """
[[listeners]]
protocol = "gateway"
name = "gw"
listen = "127.0.0.1:0"
nats_url = "nats://10.0.0.7:4222"

[[listeners.services]]
name = "term"
upstream = "term"

[upstreams.term]
kind = "provision"
instance = "i"

[upstreams.term.probe]
kind = "announce"

[upstreams.term.provider]
kind = "process"
command = ["svc", "{nats_url}", "{instance_id}"]
env = { BUS = "{nats_url}", PORT_TOO = "{port}" }
"""


def test_nats_url_comes_from_the_gateway_that_uses_the_upstream() -> None:
    pool = build_pools(loads(CONFIG))["term"]
    provider = pool.config.provider
    assert isinstance(provider, ProcessProviderConfig)
    assert provider.command == ["svc", "nats://10.0.0.7:4222", "{instance_id}"]
    assert provider.env == {"BUS": "nats://10.0.0.7:4222", "PORT_TOO": "{port}"}


def test_a_worker_labels_its_backends_and_a_leader_does_not() -> None:
    config = loads(CONFIG)
    assert "pointsman.worker" not in build_pools(config)["term"].labels
    labels = build_pools(config, worker="4242")["term"].labels
    assert labels == {"pointsman.managed": "1", "pointsman.instance": "i",
                      "pointsman.upstream": "term", "pointsman.worker": "4242"}
