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


def test_http_metrics_are_summed_over_workers(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        backend: Backend, tmp_path: Path) -> None:
    from registry_support import TOKEN, admin_call, admin_url, wait_until

    text = http_config([{"host": "app.test", "endpoints": [backend.address]}])
    path = write_config(f'[process]\nworkers = 2\nstate_file = "{tmp_path / "s.json"}"\n'
                        f'[admin]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n' + text)
    proxy = pointsman("serve", "-c", str(path))
    base = admin_url(proxy)
    for _ in range(60):
        assert get(proxy.address("web"), "app.test", "/y")[0] == 200
    line = 'pointsman_http_requests_total{listener="web",route="app.test",status="200"} 60.0'
    wait_until(lambda: line in admin_call(base, "GET", "/metrics")[1], timeout=5)
    served = [worker["active"] for worker in admin_call(base, "GET", "/status")[1]["workers"]]
    assert len(served) == 2
    assert admin_call(base, "GET", "/stats")[1]["requests"]["web"] == 60
