"""The facts a result is meaningless without: which machine, which versions, how busy.

Recorded in every result file so numbers from different days or machines are
never compared blind. Each version probe is bounded and never fails the run:
a missing tool reads as ``"missing"``.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench import procstat
from bench.peers import REPO

__all__ = ["busy_pct", "describe", "first_line", "loadavg", "utc_now", "wait_for_quiet"]

PROBE_TIMEOUT_S = 5.0


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_line(text: str) -> str:
    """The first non-blank line, stripped (version banners put the version there)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _probe(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return first_line(done.stdout) or first_line(done.stderr) or "unknown"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def describe() -> dict[str, Any]:
    """nproc, kernel, python, peer and tool versions, the pointsman commit, load average."""
    commit = _probe(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _probe(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "haproxy": _probe(["haproxy", "-v"]),
        "nginx": _probe(["nginx", "-v"]),
        "iperf3": _probe(["iperf3", "--version"]),
        "wrk": _probe(["wrk", "-v"]),
        "pointsman_commit": commit + (" (dirty)" if dirty not in ("unknown", "missing") else ""),
        "loadavg_before": loadavg(),
    }


def busy_pct(window_s: float = 1.0) -> float:
    """How much of the machine's CPU tasks used over the next ``window_s`` seconds."""
    start_busy, start = procstat.machine_busy_seconds(), time.monotonic()
    time.sleep(window_s)
    busy, wall = procstat.machine_busy_seconds() - start_busy, time.monotonic() - start
    return 100.0 * busy / (wall * (os.cpu_count() or 1))


def wait_for_quiet(
    max_wait_s: float, threshold_pct: float, log: Callable[[str], None]
) -> float:
    """Wait (at most ``max_wait_s``) for 3 consecutive quiet seconds; return the last reading.

    Other people's builds and tests share this machine's cores; numbers taken
    while they run say more about them than about the proxies.
    """
    deadline = time.monotonic() + max_wait_s
    quiet = 0
    reading = busy_pct()
    while time.monotonic() < deadline:
        quiet = quiet + 1 if reading < threshold_pct else 0
        if quiet >= 3:
            return reading
        log(f"  machine {reading:.0f}% busy, waiting for < {threshold_pct:g}%")
        reading = busy_pct()
    log(f"  machine still {reading:.0f}% busy after {max_wait_s:g}s; going on")
    return reading
