"""gorouter registration messages: exact field names, Go's zero values, typed failures."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointsman.wire.gorouter import (
    MalformedRegistration,
    Options,
    RegistryMessage,
    RouterStart,
    decode_registration,
    encode_registration,
    encode_router_start,
)

FULL = {
    "host": "10.0.0.5",
    "port": 61001,
    "tls_port": 61002,
    "uris": ["app.example.com", "app.example.com/api"],
    "app": "app-guid",
    "availability_zone": "z1",
    "endpoint_updated_at_ns": 1_700_000_000_000_000_000,
    "isolation_segment": "seg",
    "private_instance_id": "instance-guid",
    "private_instance_index": "2",
    "protocol": "http2",
    "route_service_url": "https://rs.example.com",
    "server_cert_domain_san": "san.example.com",
    "stale_threshold_in_seconds": 30,
    "tags": {"component": "route-emitter", "process_id": "p1"},
    "options": {"loadbalancing": "least-connection"},
}


def test_every_gorouter_field_is_read() -> None:
    message = decode_registration(json.dumps(FULL).encode())
    assert message == RegistryMessage(
        host="10.0.0.5", port=61001, tls_port=61002,
        uris=("app.example.com", "app.example.com/api"), app="app-guid",
        availability_zone="z1", endpoint_updated_at_ns=1_700_000_000_000_000_000,
        isolation_segment="seg", private_instance_id="instance-guid",
        private_instance_index="2", protocol="http2",
        route_service_url="https://rs.example.com", server_cert_domain_san="san.example.com",
        stale_threshold_in_seconds=30,
        tags={"component": "route-emitter", "process_id": "p1"},
        options=Options("least-connection"))
    assert message.tag_items == (("component", "route-emitter"), ("process_id", "p1"))
    assert message.load_balancing == "least-connection"
    assert message.tls
    assert message.endpoint_port == 61002


def test_plain_port_without_tls_port() -> None:
    message = decode_registration(b'{"host":"h","port":8080,"uris":["a.com"]}')
    assert not message.tls
    assert message.endpoint_port == 8080


def test_unknown_fields_are_ignored() -> None:
    message = decode_registration(
        b'{"host":"h","port":1,"uris":["a"],"future":{"x":[1,2]},"dea":"x"}')
    assert message.uris == ("a",)


def test_null_reads_as_zero_value_like_go() -> None:
    message = decode_registration(
        b'{"host":"h","port":1,"tls_port":null,"uris":null,"tags":null,"app":null,'
        b'"options":null,"stale_threshold_in_seconds":null}')
    assert message.uris == ()
    assert message.tags == {}
    assert message.app == ""
    assert message.load_balancing == ""
    inner = decode_registration(
        b'{"host":"h","port":1,"uris":["a",null],"tags":{"k":null},"options":{"loadbalancing":null}}')
    assert inner.uris == ("a",) and inner.tags == {"k": ""} and inner.load_balancing == ""


@pytest.mark.parametrize("payload, reason", [
    (b"not json", "malformed"),
    (b"[1,2]", "Expected `object`"),
    (b'{"host":"h","port":70000,"uris":["a"]}', "<= 65535"),
    (b'{"host":"h","port":"80","uris":["a"]}', "Expected `int"),
    (b'{"host":"h","port":-1,"uris":["a"]}', ">= 0"),
    (b'{"port":80,"uris":["a"]}', "no host"),
    (b'{"host":"h","uris":["a"]}', "neither port"),
    (b'{"host":"h","port":80,"route_service_url":"http://rs"}', "https"),
    (b'{"host":"h","port":80,"tags":{"a":1}}', "Expected `str"),
])
def test_what_gorouter_drops_raises_malformed(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedRegistration, match=reason):
        decode_registration(payload)


def test_encode_round_trips() -> None:
    message = decode_registration(json.dumps(FULL).encode())
    assert decode_registration(encode_registration(message)) == message
    assert json.loads(encode_registration(message))["options"] == {
        "loadbalancing": "least-connection"}


def test_router_start_uses_gorouter_names() -> None:
    body = json.loads(encode_router_start(RouterStart(
        id="0-abc", hosts=["10.0.0.1"], minimum_register_interval_in_seconds=5,
        prune_threshold_in_seconds=120)))
    assert body == {"id": "0-abc", "hosts": ["10.0.0.1"],
                    "minimumRegisterIntervalInSeconds": 5, "pruneThresholdInSeconds": 120}


@given(st.binary(max_size=256))
def test_arbitrary_bytes_only_raise_the_codec_error(data: bytes) -> None:
    with contextlib.suppress(MalformedRegistration):
        decode_registration(data)


_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json_values = (_leaves | st.lists(_leaves, max_size=3)
                | st.dictionaries(st.text(max_size=8), _leaves, max_size=3))
_field_names = st.sampled_from([*list(FULL), "other"])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_field_names, _json_values, max_size=8))
def test_arbitrary_json_objects_only_raise_the_codec_error(body: dict[str, object]) -> None:
    try:
        message = decode_registration(msgspec.json.encode(body))
    except MalformedRegistration:
        return
    assert message.host
    assert 0 < message.endpoint_port <= 65535
