"""``[upstreams.NAME]`` as a union of static pools and provision pools."""

from __future__ import annotations

import pytest

from pointsman.config import (
    ConfigError,
    DockerProviderConfig,
    ProcessProviderConfig,
    ProvisionUpstream,
    Upstream,
    loads,
    parse_size,
)

DOCKER = """
[upstreams.terminal]
kind = "provision"
warm = 2
max_live = 8
queue_timeout = 3.5

[upstreams.terminal.provider]
kind = "docker"
url = "unix:///run/podman/podman.sock"
image = "localhost/terminal:latest"
command = ["/app/serve", "--port", "9000"]
port = 9000
memory = "256m"
cpus = 0.5
pids_limit = 128
env = { MODE = "demo" }

[upstreams.terminal.probe]
kind = "http"
path = "/health"
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(text, "p.toml")
    return [str(issue) for issue in caught.value.issues]


def test_files_without_kind_stay_static() -> None:
    config = loads('[upstreams.web]\nendpoints = ["127.0.0.1:8080"]\n')
    assert config.upstreams["web"] == Upstream(endpoints=["127.0.0.1:8080"])


def test_static_kind_may_be_spelled_out() -> None:
    config = loads('[upstreams.web]\nkind = "static"\nendpoints = ["127.0.0.1:8080"]\n')
    assert isinstance(config.upstreams["web"], Upstream)


def test_docker_provision_upstream() -> None:
    upstream = loads(DOCKER).upstreams["terminal"]
    assert isinstance(upstream, ProvisionUpstream)
    assert (upstream.warm, upstream.max_live, upstream.queue_timeout) == (2, 8, 3.5)
    assert isinstance(upstream.provider, DockerProviderConfig)
    assert upstream.provider.memory == "256m" and upstream.provider.port == 9000
    assert upstream.probe.kind == "http" and upstream.probe.path == "/health"


def test_process_provision_upstream_with_defaults() -> None:
    upstream = loads('[upstreams.p]\nkind = "provision"\n'
                     'provider = { kind = "process", command = ["app", "{port}"] }\n'
                     ).upstreams["p"]
    assert isinstance(upstream, ProvisionUpstream)
    assert isinstance(upstream.provider, ProcessProviderConfig)
    assert (upstream.warm, upstream.max_live, upstream.probe.kind) == (1, 16, "tcp")


def test_errors_name_the_key_and_line() -> None:
    found = issues('[upstreams.x]\nkind = "provision"\nwarm = 20\nmax_live = 4\n'
                   '[upstreams.x.provider]\nkind = "docker"\nimage = "i"\nmemory = "lots"\n'
                   'mounts = ["nocolon"]\n')
    assert "p.toml:3: upstreams.x.warm: warm (20) exceeds max_live (4)" in found
    assert any(line.startswith("p.toml:5: upstreams.x.provider.port:") for line in found)
    assert "p.toml:8: upstreams.x.provider.memory: expected a size like 256m, got 'lots'" \
        in found
    assert any("upstreams.x.provider.mounts[0]" in line for line in found)


def test_unknown_kinds_and_keys() -> None:
    assert issues('[upstreams.x]\nkind = "magic"\n') == [
        "p.toml:2: upstreams.x.kind: unknown kind 'magic'"]
    found = issues('[upstreams.x]\nkind = "provision"\n'
                   'provider = { kind = "process", command = ["a"], bogus = 1 }\n')
    assert found == ["p.toml:3: upstreams.x.provider.bogus: unknown key"]
    found = issues('[upstreams.x]\nkind = "provision"\n'
                   'provider = { kind = "process", command = ["a"] }\n')
    assert found == ["p.toml:3: upstreams.x.provider.command: "
                     "expected '{port}' in command or env, to pass the port"]


def test_listener_may_name_a_provision_upstream() -> None:
    config = loads(DOCKER + '\n[[listeners]]\nprotocol = "tcp"\nname = "ws"\n'
                   'listen = "127.0.0.1:0"\nupstream = "terminal"\n')
    assert config.listeners[0].upstream == "terminal"


@pytest.mark.parametrize(("value", "expected"), [
    (1024, 1024), ("512k", 512 << 10), ("256m", 256 << 20), ("1g", 1 << 30),
    ("64MB", 64 << 20), ("100", 100),
])
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [0, -1, "", "12x", "m", "0m"])
def test_parse_size_rejects(value: int | str) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_the_per_connection_example_loads() -> None:
    from pathlib import Path

    from pointsman.config import load
    from pointsman.serve.provision import build_pools

    path = Path(__file__).resolve().parents[2] / "examples" / "per-connection" / "pointsman.toml"
    config = load(path)
    pools = build_pools(config)
    assert sorted(pools) == ["terminal", "terminal-processes"]
    assert [type(listener).__name__ for listener in config.listeners] == ["HttpListener",
                                                                          "TcpListener"]
    process = pools["terminal-processes"].config.provider
    assert isinstance(process, ProcessProviderConfig)
    assert process.cwd == str(path.parent)
    assert pools["terminal"].instance == pools["terminal-processes"].instance


GATEWAY_SERVICE = """
[[listeners]]
protocol = "gateway"
name = "gw"
listen = "127.0.0.1:0"

[[listeners.services]]
name = "term"
upstream = "term"

[upstreams.term]
kind = "provision"

[upstreams.term.probe]
kind = "announce"

[upstreams.term.provider]
kind = "process"
command = ["python3", "svc.py", "{nats_url}", "{instance_id}"]
"""


def test_a_gateway_service_on_a_provision_upstream_needs_no_port() -> None:
    config = loads(GATEWAY_SERVICE)
    listener = config.listeners[0]
    assert [(s.name, s.upstream) for s in listener.services] == [("term", "term")]  # type: ignore[union-attr]


def test_gateway_services_name_provision_upstreams() -> None:
    text = GATEWAY_SERVICE.replace('upstream = "term"', 'upstream = "nope"')
    assert any("services[0].upstream: no provision upstream named 'nope'" in issue
               for issue in issues(text))


def test_announce_readiness_needs_a_gateway_that_uses_the_upstream() -> None:
    text = GATEWAY_SERVICE[GATEWAY_SERVICE.index("[upstreams.term]"):]
    assert any("upstreams.term.probe.kind: 'announce' needs a gateway" in issue
               for issue in issues(text))
