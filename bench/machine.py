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
from typing import Any

from bench.peers import REPO

__all__ = ["describe", "first_line", "loadavg", "utc_now"]

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
