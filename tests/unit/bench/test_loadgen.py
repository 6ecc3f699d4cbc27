"""Parsing what iperf3 and wrk print, on output captured from real runs."""

from __future__ import annotations

import json

import pytest
from bench.loadgen import (
    GIB,
    LoadError,
    iperf3_argv,
    parse_duration_s,
    parse_iperf3,
    parse_wrk,
    wrk_argv,
)
from bench.peerconf import Addr

WRK_CLOSE = """\
Running 1s test @ http://127.0.0.1:57619/small.txt
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   371.89us  235.68us   2.80ms   71.60%
    Req/Sec     9.02k   651.73    10.39k    63.64%
  Latency Distribution
     50%  318.00us
     75%  500.00us
     90%  656.00us
     99%    1.14ms
  9856 requests in 1.10s, 3.39MB read
Requests/sec:   8961.91
Transfer/sec:      3.09MB
"""

WRK_ERRORS = """\
Running 2s test @ http://127.0.0.1:57619/missing.txt
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   284.02us  249.09us   4.16ms   94.22%
    Req/Sec    31.67k     7.01k   42.68k    81.82%
  Latency Distribution
     50%  229.00us
     75%  272.00us
     90%  368.00us
     99%    1.58s
  34533 requests in 1.00m, 10.14MB read
  Socket errors: connect 1, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 34533
Requests/sec:  31382.74
Transfer/sec:      9.22MB
"""


def test_wrk_totals_rate_and_latency() -> None:
    result = parse_wrk(WRK_CLOSE)
    assert result.requests == 9856
    assert result.seconds == pytest.approx(1.10)
    assert result.requests_per_s == pytest.approx(8961.91)
    assert result.errors == 0
    assert result.latency_ms == pytest.approx(
        {"p50": 0.318, "p75": 0.5, "p90": 0.656, "p99": 1.14}
    )


def test_wrk_counts_socket_errors_and_bad_statuses() -> None:
    result = parse_wrk(WRK_ERRORS)
    assert result.seconds == pytest.approx(60.0)
    assert result.socket_errors == 6
    assert result.non_2xx_3xx == 34533
    assert result.errors == 34539
    assert result.latency_ms["p99"] == pytest.approx(1580.0)


def test_wrk_without_totals_is_a_load_error() -> None:
    with pytest.raises(LoadError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("812.00us", 812e-6), ("1.20ms", 1.2e-3), ("5.00s", 5.0), ("1.00m", 60.0), ("2h", 7200.0)],
)
def test_wrk_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_wrk_duration_rejects_garbage() -> None:
    with pytest.raises(LoadError):
        parse_duration_s("fast")


def test_wrk_argv_is_bounded_single_threaded() -> None:
    argv = wrk_argv("http://127.0.0.1:1/x", 2.5, connections=32, headers=["Connection: close"])
    assert argv == [
        "wrk", "-t", "1", "-c", "32", "-d", "2.5s", "--latency",
        "-H", "Connection: close", "http://127.0.0.1:1/x",
    ]
    scripted = wrk_argv("http://127.0.0.1:1/x", 1, connections=2, script="bench/u.lua")
    assert scripted[-3:] == ["-s", "bench/u.lua", "http://127.0.0.1:1/x"]


def _iperf3_json(received_bytes: int, seconds: float) -> str:
    return json.dumps(
        {
            "start": {"version": "iperf 3.12"},
            "intervals": [],
            "end": {
                "sum_sent": {"bytes": received_bytes, "seconds": seconds, "retransmits": 3,
                             "bits_per_second": received_bytes * 8 / seconds, "sender": True},
                "sum_received": {"bytes": received_bytes, "seconds": seconds,
                                 "bits_per_second": received_bytes * 8 / seconds,
                                 "sender": True},
            },
        }
    )


def test_iperf3_receiver_totals() -> None:
    result = parse_iperf3(_iperf3_json(2 * GIB, 2.0))
    assert result.bytes == 2 * GIB
    assert result.gib == 2.0
    assert result.gbit_per_s == pytest.approx(2 * GIB * 8 / 2.0 / 1e9)
    assert result.retransmits == 3


def test_iperf3_error_is_a_load_error() -> None:
    text = json.dumps(
        {"start": {}, "intervals": [], "end": {},
         "error": "unable to connect to server: Connection refused"}
    )
    with pytest.raises(LoadError, match="Connection refused"):
        parse_iperf3(text)


@pytest.mark.parametrize("text", ["", "not json", json.dumps({"end": {}})])
def test_iperf3_without_totals_is_a_load_error(text: str) -> None:
    with pytest.raises(LoadError):
        parse_iperf3(text)


def test_iperf3_argv() -> None:
    assert iperf3_argv(Addr("127.0.0.1", 5201), 5.0) == [
        "iperf3", "-c", "127.0.0.1", "-p", "5201", "-t", "5", "-J",
    ]
    assert iperf3_argv(Addr("127.0.0.1", 5201), 1.5, reverse=True)[-3:] == ["1.5", "-J", "-R"]
