"""The load generators: iperf3 for bulk TCP, wrk for HTTP requests and connections.

Each generator is an argv builder, a pure parser of its output (unit-tested on
captured output) and a runner that bounds the run in time: the tool's own
duration plus a grace, after which the run is killed and counted as failed.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.model import LoadResult
from bench.peerconf import Addr

__all__ = [
    "Iperf3Result",
    "LoadError",
    "WrkResult",
    "iperf3_argv",
    "parse_duration_s",
    "parse_iperf3",
    "parse_wrk",
    "run_iperf3",
    "run_wrk",
    "wrk_argv",
]

RUN_GRACE_S = 20.0
GIB = 1 << 30


class LoadError(RuntimeError):
    """A load run failed or printed something the parser does not understand."""


@dataclass(frozen=True, slots=True)
class Iperf3Result:
    """What the receiving side of an iperf3 test counted."""

    bytes: int
    seconds: float
    bits_per_second: float
    retransmits: int = 0

    @property
    def gbit_per_s(self) -> float:
        return self.bits_per_second / 1e9

    @property
    def gib(self) -> float:
        return self.bytes / GIB


def iperf3_argv(addr: Addr, seconds: float, *, reverse: bool = False) -> list[str]:
    """One client stream for ``seconds``, JSON output."""
    argv = ["iperf3", "-c", addr.host, "-p", str(addr.port), "-t", f"{seconds:g}", "-J"]
    if reverse:
        argv.append("-R")
    return argv


def parse_iperf3(text: str) -> Iperf3Result:
    """Read ``iperf3 -J`` output; an ``error`` key (or no totals) is a ``LoadError``."""
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"iperf3 printed no JSON: {text[:200]!r}") from exc
    if data.get("error"):
        raise LoadError(f"iperf3: {data['error']}")
    end = data.get("end", {})
    received = end.get("sum_received")
    if not received:
        raise LoadError("iperf3 JSON has no end.sum_received")
    sent = end.get("sum_sent", {})
    return Iperf3Result(
        bytes=int(received["bytes"]),
        seconds=float(received["seconds"]),
        bits_per_second=float(received["bits_per_second"]),
        retransmits=int(sent.get("retransmits", 0)),
    )


def _run(argv: Sequence[str], timeout: float) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{argv[0]} ran past {timeout:.0f}s and was killed") from exc
    if done.returncode != 0 and not done.stdout.strip():
        raise LoadError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def run_iperf3(addr: Addr, seconds: float, *, reverse: bool = False) -> Iperf3Result:
    return parse_iperf3(_run(iperf3_argv(addr, seconds, reverse=reverse), seconds + RUN_GRACE_S))


@dataclass(frozen=True, slots=True)
class WrkResult:
    """wrk's summary: counts, rate, errors and the latency percentiles (ms)."""

    requests: int
    seconds: float
    requests_per_s: float
    socket_errors: int = 0
    non_2xx_3xx: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx_3xx


def wrk_argv(
    url: str,
    seconds: float,
    *,
    connections: int,
    headers: Sequence[str] = (),
    threads: int = 1,
    script: str = "",
) -> list[str]:
    """A bounded wrk run with the latency distribution printed (``script``: a wrk Lua file)."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", script]
    argv.append(url)
    return argv


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def parse_duration_s(text: str) -> float:
    """wrk's durations ("812.00us", "1.20ms", "5.00s", "1.00m") in seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise LoadError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)]


_TOTALS = re.compile(r"^\s*(\d+) requests in ([\d.]+\w+), ")
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+(\S+)$")


def parse_wrk(text: str) -> WrkResult:
    """Read wrk's plain-text report (with ``--latency``)."""
    requests = seconds = rate = None
    socket_errors = non_2xx = 0
    latency: dict[str, float] = {}
    for line in text.splitlines():
        if match := _TOTALS.match(line):
            requests = int(match.group(1))
            seconds = parse_duration_s(match.group(2))
        elif match := _RATE.match(line):
            rate = float(match.group(1))
        elif match := _SOCKET_ERRORS.search(line):
            socket_errors = sum(int(group) for group in match.groups())
        elif match := _NON_2XX.search(line):
            non_2xx = int(match.group(1))
        elif match := _PERCENTILE.match(line):
            latency[f"p{match.group(1)}"] = parse_duration_s(match.group(2)) * 1e3
    if requests is None or seconds is None or rate is None:
        raise LoadError(f"wrk printed no totals: {text[-300:]!r}")
    return WrkResult(requests, seconds, rate, socket_errors, non_2xx, latency)


def run_wrk(
    url: str,
    seconds: float,
    *,
    connections: int,
    headers: Sequence[str] = (),
    script: str = "",
) -> WrkResult:
    argv = wrk_argv(url, seconds, connections=connections, headers=headers, script=script)
    return parse_wrk(_run(argv, seconds + RUN_GRACE_S))


def wrk_load(url: str, seconds: float, connections: int,
             headers: Sequence[str] = (), script: str = "") -> LoadResult:
    """One bounded wrk run against ``url``, as the harness's ``LoadResult`` (rate = req/s)."""
    result = run_wrk(url, seconds, connections=connections, headers=headers, script=script)
    return LoadResult(
        rate=result.requests_per_s, work=result.requests, errors=result.errors,
        details={"requests": result.requests, "seconds": result.seconds,
                 **{f"latency_{k}_ms": v for k, v in result.latency_ms.items()}},
    )
