"""PostgreSQL routed by database name through pointsman to two real clusters.

psql connects with libpq's default ``sslmode=prefer``, so every connection
opens with an SSLRequest that the router declines before the startup message
names the database. Each cluster answers ``SHOW port``, which proves where a
connection landed. The clusters are throwaway (``initdb`` in a temp dir,
fsync off) and run as ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ROOT, Pointsman, free_port_number

EXAMPLE = ROOT / "examples" / "postgres_router.py"
NOBODY = 65534


def pg_binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"{name} not found: install the Debian 'postgresql' package")
    return candidates[-1]


def as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: drop to nobody when we are root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


@dataclass
class Cluster:
    directory: Path
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        subprocess.run(
            [*as_server_user(), pg_binary("pg_ctl"), "-D", str(self.directory / "data"),
             "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip


def start_cluster(databases: list[str]) -> Cluster:
    directory = Path(tempfile.mkdtemp(prefix="pointsman-pg-"))
    if os.geteuid() == 0:
        os.chown(directory, NOBODY, NOBODY)
    data = directory / "data"
    subprocess.run(
        [*as_server_user(), pg_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "--no-sync", "--locale=C", "-E", "UTF8"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    port = free_port_number()
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=off"
    subprocess.run(
        [*as_server_user(), pg_binary("pg_ctl"), "-D", str(data), "-o", options,
         "-l", str(directory / "log"), "-w", "-t", "30", "start"],
        capture_output=True, timeout=40, check=True,
    )  # fmt: skip
    cluster = Cluster(directory, port)
    for name in databases:
        psql(cluster.address, "postgres", f"CREATE DATABASE {name}")
    return cluster


def psql(
    address: str, database: str, sql: str, sslmode: str = "prefer", check: bool = True
) -> subprocess.CompletedProcess[str]:
    host, _, port = address.rpartition(":")
    dsn = f"host={host} port={port} dbname={database} user=postgres sslmode={sslmode}"
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PSQLRC": os.devnull}
    return subprocess.run(
        ["psql", dsn, "-X", "-tAc", sql],
        env=env, capture_output=True, text=True, timeout=30, check=check,
    )  # fmt: skip


@pytest.fixture
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    started: list[Cluster] = []
    try:
        started.append(start_cluster(["orders"]))
        started.append(start_cluster(["analytics"]))
        yield started[0], started[1]
    finally:
        for cluster in started:
            cluster.stop()
            shutil.rmtree(cluster.directory, ignore_errors=True)


def test_psql_is_routed_by_database(
    clusters: tuple[Cluster, Cluster],
    monkeypatch: pytest.MonkeyPatch,
    pointsman: Callable[..., Pointsman],
) -> None:
    orders, analytics = clusters
    monkeypatch.setenv(
        "POINTSMAN_PG_BACKENDS", f"orders={orders.address},analytics={analytics.address}"
    )
    proxy = pointsman("tcp", "-c", str(EXAMPLE), "-h", "127.0.0.1", "-p", "0")
    host, port = proxy.address("tcp")
    via = f"{host}:{port}"

    assert psql(via, "orders", "SHOW port").stdout.strip() == str(orders.port)
    assert psql(via, "analytics", "SHOW port").stdout.strip() == str(analytics.port)
    assert psql(via, "orders", "SELECT current_database()").stdout.strip() == "orders"
    # no SSLRequest at all: the startup message comes first
    plain = psql(via, "analytics", "SHOW port", sslmode="disable")
    assert plain.stdout.strip() == str(analytics.port)

    missing = psql(via, "nope", "SELECT 1", check=False)
    assert missing.returncode != 0
    assert 'database "nope" does not exist' in missing.stderr

    required = psql(via, "orders", "SELECT 1", sslmode="require", check=False)
    assert required.returncode != 0
    assert "SSL" in required.stderr
