"""Draining one endpoint of an HTTP route key through the leader's admin API."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httpkit import Backend, backend_of, get
from registry_support import TOKEN, admin_call, admin_url, routes
from test_http_proxy import http_config
from test_process import _command

from harness import Pointsman

ADMIN = f'\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'


@pytest.fixture
def pair() -> Iterator[tuple[Backend, Backend]]:
    first, second = Backend("first"), Backend("second")
    yield first, second
    first.close()
    second.close()


def _register(base: str, backend: Backend) -> None:
    host, _, port = backend.address.rpartition(":")
    body = {"uris": ["app.test"], "host": host, "port": int(port)}
    assert admin_call(base, "POST", "/routes", body)[0] == 200


def test_a_drained_route_endpoint_gets_nothing_new_and_finishes_what_it_has(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        pair: tuple[Backend, Backend], tmp_path: Path) -> None:
    first, second = pair
    text = (f'[process]\nworkers = 2\nstate_file = "{tmp_path / "state.json"}"\n'
            + http_config([]) + ADMIN)
    path = write_config(text)
    handle = pointsman("serve", "-c", str(path))
    base = admin_url(handle)
    _register(base, first)
    address = handle.address("web")
    # A slow request is in flight on ``first`` when it is drained: it still finishes.
    slow: list[tuple[int, bytes]] = []
    busy = threading.Thread(target=lambda: slow.append(
        get(address, "app.test", "/slow?s=0.8")[::2]))
    busy.start()
    while first.requests < 1:
        threading.Event().wait(0.01)
    _register(base, second)
    drain = {"route": "App.Test", "endpoint": first.address}
    status, body = admin_call(base, "POST", "/drain", drain)
    assert status == 200 and body == {"route": "app.test", "endpoint": first.address,
                                      "draining": True}
    assert {backend_of(get(address, "app.test")[2]) for _ in range(20)} == {"second"}
    assert first.requests == 1  # no worker sends it anything new
    busy.join(10)
    assert slow[0][0] == 200 and backend_of(slow[0][1]) == "first"
    rows = {row["address"]: row for row in routes(base)["app.test"]}
    assert rows[first.address]["draining"] and not rows[second.address]["draining"]
    shown = _command("routes", "--admin", base, "--token", TOKEN)
    assert [first.address, "draining"] in [[line.split()[1], line.split()[-1]]
                                           for line in shown.stdout.splitlines()[3:]
                                           if len(line.split()) == 6]

    # It outlives a reload (new workers start with it) and comes back when undrained.
    handle.signal(signal.SIGHUP)
    handle.wait_event("reloaded")
    assert {backend_of(get(address, "app.test")[2]) for _ in range(10)} == {"second"}
    assert first.requests == 1
    drain["drain"] = False  # type: ignore[assignment]
    assert admin_call(base, "POST", "/drain", drain)[1]["draining"] is False
    assert {backend_of(get(address, "app.test")[2]) for _ in range(10)} == {"first", "second"}


def test_drain_body_errors(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        tmp_path: Path) -> None:
    text = (f'[process]\nstate_file = "{tmp_path / "state.json"}"\n' + http_config([])
            + ADMIN)
    base = admin_url(pointsman("serve", "-c", str(write_config(text))))
    assert admin_call(base, "POST", "/drain", {"route": "nope.test",
                                               "endpoint": "127.0.0.1:1"})[0] == 404
    assert admin_call(base, "POST", "/drain", {"endpoint": "127.0.0.1:1"})[0] == 400
    assert admin_call(base, "POST", "/drain", {"route": "a", "upstream": "b",
                                               "endpoint": "127.0.0.1:1"})[0] == 400
