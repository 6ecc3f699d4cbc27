"""The ``http`` listener section of the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from pointsman.config import ConfigError, HttpListener, loads

GOOD = """
[upstreams.api]
endpoints = ["127.0.0.1:9001"]

[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"
trusted_proxies = ["10.0.0.0/8"]
connect_allow = ["db.internal:5432"]

[listeners.limits]
max_body_bytes = 1048576
response_timeout = 30

[[listeners.routes]]
host = "api.example.com"
path = "/v1"
upstream = "api"

[[listeners.routes]]
host = "*.apps.example.com"
endpoints = ["127.0.0.1:9002", "127.0.0.1:9003"]
balance = "least_conn"
"""


def test_http_listener_converts() -> None:
    config = loads(GOOD)
    [listener] = config.listeners
    assert isinstance(listener, HttpListener)
    assert listener.sticky_cookies == ["JSESSIONID"]
    assert listener.limits.max_header_bytes == 16 * 1024
    assert listener.limits.max_body_bytes == 1048576
    assert [r.host for r in listener.routes] == ["api.example.com", "*.apps.example.com"]


@pytest.mark.parametrize(("change", "path"), [
    ('upstream = "api"\nendpoints = ["127.0.0.1:1"]', "listeners[0].routes[0]"),
    ('upstream = "nope"', "listeners[0].routes[0].upstream"),
])
def test_route_needs_exactly_one_target(change: str, path: str) -> None:
    text = GOOD.replace('upstream = "api"', change, 1)
    with pytest.raises(ConfigError) as caught:
        loads(text)
    assert any(issue.path == path for issue in caught.value.issues)


def test_bad_values_are_named() -> None:
    text = GOOD.replace('"10.0.0.0/8"', '"not-a-net"').replace('"db.internal:5432"', '"nope"')
    text = text.replace('path = "/v1"', 'path = "v1"')
    with pytest.raises(ConfigError) as caught:
        loads(text)
    paths = {issue.path for issue in caught.value.issues}
    assert {"listeners[0].trusted_proxies[0]", "listeners[0].connect_allow[0]",
            "listeners[0].routes[0].path"} <= paths


def test_example_file_is_valid() -> None:
    from pathlib import Path

    from pointsman.config import load

    example = Path(__file__).resolve().parents[2] / "examples" / "http.toml"
    config = load(example)
    assert isinstance(config.listeners[0], HttpListener)


def test_backend_tls_settings_and_tls_file_routes(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    text = """
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"

[listeners.backends]
ca_file = "ca.pem"

[[listeners.routes]]
host = "secure.example.com"
endpoints = ["10.0.0.5:8443"]
tls = true
server_name = "app.internal"

[[routes]]
uris = ["other.example.com"]
endpoints = ["10.0.0.6:8443"]
tls = true
server_name = "other.internal"
"""
    config = loads(text, str(tmp_path / "pointsman.toml"))
    [listener] = config.listeners
    assert isinstance(listener, HttpListener)
    assert listener.backends.ca_file == "ca.pem" and listener.backends.cert_file is None
    assert listener.routes[0].tls and listener.routes[0].server_name == "app.internal"
    assert config.routes[0].server_name == "other.internal"


def test_backend_tls_mistakes_are_named(tmp_path: Path) -> None:
    text = """
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"

[listeners.backends]
ca_file = "missing.pem"
cert_file = "missing-cert.pem"

[[listeners.routes]]
host = "a.example.com"
endpoints = ["10.0.0.5:8080"]
server_name = "app.internal"

[[routes]]
uris = ["b.example.com"]
endpoints = ["10.0.0.6:8443"]
server_name = "b.internal"
"""
    with pytest.raises(ConfigError) as caught:
        loads(text, str(tmp_path / "pointsman.toml"))
    paths = {issue.path for issue in caught.value.issues}
    assert {"listeners[0].backends.ca_file", "listeners[0].backends.cert_file",
            "listeners[0].backends", "listeners[0].routes[0].server_name",
            "routes[0].server_name"} <= paths


def test_backend_tls_files_that_do_not_load_are_named(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    text = """
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"

[listeners.backends]
ca_file = "ca.pem"
"""
    with pytest.raises(ConfigError) as caught:
        loads(text, str(tmp_path / "pointsman.toml"))
    [issue] = caught.value.issues
    assert issue.path == "listeners[0].backends.ca_file" and "cannot load" in issue.message


def test_tls_route_to_a_provision_upstream_is_refused() -> None:
    text = """
[upstreams.p]
kind = "provision"
[upstreams.p.provider]
kind = "process"
command = ["serve", "{port}"]

[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"

[[listeners.routes]]
host = "p.example.com"
upstream = "p"
tls = true
"""
    with pytest.raises(ConfigError) as caught:
        loads(text)
    assert [issue.path for issue in caught.value.issues] == ["listeners[0].routes[0].tls"]
