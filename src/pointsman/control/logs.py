"""JSON-lines logs: one object per line, for machines first and people second.

Two streams: *events* (start, ready, reload, errors with tracebacks) and
*access* records (one per connection or request). Access records are buffered
and flushed on a short timer so a busy listener does not pay a write syscall per
connection; events are flushed at once because people wait for them. Callers
check ``enabled`` before building a record, so a disabled log costs nothing.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import msgspec

__all__ = ["LEVELS", "JsonLog", "open_log"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_encode = msgspec.json.Encoder().encode


class JsonLog:
    """A JSON-lines sink; ``target`` is ``stdout``, ``stderr``, ``off`` or a file path."""

    def __init__(self, target: str, level: str = "info", buffered: bool = False) -> None:
        self.target = target
        self.threshold = LEVELS[level]
        self.buffered = buffered
        self.enabled = target != "off"
        self._stream: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self.reopen()

    def reopen(self) -> None:
        """Open (again) the target; a rotated file is picked up here."""
        self.flush()
        old = self._stream
        if self.target == "stdout":
            self._stream = sys.stdout.buffer
        elif self.target == "stderr":
            self._stream = sys.stderr.buffer
        elif self.enabled:
            self._stream = open(self.target, "ab")  # noqa: SIM115 - owned until reopen/close
        if old is not None and old not in (sys.stdout.buffer, sys.stderr.buffer):
            old.close()

    def wants(self, level: str) -> bool:
        return self.enabled and LEVELS[level] >= self.threshold

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; buffered logs are written by ``flush``."""
        if not self.enabled:
            return
        line = _encode(record) + b"\n"
        if self.buffered:
            self._pending.append(line)
            return
        self._emit([line])

    def event(self, level: str, name: str, **fields: Any) -> None:
        """A named event with a timestamp and level, written at once."""
        if not self.wants(level):
            return
        record = {"ts": round(time.time(), 6), "level": level, "event": name}
        record.update(fields)
        self._emit([_encode(record) + b"\n"])

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self._emit(lines)

    def _emit(self, lines: list[bytes]) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            stream.write(b"".join(lines))
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must never take the router down
            self.enabled = False

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._stream not in (sys.stdout.buffer, sys.stderr.buffer):
            self._stream.close()
        self._stream = None


def open_log(target: str, level: str = "info", buffered: bool = False) -> JsonLog:
    return JsonLog(target, level, buffered)
