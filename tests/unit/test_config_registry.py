"""The [nats], [registry], [admin] and [[routes]] sections: defaults, checks, the example."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.config import ConfigError, load, loads
from pointsman.discovery.static import static_messages


def test_defaults_are_gorouters() -> None:
    config = loads("[nats]\n[admin]\n")
    assert config.nats is not None and config.nats.servers == ["nats://127.0.0.1:4222"]
    assert (config.registry.prune_threshold, config.registry.prune_interval,
            config.registry.minimum_register_interval) == (120, 30, 5)
    assert config.registry.suspend_pruning_if_nats_unavailable
    assert config.admin is not None and config.admin.listen == "127.0.0.1:9901"
    assert loads("").nats is None and loads("").admin is None


def test_bad_values_name_their_key_and_line() -> None:
    text = """
[registry]
prune_threshold = 0

[admin]
listen = "nowhere"

[[routes]]
uris = []
endpoints = ["127.0.0.1:0"]
"""
    with pytest.raises(ConfigError) as caught:
        loads(text, "f.toml")
    found = {(issue.path, issue.line) for issue in caught.value.issues}
    assert ("registry.prune_threshold", 3) in found
    assert ("admin.listen", 6) in found
    assert ("routes[0].uris", 9) in found
    assert ("routes[0].endpoints[0]", 10) in found


def test_unknown_registry_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"registry\.prune_treshold: unknown key"):
        loads("[registry]\nprune_treshold = 5\n")


def test_example_config_loads_and_yields_static_routes() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "gorouter.toml"
    config = load(example)
    messages = static_messages(config)
    assert [m.uris for m in messages] == [("status.example.com",)]
    assert messages[0].tags == {"component": "status"}


def test_sharding_and_empty_pool_settings() -> None:
    registry = loads("").registry
    assert (registry.routing_table_sharding_mode, registry.isolation_segments,
            registry.empty_pool_response_code_503, registry.empty_pool_timeout) == \
        ("all", [], False, 0.0)
    text = """
[registry]
routing_table_sharding_mode = "segments"
empty_pool_timeout = -1
"""
    with pytest.raises(ConfigError) as caught:
        loads(text, "f.toml")
    found = {(issue.path, issue.line) for issue in caught.value.issues}
    assert found == {("registry.isolation_segments", 2), ("registry.empty_pool_timeout", 4)}
    with pytest.raises(ConfigError, match=r"f.toml:3: registry.routing_table_sharding_mode"):
        loads('\n[registry]\nrouting_table_sharding_mode = "some"\n', "f.toml")
    with pytest.raises(ConfigError, match=r"registry\.empty_pool_timout: unknown key"):
        loads("[registry]\nempty_pool_timout = 5\n")


def test_routes_bucket_default_off_switch_and_bad_name() -> None:
    config = loads("[nats]\n")
    assert config.nats is not None and config.nats.routes_bucket == "pointsman_routes"
    off = loads('[nats]\nroutes_bucket = ""\n')
    assert off.nats is not None and off.nats.routes_bucket == ""
    with pytest.raises(ConfigError) as caught:
        loads('[nats]\nroutes_bucket = "a.b"\n', "f.toml")
    assert [issue.path for issue in caught.value.issues] == ["nats.routes_bucket"]


def test_process_user_and_group_must_exist() -> None:
    config = loads('[process]\nuser = "nobody"\n')
    assert config.process.user == "nobody" and config.process.group is None
    with pytest.raises(ConfigError) as caught:
        loads('[process]\ngroup = "nogroup"\n', "f.toml")
    assert [issue.path for issue in caught.value.issues] == ["process.group"]
    with pytest.raises(ConfigError) as caught:
        loads('[process]\nuser = "no-such-user-here"\n', "f.toml")
    assert [(issue.path, issue.line) for issue in caught.value.issues] == [("process.user", 2)]


def test_admin_status_credentials_come_in_pairs() -> None:
    config = loads('[admin]\nstatus_user = "router-status"\nstatus_password = "pw"\n')
    assert config.admin is not None and config.admin.status_user == "router-status"
    for text in ('[admin]\nstatus_user = "a"\n', '[admin]\nstatus_password = "b"\n'):
        with pytest.raises(ConfigError) as caught:
            loads(text, "f.toml")
        assert [issue.path for issue in caught.value.issues] == ["admin"]
    with pytest.raises(ConfigError) as caught:
        loads('[admin]\nstatus_user = "a:b"\nstatus_password = "c"\n', "f.toml")
    assert [issue.path for issue in caught.value.issues] == ["admin.status_user"]
