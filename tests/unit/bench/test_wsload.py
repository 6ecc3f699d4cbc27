"""The WebSocket load generator's argv and output parsing, and the gateway scenarios."""

from __future__ import annotations

import json

from bench.scenarios import SCENARIOS
from bench.wsload import parse_wsload, wsload_argv


def test_argv_names_every_knob() -> None:
    argv = wsload_argv("ws://127.0.0.1:1/ws", 2.5, connections=8, window=2, encoding="msgpack")
    assert argv[1:4] == ["-m", "bench.wsload", "ws://127.0.0.1:1/ws"]
    assert argv[4:] == ["--seconds", "2.5", "--connections", "8", "--window", "2",
                        "--encoding", "msgpack"]


def test_parse_takes_the_last_line() -> None:
    out = "warming up\n" + json.dumps({"messages": 100, "seconds": 2.0, "rate": 50.0,
                                       "p50_ms": 1.5, "p99_ms": 9.0, "errors": 1})
    result = parse_wsload(out)
    assert result.rate == 50.0 and result.p99_ms == 9.0 and result.errors == 1


def test_gateway_scenarios_are_registered() -> None:
    for name in ("gateway_json", "gateway_msgpack"):
        scenario = SCENARIOS[name]
        assert [peer.name for peer in scenario.peers()] == ["pointsman", "nginx", "direct"]
