"""What providers send to engines and how labels become process environment."""

from __future__ import annotations

import msgspec

from pointsman.config import DockerProviderConfig
from pointsman.upstream.providers.base import service_instance_id
from pointsman.upstream.providers.docker import _address, container_config
from pointsman.upstream.providers.process import label_env

LABELS = {"pointsman.managed": "1", "pointsman.instance": "i", "pointsman.upstream": "u"}


def docker(**fields: object) -> DockerProviderConfig:
    return msgspec.convert({"image": "img", "port": 9000, **fields}, DockerProviderConfig)


def test_published_port_with_limits_and_labels() -> None:
    body = container_config(docker(memory="64m", cpus=0.25, pids_limit=32,
                                   labels={"app": "x"}, mounts=["/a:/b:ro"],
                                   ulimits={"nofile": 1024}, command=["serve", "{port}"]),
                            "pm-u-1", LABELS, None)
    assert body["Image"] == "img" and body["Cmd"] == ["serve", "9000"]
    assert body["ExposedPorts"] == {"9000/tcp": {}}
    host = body["HostConfig"]
    assert host["PortBindings"] == {"9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 << 20, 250_000_000, 32)
    assert host["Binds"] == ["/a:/b:ro"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert body["Labels"] == {"app": "x", **LABELS, "pointsman.backend": "pm-u-1"}
    assert "PORT=9000" in body["Env"]


def test_our_labels_win_over_user_labels() -> None:
    body = container_config(docker(labels={"pointsman.instance": "forged"}), "b", LABELS, None)
    assert body["Labels"]["pointsman.instance"] == "i"


def test_container_address_mode_publishes_nothing() -> None:
    body = container_config(docker(address="container"), "b", LABELS, None)
    assert body["ExposedPorts"] == {"9000/tcp": {}}
    assert "PortBindings" not in body["HostConfig"]


def test_host_network_fills_the_port_template() -> None:
    body = container_config(docker(network_mode="host", port=0, command=["app", "{port}"],
                                   env={"LISTEN": ":{port}", "ID": "{backend}"}),
                            "pm-u-7", LABELS, 41234)
    assert body["Cmd"] == ["app", "41234"]
    assert "LISTEN=:41234" in body["Env"] and "ID=pm-u-7" in body["Env"]
    assert body["HostConfig"]["NetworkMode"] == "host"
    assert "ExposedPorts" not in body


def test_label_env() -> None:
    assert label_env({"pointsman.instance": "x", "my-app.role": "y"}) == {
        "POINTSMAN_INSTANCE": "x", "MY_APP_ROLE": "y"}


def test_a_gateway_service_gets_its_instance_id_and_no_port() -> None:
    body = container_config(docker(port=0, command=["svc", "{instance_id}"]),
                            "pm-Term_1.x-3", LABELS, None)
    assert body["Cmd"] == ["svc", "pm-term-1-x-3"]
    assert "ExposedPorts" not in body and "PortBindings" not in body["HostConfig"]
    assert _address(docker(port=0), {}, None) == ("", 0)


def test_service_instance_ids_are_subject_tokens() -> None:
    assert service_instance_id("pm-term-a1b2c3-12") == "pm-term-a1b2c3-12"
    assert service_instance_id("pm-My.App_x-1") == "pm-my-app-x-1"
