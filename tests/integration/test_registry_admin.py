"""The admin API of a running pointsman: token, /routes from the file and the API, metrics."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_support import TOKEN, admin_call, admin_url, routes

from harness import Pointsman

CONFIG = f"""
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[routes]]
uris = ["static.example.com", "static.example.com/api"]
endpoints = ["127.0.0.1:7001", "127.0.0.1:7002"]
balance = "least_conn"
app = "static-app"
"""


def test_file_and_admin_routes_without_nats(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path]) -> None:
    handle = pointsman("serve", "-c", str(write_config(CONFIG)))
    base = admin_url(handle)
    listed = routes(base)
    assert sorted(e["address"] for e in listed["static.example.com"]) == [
        "127.0.0.1:7001", "127.0.0.1:7002"]
    assert listed["static.example.com/api"][0]["load_balancing_algorithm"] == "least-connection"
    assert listed["static.example.com"][0]["source"] == "static"

    body = {"uris": ["api.example.com"], "host": "127.0.0.1", "port": 7003,
            "private_instance_id": "abc", "tags": {"component": "test"}}
    assert admin_call(base, "POST", "/routes", body)[0] == 200
    entry = routes(base)["api.example.com"][0]
    assert entry["private_instance_id"] == "abc" and entry["tags"] == {"component": "test"}
    assert admin_call(base, "DELETE", "/routes", body)[0] == 200
    assert "api.example.com" not in routes(base)
    assert admin_call(base, "DELETE", "/routes", {
        "uris": ["static.example.com"], "host": "127.0.0.1", "port": 7001})[0] == 409


def test_every_endpoint_but_health_needs_the_token(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path]) -> None:
    base = admin_url(pointsman("serve", "-c", str(write_config(CONFIG))))
    assert admin_call(base, "GET", "/health", token=None) == (200, "ok\n")
    for method, path in (("GET", "/routes"), ("GET", "/metrics"), ("POST", "/routes"),
                         ("DELETE", "/routes")):
        assert admin_call(base, method, path, {}, token=None)[0] == 401, path
        assert admin_call(base, method, path, {}, token="wrong")[0] == 401, path


def test_token_from_the_environment_and_metrics(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POINTSMAN_ADMIN_TOKEN", "from-env")
    config = CONFIG.replace(f'token = "{TOKEN}"\n', "")
    base = admin_url(pointsman("serve", "-c", str(write_config(config))))
    status, text = admin_call(base, "GET", "/metrics", token="from-env")
    assert status == 200
    assert "pointsman_registry_total_routes 2.0" in text
    assert "pointsman_registry_endpoints 4.0" in text
    assert admin_call(base, "GET", "/metrics", token=TOKEN)[0] == 401


def test_reload_replaces_file_routes_and_keeps_api_routes(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path]) -> None:
    path = write_config(CONFIG)
    handle = pointsman("serve", "-c", str(path))
    base = admin_url(handle)
    body = {"uris": ["api.example.com"], "host": "127.0.0.1", "port": 7003}
    assert admin_call(base, "POST", "/routes", body)[0] == 200
    path.write_text(CONFIG.replace("static.example.com", "renamed.example.com"))
    handle.signal(signal.SIGHUP)
    handle.wait_event("static_routes_reloaded")
    listed = routes(base)
    assert "static.example.com" not in listed and "static.example.com/api" not in listed
    assert len(listed["renamed.example.com"]) == 2
    assert listed["api.example.com"][0]["source"] == "admin"
