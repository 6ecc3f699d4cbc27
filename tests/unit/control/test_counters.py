"""Per-listener counts: from whole records when the access log is on, from ``count`` when off."""

from __future__ import annotations

from typing import Any

from pointsman.control.counters import CountingSink


class Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_records_are_counted_and_passed_on_when_the_log_is_on() -> None:
    log = Log(enabled=True)
    sink = CountingSink(log)
    assert sink.enabled
    sink.write({"listener": "web", "status": 200})
    sink.write({"listener": "web", "status": 502})
    sink.write({"listener": "db", "reason": "connect_failed"})
    sink.write({"listener": "db", "reason": "client_closed"})
    sink.write({"listener": "db", "reason": "pool_exhausted:timeout"})
    sink.write({"listener": "ws", "code": 1013, "reason": "try again later"})
    sink.write({"listener": "ws", "code": 1000, "reason": "no_endpoint"})  # the client's words
    assert sink.requests == {"web": 2, "db": 3, "ws": 2}
    assert sink.errors == {"web": 1, "db": 2, "ws": 1}
    assert len(log.records) == 7


def test_a_log_that_is_off_wants_no_records_only_counts() -> None:
    sink = CountingSink(Log(enabled=False))
    assert not sink.enabled
    sink.count("web", False)
    sink.count("web", True)
    assert sink.requests == {"web": 2} and sink.errors == {"web": 1}
