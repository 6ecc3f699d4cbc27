"""The leader's view of one worker, and how soon a crashed one comes back.

A worker is a forked process plus the leader's end of its channel. Its
``ready`` future resolves with the listeners it reports (or fails if it exits
or gives up before that); ``exited`` resolves with its exit status however it
ends. ``retiring`` marks a worker the leader asked to leave, so its exit is
not a crash.

Restarts back off per slot: a worker that crashes again soon after it
started waits twice as long as last time before its replacement starts, up
to ``RESTART_MAX_DELAY``; one that ran for ``STABLE_AFTER`` seconds resets
the count, as a crash loop must not spin the machine but a rare crash must
be repaired at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pointsman.control.channel import Channel

__all__ = ["Backoff", "StartFailed", "Worker", "describe_status"]

RESTART_MIN_DELAY = 0.05
RESTART_MAX_DELAY = 5.0
STABLE_AFTER = 10.0


class StartFailed(Exception):
    """A worker (or a whole generation) did not become ready; the message says why."""


@dataclass(eq=False)
class Worker:
    pid: int
    slot: int
    generation: int
    channel: Channel | None
    ready: asyncio.Future[dict[str, Any]]
    exited: asyncio.Future[int]
    started: float = field(default_factory=time.monotonic)
    retiring: bool = False
    failure: str = ""
    listeners: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    published_routes: int | None = None  # route keys in its table, as it last reported
    on_reply: Callable[[dict[str, Any]], None] | None = None
    on_endpoint_failed: Callable[[str, str], object] | None = None

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ready" and not self.ready.done():
            self.listeners = message.get("listeners") or {}
            self.ready.set_result(message)
        elif kind == "failed":
            self.failure = str(message.get("error", ""))
        elif kind == "stats":
            self.stats = message
        elif kind == "routes":
            self.published_routes = int(message.get("published") or 0)
        elif kind == "reply" and self.on_reply is not None:
            self.on_reply(message)
        elif kind == "endpoint_failed" and self.on_endpoint_failed is not None:
            self.on_endpoint_failed(str(message.get("route", "")),
                                    str(message.get("address", "")))

    def send(self, signum: int) -> None:
        if self.exited.done():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def retire(self, signum: int = signal.SIGQUIT) -> None:
        self.retiring = True
        self.send(signum)

    def on_exit(self, status: int) -> None:
        """Called with the raw ``waitpid`` status once the process is gone."""
        if self.channel is not None:
            self.channel.drain_inbox()
            self.channel.close()
        if not self.ready.done():
            reason = self.failure or f"worker {self.pid} {describe_status(status)} before ready"
            self.ready.set_exception(StartFailed(reason))
            self.ready.exception()  # retrieved: a refused start is reported by the caller
        if not self.exited.done():
            self.exited.set_result(status)

    @property
    def is_ready(self) -> bool:
        ready = self.ready
        return ready.done() and not ready.cancelled() and ready.exception() is None

    @property
    def alive(self) -> bool:
        return not self.exited.done()


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"was killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Backoff:
    """Delay before restarting a slot's worker, doubling while it keeps crashing."""

    def __init__(self) -> None:
        self._crashes: dict[int, int] = {}

    def next_delay(self, slot: int, lived: float) -> float:
        crashes = 0 if lived >= STABLE_AFTER else self._crashes.get(slot, 0)
        self._crashes[slot] = crashes + 1
        return float(min(RESTART_MAX_DELAY, RESTART_MIN_DELAY * 2 ** crashes))
