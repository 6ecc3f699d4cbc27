"""``[listeners.route_services]``: gorouter's route service settings on an HTTP listener."""

from __future__ import annotations

import pytest

from pointsman.config import ConfigError, HttpListener, loads

LISTENER = """
[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:8080"
"""


def test_off_by_default_with_gorouters_defaults() -> None:
    config = loads(LISTENER)
    listener = config.listeners[0]
    assert isinstance(listener, HttpListener)
    services = listener.route_services
    assert (services.secret, services.timeout, services.recommend_https,
            services.max_attempts, services.hairpinning) == ("", 60.0, True, 3, True)


def test_every_setting_converts() -> None:
    config = loads(LISTENER + """
[listeners.route_services]
secret = "new"
secret_decrypt_only = "old"
timeout = 5
recommend_https = false
max_attempts = 2
hairpinning = false
hairpinning_allowlist = ["*.apps.example.com", "auth.example.com"]
""")
    listener = config.listeners[0]
    assert isinstance(listener, HttpListener)
    services = listener.route_services
    assert (services.secret, services.secret_decrypt_only, services.timeout) == ("new", "old", 5)
    assert not services.recommend_https and services.max_attempts == 2
    assert services.hairpinning_allowlist == ["*.apps.example.com", "auth.example.com"]


MISTAKES = """
[listeners.route_services]
secret_decrypt_only = "old"
timeout = 0
max_attempts = 0
hairpinning_allowlist = ["sub.*.example.com"]
"""


def test_an_unknown_key_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(LISTENER + MISTAKES + 'secrets = "typo"\n', "pointsman.toml")
    paths = {issue.path for issue in caught.value.issues}
    assert any(path.startswith("listeners[0].route_services") for path in paths)
    assert "secrets" in str(caught.value)


def test_each_bad_value_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(LISTENER + MISTAKES, "pointsman.toml")
    paths = {issue.path for issue in caught.value.issues}
    assert {"listeners[0].route_services.secret_decrypt_only",
            "listeners[0].route_services.timeout", "listeners[0].route_services.max_attempts",
            "listeners[0].route_services.hairpinning_allowlist[0]"} <= paths
    assert all(issue.file == "pointsman.toml" for issue in caught.value.issues)
