"""Helpers for the registry integration tests: the admin API and gorouter-style clients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from harness import Pointsman

TOKEN = "test-token"


def admin_url(handle: Pointsman) -> str:
    ready = handle.wait_event("ready")
    return f"http://{ready['admin'][0]}"


def admin_call(base: str, method: str, path: str, body: Any = None,
               token: str | None = TOKEN) -> tuple[int, Any]:
    """``(status, decoded JSON or text)`` for one admin request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers["Content-Type"]
    if kind and kind.startswith("application/json"):
        return status, json.loads(raw)
    return status, raw.decode()


def wait_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> float:
    """Poll ``check`` until it is truthy; the seconds it took, or ``TimeoutError``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def routes(base: str) -> dict[str, list[dict[str, Any]]]:
    status, body = admin_call(base, "GET", "/routes")
    assert status == 200, body
    return dict(body)


def router_config(nats_url: str | None, *, registry: str = "", listener: str = "") -> str:
    """TOML of a gorouter-style router: ``[nats]`` (when a URL is given), the admin API
    with ``TOKEN``, one HTTP listener ``web`` followed by ``listener`` (its sub-tables),
    ``[registry]`` settings, and no access log."""
    nats = f'[nats]\nservers = ["{nats_url}"]\n' if nats_url else ""
    return f"""
{nats}
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[registry]
{registry}

[[listeners]]
protocol = "http"
name = "web"
listen = "127.0.0.1:0"
{listener}
[logging]
access = "off"
"""
