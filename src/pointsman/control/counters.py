"""Per-listener request and error counts, taken where every listener already reports.

Every listener reports each connection (TCP), request (HTTP) or socket
(gateway) to its access sink: a whole record when the access log is on,
else just ``count(listener, error)``. Counting there gives the dashboard and
the leader's ``/metrics`` requests/s and error rates for every listener kind
at once, without each kind keeping its own counters; the records still go on
to the real access log.
"""

from __future__ import annotations

from typing import Any, Protocol

from pointsman.serve.context import FAILURE_CLOSE_CODES, failed_connection

__all__ = ["CountingSink", "is_error"]


class Log(Protocol):
    """The real access log behind the counts."""

    @property
    def enabled(self) -> bool: ...

    def write(self, record: dict[str, Any]) -> None: ...


def is_error(record: dict[str, Any]) -> bool:
    """Whether an access record tells of a failure of the router (5xx, a failed
    connection, a socket the router closed for a failure); as the listeners'
    own ``count`` calls decide when the log is off."""
    status = record.get("status")
    if isinstance(status, int):
        return status >= 500
    code = record.get("code")
    if isinstance(code, int):
        return code in FAILURE_CLOSE_CODES
    return failed_connection(str(record.get("reason", "")))


class CountingSink:
    """An access-log sink that counts before it forwards."""

    def __init__(self, inner: Log) -> None:
        self.inner = inner
        # Plain dicts: the interpreter's fast paths skip dict subclasses such as Counter.
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        """Records are wanted only when the real access log takes them."""
        return self.inner.enabled

    def count(self, listener: str, error: bool) -> None:
        requests = self.requests
        requests[listener] = requests.get(listener, 0) + 1
        if error:
            errors = self.errors
            errors[listener] = errors.get(listener, 0) + 1

    def write(self, record: dict[str, Any]) -> None:
        self.count(str(record.get("listener", "")), is_error(record))
        self.inner.write(record)
