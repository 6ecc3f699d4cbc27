"""The leader/worker process model end to end: reloads under load, crashes, quit, stop.

Every case runs real ``pointsman serve`` processes with two workers in front
of a real backend on loopback, and drives them with signals exactly as an
operator (or systemd, or logrotate) would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import ROOT, Pointsman, ThreadedServer, _environment, exchange

RELOADS = 10
LOAD_CLIENTS = 4


@dataclass
class LoadLoop:
    """A few client threads making fresh connections until stopped (bounded in count)."""

    address: tuple[str, int]
    clients: int = LOAD_CLIENTS
    max_requests: int = 20_000
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, client: int) -> None:
        sent = 0
        while not self._stop.is_set() and sent < self.max_requests // self.clients:
            payload = f"client {client} request {sent}\n".encode()
            sent += 1
            try:
                answer = exchange(self.address, payload)
            except OSError as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                if answer == payload:
                    self.ok += 1
                else:
                    self.errors.append(f"wrong answer {answer[:40]!r}")

    def __enter__(self) -> LoadLoop:
        for client in range(self.clients):
            thread = threading.Thread(target=self._run, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < count and time.monotonic() < deadline:
            time.sleep(0.01)


def config_text(backend: ThreadedServer, workers: int = 2, drain: float = 10.0,
                extra: str = "") -> str:
    return f"""
[process]
workers = {workers}
drain_timeout = {drain}

[[listeners]]
name = "front"
protocol = "tcp"
listen = "127.0.0.1:0"
upstream = "backend"
{extra}
[upstreams.backend]
endpoints = ["{backend.address}"]
"""


def children(pid: int) -> list[int]:
    """The leader's live worker processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return [child for child in found if _alive(child)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def test_ten_reloads_under_load_fail_no_request(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    path = write_config(config_text(backend))
    proxy = pointsman("serve", "-c", str(path))
    address = proxy.address("front")
    workers_before = set(children(proxy.process.pid))
    assert len(workers_before) == 2
    with LoadLoop(address) as load:
        load.wait_for(50)
        for generation in range(2, 2 + RELOADS):
            proxy.signal(signal.SIGHUP)
            event = proxy.wait_event("reloaded", predicate=lambda e, g=generation:
                                     e.get("generation") == g)
            assert event["listeners"]["front"] == [f"{address[0]}:{address[1]}"]
            before = load.ok
            load.wait_for(before + 20)
    assert load.errors == []
    assert load.ok > 200
    wait_until(lambda: len(children(proxy.process.pid)) == 2)
    assert not workers_before & set(children(proxy.process.pid))


def test_broken_config_is_refused_and_traffic_continues(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    good = config_text(backend)
    path = write_config(good)
    proxy = pointsman("serve", "-c", str(path))
    workers = set(children(proxy.process.pid))
    with LoadLoop(proxy.address("front"), clients=2) as load:
        load.wait_for(20)
        path.write_text(good.replace('upstream = "backend"', 'upstream = "nowhere"'))
        proxy.signal(signal.SIGHUP)
        refused = proxy.wait_event("reload_refused")
        assert any("nowhere" in error for error in refused["errors"])
        before = load.ok
        load.wait_for(before + 20)
    assert load.errors == []
    assert set(children(proxy.process.pid)) == workers
    path.write_text(good)
    proxy.signal(signal.SIGHUP)
    proxy.wait_event("reloaded")
    assert exchange(proxy.address("front"), b"after\n") == b"after\n"


def test_a_route_module_that_fails_to_import_is_refused_on_reload(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    router = write_config(f'def route(data, conn):\n    return "{backend.address}"\n',
                          "router.py")
    path = write_config(config_text(backend).replace('upstream = "backend"',
                                                     'route = "router.py"'))
    proxy = pointsman("serve", "-c", str(path))
    router.write_text("def route(data, conn):\n    return (\n")
    proxy.signal(signal.SIGHUP)
    refused = proxy.wait_event("reload_refused")
    assert any("router.py" in error for error in refused["errors"])
    assert exchange(proxy.address("front"), b"still\n") == b"still\n"


def test_a_killed_worker_is_replaced_and_traffic_continues(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    proxy = pointsman("serve", "-c", str(write_config(config_text(backend))))
    victim, survivor = children(proxy.process.pid)
    os.kill(victim, signal.SIGKILL)
    crashed = proxy.wait_event("worker_crashed")
    assert crashed["pid"] == victim
    assert "SIGKILL" in crashed["status"]
    restarted = proxy.wait_event("worker_restarted")
    assert restarted["replaced"] == victim
    assert set(children(proxy.process.pid)) == {survivor, restarted["pid"]}
    with LoadLoop(proxy.address("front"), clients=2, max_requests=200) as load:
        load.wait_for(200)
    assert load.errors == []
    assert load.ok == 200


def test_quit_drains_a_slow_request_then_exits(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def slow(sock: socket.socket) -> None:
        received = b""
        while data := sock.recv(65536):
            received += data
        time.sleep(1.0)
        sock.sendall(b"slow " + received)

    backend = echo_server(slow)
    proxy = pointsman("serve", "-c", str(write_config(config_text(backend, drain=10))))
    address = proxy.address("front")
    answers: list[bytes] = []
    client = threading.Thread(target=lambda: answers.append(exchange(address, b"x")))
    client.start()
    wait_until(lambda: backend.connections == 1)
    started = time.monotonic()
    proxy.signal(signal.SIGQUIT)
    proxy.wait_event("stopping")
    with pytest.raises(OSError):
        exchange(address, b"late", timeout=1.0)
    assert proxy.process.wait(10) == 0
    client.join(5)
    assert answers == [b"slow x"]
    assert 0.5 < time.monotonic() - started < 5.0
    assert proxy.wait_event("stopped")


def test_quit_cuts_what_outlasts_the_drain_timeout(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def stuck(sock: socket.socket) -> None:
        sock.recv(65536)
        time.sleep(5.0)

    backend = echo_server(stuck)
    proxy = pointsman("serve", "-c", str(write_config(config_text(backend, drain=0.5))))
    with socket.create_connection(proxy.address("front"), timeout=5) as sock:
        sock.sendall(b"x")
        wait_until(lambda: backend.connections == 1)
        started = time.monotonic()
        proxy.signal(signal.SIGQUIT)
        assert sock.recv(10) == b""
        assert proxy.process.wait(10) == 0
        assert time.monotonic() - started < 3.0


def test_term_stops_at_once(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    def stuck(sock: socket.socket) -> None:
        sock.recv(65536)
        time.sleep(5.0)

    backend = echo_server(stuck)
    proxy = pointsman("serve", "-c", str(write_config(config_text(backend, drain=30))))
    pid = proxy.process.pid
    workers = children(pid)
    with socket.create_connection(proxy.address("front"), timeout=5) as sock:
        sock.sendall(b"x")
        wait_until(lambda: backend.connections == 1)
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        assert proxy.process.wait(10) == 0
        assert time.monotonic() - started < 2.0
    assert not any(_alive(worker) for worker in workers)


def test_workers_go_when_the_leader_is_killed(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer]) -> None:
    backend = echo_server()
    proxy = pointsman("serve", "-c", str(write_config(config_text(backend))))
    workers = children(proxy.process.pid)
    proxy.process.kill()
    proxy.process.wait(5)
    wait_until(lambda: not any(_alive(worker) for worker in workers))


def test_reload_quit_stop_commands_use_the_pidfile(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    backend = echo_server()
    pidfile = tmp_path / "run" / "pointsman.pid"
    path = write_config(config_text(backend, extra="") .replace(
        "[process]", f'[process]\npidfile = "{pidfile}"'))
    proxy = pointsman("serve", "-c", str(path))
    assert pidfile.read_text().strip() == str(proxy.process.pid)
    assert _command("reload", "-c", str(path)).returncode == 0
    proxy.wait_event("reloaded")
    good = path.read_text()
    path.write_text(good.replace('upstream = "backend"', 'upstream = "nowhere"'))
    broken = _command("reload", "-c", str(path))
    assert broken.returncode == 1 and "nowhere" in broken.stderr
    path.write_text(good)
    assert _command("quit", "--pidfile", str(pidfile)).returncode == 0
    assert proxy.process.wait(5) == 0
    assert not pidfile.exists()
    missing = _command("stop", "--pidfile", str(pidfile))
    assert missing.returncode == 1
    assert "no such pidfile" in missing.stderr


def test_daemon_detaches_and_reports_ready(
        write_config: Callable[[str, str], Path], echo_server: Callable[..., ThreadedServer],
        tmp_path: Path) -> None:
    backend = echo_server()
    pidfile = tmp_path / "daemon.pid"
    access = tmp_path / "access.log"
    path = write_config(config_text(backend) + f'\n[logging]\naccess = "{access}"\n')
    started = _command("serve", "-c", str(path), "--daemon", "--pidfile", str(pidfile))
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        assert os.getsid(pid) != os.getsid(0)  # another session: detached from ours
        assert len(children(pid)) == 2
        assert _alive(pid)
    finally:
        assert _command("stop", "--pidfile", str(pidfile)).returncode == 0
    assert not _alive(pid)


def test_daemon_start_failure_is_reported(write_config: Callable[[str, str], Path],
                                          tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    path = write_config(f"""
[[listeners]]
name = "front"
protocol = "tcp"
listen = "127.0.0.1:{port}"
upstream = "backend"

[upstreams.backend]
endpoints = ["127.0.0.1:9"]
""")
    with taken:
        failed = _command("serve", "-c", str(path), "--daemon", "--pidfile",
                          str(tmp_path / "x.pid"))
    assert failed.returncode == 1
    assert "start failed" in failed.stderr


def test_usr1_reopens_the_access_log(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path) -> None:
    backend = echo_server()
    access = tmp_path / "access.log"
    path = write_config(config_text(backend, workers=1) + f'\n[logging]\naccess = "{access}"\n')
    proxy = pointsman("serve", "-c", str(path))
    assert exchange(proxy.address("front"), b"one\n") == b"one\n"
    wait_until(lambda: access.exists() and b"front" in access.read_bytes())
    access.rename(tmp_path / "access.log.1")
    proxy.signal(signal.SIGUSR1)
    proxy.wait_event("logs_reopened")
    wait_until(access.exists)
    assert exchange(proxy.address("front"), b"two\n") == b"two\n"
    wait_until(lambda: b"front" in access.read_bytes())


def test_systemd_notify_protocol(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path],
        echo_server: Callable[..., ThreadedServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = echo_server()
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(address)
        manager.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        proxy = pointsman("serve", "-c", str(write_config(config_text(backend))))
        ready = manager.recv(4096).decode().splitlines()
        assert "READY=1" in ready
        assert f"MAINPID={proxy.process.pid}" in ready
        proxy.signal(signal.SIGHUP)
        assert "RELOADING=1" in manager.recv(4096).decode().splitlines()
        assert "READY=1" in manager.recv(4096).decode().splitlines()
        proxy.signal(signal.SIGQUIT)
        assert "STOPPING=1" in manager.recv(4096).decode().splitlines()
        assert proxy.process.wait(10) == 0


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pointsman", *args], capture_output=True,
                          text=True, timeout=30, cwd=ROOT, env=_environment(),
                          stdin=subprocess.DEVNULL)
