"""Admin-API routes in a JetStream KV bucket: shared by every router on one NATS cluster."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httpkit import Backend, get
from registry_support import TOKEN, admin_call, admin_url, wait_until
from test_http_proxy import http_config

from harness import NatsServer, Pointsman


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend("kv")
    yield server
    server.close()


def _config(nats: NatsServer, state: Path, workers: int = 1) -> str:
    return (f'[process]\nworkers = {workers}\nstate_file = "{state}"\n' + http_config([])
            + f'\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'
            + f'\n[nats]\nservers = ["{nats.url}"]\n')


def _route(backend: Backend, uri: str = "app.test") -> dict[str, object]:
    host, _, port = backend.address.rpartition(":")
    return {"uris": [uri], "host": host, "port": int(port)}


def _status(handle: Pointsman, host: str = "app.test") -> int:
    return get(handle.address("web"), host)[0]


def _routable(handle: Pointsman, host: str = "app.test", timeout: float = 5.0) -> None:
    """Every worker answers 200 (several tries, so each worker is asked)."""
    wait_until(lambda: all(_status(handle, host) == 200 for _ in range(6)), timeout)


def test_a_route_added_on_one_router_is_routable_on_another_and_after_a_restart(
        pointsman: Callable[..., Pointsman], write_config: Callable[..., Path],
        nats_server: NatsServer, backend: Backend, tmp_path: Path) -> None:
    first_path = write_config(_config(nats_server, tmp_path / "a.json", workers=2), "a.toml")
    first = pointsman("serve", "-c", str(first_path))
    second = pointsman("serve", "-c", str(write_config(
        _config(nats_server, tmp_path / "b.json"), "b.toml")))
    first_api, second_api = admin_url(first), admin_url(second)
    assert _status(second) == 404

    assert admin_call(first_api, "POST", "/routes", _route(backend))[0] == 200
    took = wait_until(lambda: _status(second) == 200, 5.0)
    assert took < 2.0  # a watch delivery, not a poll
    _routable(second)
    status = admin_call(second_api, "GET", "/status")[1]
    assert status["admin_state"]["bucket"]["synced"] is True

    # Removed on the other router: gone here too.
    assert admin_call(second_api, "DELETE", "/routes", _route(backend))[0] == 200
    wait_until(lambda: all(_status(first) == 404 for _ in range(6)), 5.0)

    # Added again, then ``first`` restarts on "another machine" (no local file): the
    # bucket brings the route back before it says ready.
    assert admin_call(second_api, "POST", "/routes", _route(backend, "api.test"))[0] == 200
    _routable(first, "api.test")
    assert first.stop(signal.SIGQUIT) == 0
    (tmp_path / "a.json").unlink()
    again = pointsman("serve", "-c", str(first_path))
    _routable(again, "api.test", timeout=2.0)
    assert "api.test" in admin_call(admin_url(again), "GET", "/routes")[1]
    for handle in (first, second, again):
        assert not [e for e in handle.events if e.get("event") == "routes_bucket_unavailable"]


def test_nats_down_at_start_serves_the_local_copy_then_syncs(
        pointsman: Callable[..., Pointsman], write_config: Callable[..., Path],
        nats_server: NatsServer, backend: Backend, tmp_path: Path) -> None:
    path = write_config(_config(nats_server, tmp_path / "a.json"), "a.toml")
    first = pointsman("serve", "-c", str(path))
    assert admin_call(admin_url(first), "POST", "/routes", _route(backend))[0] == 200
    wait_until(lambda: admin_call(admin_url(first), "GET", "/status")[1]["admin_state"]
               ["bucket"]["pending"] == 0)
    assert first.stop(signal.SIGQUIT) == 0

    nats_server.stop()
    again = pointsman("serve", "-c", str(path))
    base = admin_url(again)
    _routable(again)  # from the local file
    # A change while NATS is down is kept, and written to the bucket once it is back.
    assert admin_call(base, "POST", "/routes", _route(backend, "late.test"))[0] == 200
    again.signal(signal.SIGHUP)  # a reload keeps both
    again.wait_event("reloaded")
    _routable(again)
    _routable(again, "late.test")

    nats_server.start()
    wait_until(lambda: admin_call(base, "GET", "/status")[1]["admin_state"]["bucket"]
               ["synced"], 10.0)
    other = pointsman("serve", "-c", str(write_config(
        _config(nats_server, tmp_path / "b.json"), "b.toml")))
    _routable(other)
    _routable(other, "late.test")
    _routable(again)
    assert not [e for e in again.events if e.get("event") == "routes_bucket_unavailable"]

    # NATS restarts under both: a removal made meanwhile still reaches the other router.
    nats_server.restart()
    assert admin_call(admin_url(other), "DELETE", "/routes",
                      _route(backend, "late.test"))[0] == 200
    wait_until(lambda: all(_status(again, "late.test") == 404 for _ in range(4)), 15.0)
    _routable(again)
