"""The leader's admin API over real workers: state shared by all, persisted, summed."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from registry_support import TOKEN, admin_call, admin_url, routes, wait_until
from test_process import LoadLoop, _command, children, config_text

from harness import NatsServer, Pointsman, ThreadedServer, exchange

ADMIN = f"""
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
"""


def _config(backend: ThreadedServer, tmp_path: Path, workers: int = 2) -> str:
    state = tmp_path / "state.json"
    return config_text(backend, workers=workers).replace(
        "[process]", f'[process]\nstate_file = "{state}"') + ADMIN


def test_admin_api_without_a_token_is_refused(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    base = admin_url(pointsman("serve", "-c", str(write_config(_config(echo_server(),
                                                                       tmp_path)))))
    for method, path in (("GET", "/status"), ("GET", "/stats"), ("GET", "/config"),
                         ("GET", "/upstreams"), ("GET", "/connections"), ("POST", "/reload"),
                         ("POST", "/drain"), ("GET", "/metrics"), ("POST", "/routes")):
        assert admin_call(base, method, path, {}, token=None)[0] == 401, path
    assert admin_call(base, "GET", "/health", token=None)[0] == 200
    assert admin_call(base, "GET", "/openapi.json", token=None)[0] == 200


def test_status_config_and_summed_counters(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    handle = pointsman("serve", "-c", str(write_config(_config(echo_server(), tmp_path))))
    base = admin_url(handle)
    status, body = admin_call(base, "GET", "/status")
    assert status == 200
    assert sorted(worker["pid"] for worker in body["workers"]) == sorted(
        children(handle.process.pid))
    assert admin_call(base, "GET", "/config")[1]["admin"]["token"] == "***"
    with LoadLoop(handle.address("front"), clients=4, max_requests=200) as load:
        load.wait_for(200)
    assert load.errors == []
    wait_until(lambda: admin_call(base, "GET", "/stats")[1]["requests"].get("front") == 200,
               timeout=5)
    text = admin_call(base, "GET", "/metrics")[1]
    assert 'pointsman_listener_requests_total{listener="front"} 200.0' in text
    assert "pointsman_workers 2.0" in text


def test_counts_and_errors_without_an_access_log(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    extra = f"""
[[listeners]]
name = "nowhere"
protocol = "tcp"
listen = "127.0.0.1:0"
upstream = "gone"

[upstreams.gone]
endpoints = ["127.0.0.1:{dead.getsockname()[1]}"]

[logging]
access = "off"
"""
    try:
        handle = pointsman("serve", "-c", str(write_config(_config(echo_server(), tmp_path,
                                                                   workers=1) + extra)))
        base = admin_url(handle)
        for _ in range(5):
            assert exchange(handle.address("front"), b"ping") == b"ping"
        for _ in range(3):
            with socket.create_connection(handle.address("nowhere"), timeout=5) as sock:
                sock.sendall(b"x")
                # Closed with an unread byte, which the kernel turns into a reset.
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(10) == b""
        wait_until(lambda: admin_call(base, "GET", "/stats")[1]["requests"]
                   == {"front": 5, "nowhere": 3}, timeout=5)
        assert admin_call(base, "GET", "/stats")[1]["errors"] == {"nowhere": 3}
    finally:
        dead.close()


def test_admin_routes_reach_every_worker_and_survive_reload_and_restart(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    path = write_config(_config(echo_server(), tmp_path))
    handle = pointsman("serve", "-c", str(path))
    base = admin_url(handle)
    body = {"uris": ["api.example.com"], "host": "127.0.0.1", "port": 7003}
    assert admin_call(base, "POST", "/routes", body)[0] == 200
    assert "api.example.com" in routes(base)
    assert_every_worker_has(base, "api.example.com", 2)
    handle.signal(signal.SIGHUP)
    handle.wait_event("reloaded")
    assert "api.example.com" in routes(base)
    assert_every_worker_has(base, "api.example.com", 2)
    handle.stop(signal.SIGQUIT)
    again = pointsman("serve", "-c", str(path))
    assert "api.example.com" in routes(admin_url(again))
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["routes"][0]["uri"] == "api.example.com"


def test_drain_one_endpoint_and_reload_through_the_api(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    first, second = echo_server(), echo_server()
    text = _config(first, tmp_path).replace(
        f'endpoints = ["{first.address}"]', f'endpoints = ["{first.address}", '
                                            f'"{second.address}"]')
    path = write_config(text)
    handle = pointsman("serve", "-c", str(path))
    base = admin_url(handle)
    drained = {"upstream": "backend", "endpoint": first.address}
    assert admin_call(base, "POST", "/drain", drained)[0] == 200
    before = first.connections
    for index in range(20):
        assert exchange(handle.address("front"), b"%d" % index) == b"%d" % index
    assert first.connections == before
    rows = {row["address"]: row for row in admin_call(base, "GET", "/upstreams")[1]["backend"]}
    assert rows[first.address]["draining"] and not rows[second.address]["draining"]
    assert rows[second.address]["total"] == 20
    assert admin_call(base, "POST", "/drain", {"upstream": "backend",
                                               "endpoint": "1.2.3.4:5"})[0] == 404

    status, result = admin_call(base, "POST", "/reload")
    assert status == 200 and result["ok"]
    path.write_text(text.replace('upstream = "backend"', 'upstream = "gone"'))
    status, result = admin_call(base, "POST", "/reload")
    assert status == 422 and any("gone" in error for error in result["errors"])
    assert exchange(handle.address("front"), b"still") == b"still"
    assert first.connections == before  # the drain outlived the reload


def test_connections_lists_open_ones(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    handle = pointsman("serve", "-c", str(write_config(_config(echo_server(), tmp_path))))
    base = admin_url(handle)
    with socket.create_connection(handle.address("front")) as sock:
        sock.sendall(b"hold")
        assert sock.recv(10) == b"hold"
        body = admin_call(base, "GET", "/connections")[1]
        assert body["connections"][0]["listener"] == "front"
        per_worker = admin_call(base, "GET", "/workers/connections")[1]
        assert len(per_worker) == 2
        assert sum(answer["active"].get("front", 0) for answer in per_worker) == 1
        assert admin_call(base, "GET", "/workers/nope")[0] == 404
        wait_until(lambda: admin_call(base, "GET", "/stats")[1]["active"].get("front") == 1)


def test_openapi_document_matches_docs() -> None:
    from pointsman.control.openapi import OPENAPI

    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(OPENAPI))


def assert_every_worker_has(base: str, key: str, workers: int) -> None:
    tables = admin_call(base, "GET", "/routes?workers=1")[1]
    assert len(tables) == workers
    assert all(key in table["routes"] for table in tables), tables


async def test_nats_registrations_reach_every_worker_and_one_router_start(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path,
        nats_server: NatsServer) -> None:
    import asyncio

    import nats
    from nats.aio.msg import Msg

    client = await nats.connect(nats_server.url)
    starts: list[bytes] = []
    async def on_start(msg: Msg) -> None:
        starts.append(msg.data)

    await client.subscribe("router.start", cb=on_start)
    await client.flush()
    text = _config(echo_server(), tmp_path) + f'\n[nats]\nservers = ["{nats_server.url}"]\n'
    handle = pointsman("serve", "-c", str(write_config(text)))
    base = admin_url(handle)
    body = json.dumps({"uris": ["nats.example.com"], "host": "127.0.0.1", "port": 7100})
    await client.publish("router.register", body.encode())
    await client.flush()
    await asyncio.to_thread(wait_until, lambda: all(
        "nats.example.com" in table["routes"]
        for table in admin_call(base, "GET", "/routes?workers=1")[1]), 5.0)
    await client.publish("router.unregister", body.encode())
    await client.flush()
    await asyncio.to_thread(wait_until, lambda: not any(
        "nats.example.com" in table["routes"]
        for table in admin_call(base, "GET", "/routes?workers=1")[1]), 5.0)
    await asyncio.sleep(0.2)
    assert len(starts) == 1  # one router, however many workers
    await client.close()



def test_routes_command_prints_a_table(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    backend = echo_server()
    handle = pointsman("serve", "-c", str(write_config(_config(backend, tmp_path))))
    base = admin_url(handle)
    body = {"uris": ["api.example.com"], "host": "127.0.0.1", "port": 7003, "app": "api"}
    assert admin_call(base, "POST", "/routes", body)[0] == 200
    assert exchange(handle.address("front"), b"x") == b"x"
    wait_until(lambda: admin_call(base, "GET", "/upstreams")[1]["backend"][0]["total"] == 1)
    shown = _command("routes", "--admin", base, "--token", TOKEN)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "ROUTES (1)"
    assert lines[1].split() == ["ROUTE", "ENDPOINT", "SOURCE", "APP", "EXPIRES", "STATE"]
    assert lines[3].split() == ["api.example.com", "127.0.0.1:7003", "admin", "api", "-",
                                "serving"]
    assert ["backend", backend.address, "healthy", "0", "1", "0"] in [
        line.split() for line in lines]
    refused = _command("routes", "--admin", base, "--token", "wrong")
    assert refused.returncode == 1 and "401" in refused.stderr


def test_gateway_listener_runs_in_two_workers_and_reports_its_sockets(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        tmp_path: Path, nats_server: NatsServer) -> None:
    from websockets.sync.client import connect

    text = f"""
[process]
workers = 2
state_file = "{tmp_path / "state.json"}"

[[listeners]]
name = "ws"
protocol = "gateway"
listen = "127.0.0.1:0"
nats_url = "{nats_server.url}"
""" + ADMIN
    handle = pointsman("serve", "-c", str(write_config(text)))
    base = admin_url(handle)
    host, port = handle.address("ws")
    with connect(f"ws://{host}:{port}/ws", open_timeout=5):
        wait_until(lambda: sum(answer["ws"]["sockets"] for answer in
                               admin_call(base, "GET", "/workers/gateway")[1]) == 1)
    handle.signal(signal.SIGHUP)
    handle.wait_event("reloaded")
    with connect(f"ws://{host}:{port}/ws", open_timeout=5):
        pass
