"""The HTTP listener inside the leader/worker model: reloads under load fail nothing."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httpkit import Backend, get
from test_http_proxy import http_config

from harness import Pointsman

RELOADS = 10
CLIENTS = 3
MAX_REQUESTS = 30_000


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend("b1")
    yield server
    server.close()


def test_ten_reloads_under_http_load_give_only_2xx(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        backend: Backend) -> None:
    text = http_config([{"host": "app.test", "endpoints": [backend.address]}])
    path = write_config("[process]\nworkers = 2\ndrain_timeout = 10\n" + text)
    proxy = pointsman("serve", "-c", str(path))
    address = proxy.address("web")
    statuses: dict[int, int] = {}
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(MAX_REQUESTS // CLIENTS):
            if stop.is_set():
                return
            try:
                status, _headers, _body = get(address, "app.test", "/x")
            except OSError as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for generation in range(2, 2 + RELOADS):
            time.sleep(0.15)
            proxy.signal(signal.SIGHUP)
            proxy.wait_event("reloaded", predicate=lambda e, g=generation:
                             e.get("generation") == g)
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert failures == []
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 100
