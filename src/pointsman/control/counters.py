"""Per-listener request and error counts, taken where every listener already reports.

Every listener writes one access record per connection (TCP) or request
(HTTP, WebSocket message); counting those records gives the dashboard and the
leader's ``/metrics`` requests/s and error rates for every listener kind at
once, without each kind keeping its own counters. The records still go on to
the real access log, when one is configured.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pointsman.serve.context import RecordSink

__all__ = ["ERROR_REASONS", "CountingSink", "is_error"]

# TCP end reasons that mean the router failed the client (not the client leaving).
ERROR_REASONS = frozenset({"bad_decision", "route_error", "no_endpoint", "connect_failed",
                           "connect_timeout", "backend_error", "decision_timeout",
                           "buffer_limit"})


def is_error(record: dict[str, Any]) -> bool:
    status = record.get("status")
    if isinstance(status, int):
        return status >= 500
    return record.get("reason") in ERROR_REASONS


class CountingSink:
    """An access-log sink that counts before it forwards."""

    enabled = True

    def __init__(self, inner: RecordSink) -> None:
        self.inner = inner
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def write(self, record: dict[str, Any]) -> None:
        listener = str(record.get("listener", ""))
        self.requests[listener] += 1
        if is_error(record):
            self.errors[listener] += 1
        if self.inner.enabled:
            self.inner.write(record)
