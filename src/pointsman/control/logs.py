"""JSON-lines logs: one object per line, for machines first and people second.

Access records keep only ``[logging] access_fields`` when that is set, in
that order (``["ts", "client", "backend", "status", "duration_ms"]``).

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

    def __init__(self, target: str, level: str = "info", buffered: bool = False,
                 fields: list[str] | None = None) -> None:
        self.target = target
        self.fields = list(fields or ())
        self.threshold = LEVELS[level]
        self.buffered = buffered
        self.enabled = target != "off"
        self._stream: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self.reopen_failed = 0
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
            try:
                self._stream = open(self.target, "ab")  # noqa: SIM115 - owned until reopen/close
            except OSError:
                if old is None:
                    raise
                # A worker that dropped its privileges may not open the file again
                # (a folder it cannot enter): it keeps writing where it wrote.
                self.reopen_failed += 1
                return
        if old is not None and old not in (sys.stdout.buffer, sys.stderr.buffer):
            old.close()

    def wants(self, level: str) -> bool:
        return self.enabled and LEVELS[level] >= self.threshold

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; buffered logs are written by ``flush``."""
        if not self.enabled:
            return
        if self.fields:
            record = {key: record[key] for key in self.fields if key in record}
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
            # Workers share stdout/stderr pipes: a write of at most PIPE_BUF bytes is
            # atomic, so lines from two processes never interleave mid-line.
            for chunk in _chunks(lines):
                stream.write(chunk)
                stream.flush()
        except (OSError, ValueError):  # a closed pipe must never take the router down
            self.enabled = False

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._stream not in (sys.stdout.buffer, sys.stderr.buffer):
            self._stream.close()
        self._stream = None


PIPE_BUF = 4096


def _chunks(lines: list[bytes]) -> list[bytes]:
    """Whole lines grouped into writes of at most ``PIPE_BUF`` bytes (a longer line alone)."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > PIPE_BUF:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    return chunks


def open_log(target: str, level: str = "info", buffered: bool = False) -> JsonLog:
    return JsonLog(target, level, buffered)
