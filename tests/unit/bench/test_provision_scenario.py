"""The per-connection benchmark's pointsman configs are valid, and its percentile is right."""

from __future__ import annotations

import pytest
from bench.peerconf import Addr
from bench.scenarios.provision import (
    SCENARIOS,
    _percentile,
    pointsman_provision_toml,
    provider_toml,
)

from pointsman.config import DockerProviderConfig, ProcessProviderConfig, ProvisionUpstream, loads


@pytest.mark.parametrize("provider", ["process", "docker"])
def test_generated_config_loads(provider: str) -> None:
    text = pointsman_provision_toml("warm2", Addr("127.0.0.1", 7000), 2,
                                    provider_toml(provider, "/tmp/x/podman.sock"))
    config = loads(text)
    upstream = config.upstreams["fresh"]
    assert isinstance(upstream, ProvisionUpstream) and upstream.warm == 2
    kind = ProcessProviderConfig if provider == "process" else DockerProviderConfig
    assert isinstance(upstream.provider, kind)
    assert config.listeners[0].upstream == "fresh"
    assert config.logging.access == "off"


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 50) == 50.0
    assert _percentile(values, 99) == 99.0
    assert _percentile([3.0], 99) == 3.0


def test_four_scenarios_one_per_provider_and_mode() -> None:
    assert sorted(s.name for s in SCENARIOS) == [
        "provision_latency_docker", "provision_latency_process",
        "provision_rate_docker", "provision_rate_process"]
    assert [peer.name for peer in SCENARIOS[0].peers()] == ["warm0", "warm1", "warm2", "warm4"]
