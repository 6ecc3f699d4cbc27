"""Per-connection backends: the pool policy as a pure state machine.

soh-router gives every connection a fresh backend, keeps the next one warm and
throws each away when its connection ends. This module decides *when* to do
each of those things; it never starts, probes or stops anything itself. Every
input is a method call with the current time passed in (``now``, seconds on any
monotonic clock), and every output is a list of actions for a driver to carry
out (``serve/provision.py`` is the asyncio one):

``Start(id)``      start a backend and probe it until ready, then call ``started``
                   (or ``start_failed``).
``Stop(id)``       stop and remove that backend, then call ``stopped``.
``Grant(w, id)``   hand backend ``id`` to waiter ``w``; it is now BUSY, its own.
``Reject(w)``      waiter ``w`` gets no backend (queue full, timed out, closing).
``Revoke(id)``     a BUSY backend outlived ``max_lifetime`` or ``max_idle``: end its
                   connection; the connection's ``release`` then stops it.

A backend's life: STARTING -> READY -> BUSY -> STOPPING -> gone; a failed start
or a READY backend past its lifetime goes straight to STOPPING. No backend is
ever granted twice: a grant moves it to BUSY and only ``give_back`` (the waiter
vanished before it could use it) returns it to READY.

Rules, in the order ``_plan`` applies them:
1. READY backends go to waiters first come, first served.
2. Starts are wanted for ``warm`` spare backends plus one per waiter, limited by
   ``max_live`` (STARTING + READY + BUSY; STOPPING ones are on their way out) and
   ``max_starting`` (engines serialise starts; a burst only slows the first).
3. After a failed start no start is planned before a backoff delay that
   doubles per consecutive failure (capped), so a broken image does not loop hot.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "Action",
    "Backend",
    "Grant",
    "Histogram",
    "Phase",
    "PoolExhausted",
    "PoolMachine",
    "PoolPolicy",
    "ProvisionError",
    "Reject",
    "Revoke",
    "Start",
    "StartFailed",
    "Stop",
]

DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0,
                           5.0, 10.0, 30.0)
MAX_BACKOFF_EXPONENT = 16


class ProvisionError(Exception):
    """Base of provisioning errors; each carries the upstream it belongs to.

    ::

        ProvisionError
        ├── PoolExhausted   no backend for this connection (503 / close 1013 / TCP close)
        └── StartFailed     a provider could not start or ready one backend
    """

    def __init__(self, upstream: str, message: str) -> None:
        self.upstream = upstream
        super().__init__(f"{upstream}: {message}")


class PoolExhausted(ProvisionError):
    """No backend could be given to a connection; ``reason`` says why.

    ``status_hint`` and ``close_code`` are what HTTP and WebSocket clients see:
    503 and 1013 ("try again later"); a TCP client just sees its connection close.
    """

    status_hint = 503
    close_code = 1013
    close_reason = "try again later"

    def __init__(self, upstream: str, reason: str, waited: float = 0.0) -> None:
        self.reason = reason
        self.waited = waited
        super().__init__(upstream, f"no backend available ({reason}, waited {waited:.3f}s)")


class StartFailed(ProvisionError):
    """A backend did not start or never passed its readiness probe."""

    def __init__(self, upstream: str, backend_id: str, reason: str) -> None:
        self.backend_id = backend_id
        self.reason = reason
        super().__init__(upstream, f"backend {backend_id} failed to start: {reason}")


class Phase(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """The knobs of one pool; times in seconds, ``0`` meaning "no limit" where noted."""

    warm: int = 1
    max_live: int = 16
    max_starting: int = 2
    max_queue: int = 1024
    queue_timeout: float = 10.0
    max_lifetime: float = 0.0  # 0: unlimited
    max_idle: float = 0.0  # 0: unlimited; needs the connection to report activity
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.warm < 0 or self.max_live < 1 or self.max_starting < 1 or self.max_queue < 0:
            raise ValueError("expected warm >= 0, max_live >= 1, max_starting >= 1, "
                             "max_queue >= 0")
        if min(self.queue_timeout, self.max_lifetime, self.max_idle,
               self.backoff_initial, self.backoff_max) < 0:
            raise ValueError("times must not be negative")


@dataclass(slots=True)
class Backend:
    """One backend as the pool sees it: where it is, what phase, since when."""

    id: str
    phase: Phase
    created: float
    ready_at: float | None = None
    leased_at: float | None = None
    last_active: float = 0.0
    host: str = ""
    port: int = 0
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Start:
    backend_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    backend_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Grant:
    waiter: int
    backend_id: str
    waited: float


@dataclass(frozen=True, slots=True)
class Reject:
    waiter: int
    reason: str
    waited: float


@dataclass(frozen=True, slots=True)
class Revoke:
    backend_id: str
    reason: str


Action = Start | Stop | Grant | Reject | Revoke


class Histogram:
    """Cumulative-bucket counts in the Prometheus shape, kept without a client library."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count <= le), ..., ("+Inf", total)]``."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class Counters:
    """Totals since the pool was made, for metrics and the admin API."""

    started: int = 0
    leases: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, int] = field(default_factory=dict)
    start_latency: Histogram = field(default_factory=Histogram)
    queue_wait: Histogram = field(default_factory=Histogram)


def _bump(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


class PoolMachine:
    """The whole pool policy; one instance per provision upstream.

    ``id_prefix`` makes backend ids unique across restarts and instances (the
    docker provider uses the id as the container name).
    """

    def __init__(self, policy: PoolPolicy, id_prefix: str = "b") -> None:
        self.policy = policy
        self.id_prefix = id_prefix
        self.backends: dict[str, Backend] = {}
        self.counters = Counters()
        self._waiters: OrderedDict[int, tuple[float, float]] = OrderedDict()  # (since, deadline)
        self._seq = itertools.count(1)
        self._failures_in_row = 0
        self._not_before = 0.0
        self._closed = False

    # ----------------------------------------------------------------- views
    def count(self, phase: Phase) -> int:
        return sum(1 for backend in self.backends.values() if backend.phase is phase)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def backoff_until(self) -> float:
        return self._not_before if self._failures_in_row else 0.0

    def _in(self, phase: Phase) -> Iterator[Backend]:
        return (backend for backend in self.backends.values() if backend.phase is phase)

    # ---------------------------------------------------------------- inputs
    def acquire(self, waiter: int, now: float, timeout: float | None = None) -> list[Action]:
        """A new connection wants a backend of its own; it waits at most ``timeout``.

        ``timeout`` defaults to the policy's ``queue_timeout``; ``0`` means "only
        if one is ready now".
        """
        if self._closed:
            return [self._reject_new(waiter, "closed")]
        if waiter in self._waiters:
            raise ValueError(f"waiter {waiter} is already queued")
        if len(self._waiters) >= self.policy.max_queue and not self._has_ready():
            return [self._reject_new(waiter, "queue_full")]
        timeout = self.policy.queue_timeout if timeout is None else max(0.0, timeout)
        self._waiters[waiter] = (now, now + timeout)
        actions = self._plan(now)
        if waiter in self._waiters and timeout == 0:
            del self._waiters[waiter]
            actions.append(self._reject_new(waiter, "timeout"))
        return actions

    def cancel(self, waiter: int, now: float) -> list[Action]:
        """The waiting connection went away; any start it caused stays as a warm spare."""
        self._waiters.pop(waiter, None)
        return []

    def started(self, backend_id: str, host: str, port: int, now: float) -> list[Action]:
        """A start the machine asked for passed its readiness probe."""
        backend = self.backends.get(backend_id)
        if backend is None or backend.phase is not Phase.STARTING:
            raise ValueError(f"backend {backend_id} is not starting")
        backend.phase = Phase.READY
        backend.ready_at = now
        backend.host, backend.port = host, port
        self.counters.started += 1
        self.counters.start_latency.observe(now - backend.created)
        self._failures_in_row = 0
        if self._closed:
            backend.phase = Phase.STOPPING
            return [Stop(backend_id, "closed")]
        return self._plan(now)

    def start_failed(self, backend_id: str, reason: str, now: float) -> list[Action]:
        """A start failed or timed out; whatever was made must be removed."""
        backend = self.backends.get(backend_id)
        if backend is None or backend.phase is not Phase.STARTING:
            raise ValueError(f"backend {backend_id} is not starting")
        backend.phase = Phase.STOPPING
        _bump(self.counters.failures, reason)
        self._failures_in_row += 1
        exponent = min(self._failures_in_row - 1, MAX_BACKOFF_EXPONENT)
        delay = min(self.policy.backoff_initial * (2 ** exponent), self.policy.backoff_max)
        self._not_before = now + delay
        return [Stop(backend_id, f"start_failed:{reason}"), *self._plan(now)]

    def give_back(self, backend_id: str, now: float) -> list[Action]:
        """A grant reached a waiter that had already gone: the backend is unused, keep it."""
        backend = self.backends.get(backend_id)
        if backend is None or backend.phase is not Phase.BUSY:
            raise ValueError(f"backend {backend_id} is not leased")
        backend.phase = Phase.READY
        backend.leased_at = None
        self.counters.leases -= 1
        if self._closed or backend.revoked:
            backend.phase = Phase.STOPPING
            return [Stop(backend_id, "closed" if self._closed else "lifetime")]
        return self._plan(now)

    def release(self, backend_id: str, now: float) -> list[Action]:
        """The connection ended: its backend is never reused."""
        backend = self.backends.get(backend_id)
        if backend is None or backend.phase is not Phase.BUSY:
            return []  # released twice, or already being stopped: nothing to do
        backend.phase = Phase.STOPPING
        return [Stop(backend_id, "released"), *self._plan(now)]

    def stopped(self, backend_id: str, reason: str, now: float) -> list[Action]:
        """The driver finished stopping (and removing) a backend."""
        backend = self.backends.pop(backend_id, None)
        if backend is None:
            return []
        _bump(self.counters.stopped, reason.split(":", 1)[0])
        return self._plan(now)

    def touch(self, backend_id: str, now: float) -> None:
        """The connection on this backend moved bytes (for ``max_idle``)."""
        backend = self.backends.get(backend_id)
        if backend is not None:
            backend.last_active = now

    def tick(self, now: float) -> list[Action]:
        """Time passed: expire waiters and backends, end a backoff."""
        actions: list[Action] = []
        for waiter, (since, deadline) in list(self._waiters.items()):
            if now < deadline:
                continue
            del self._waiters[waiter]
            _bump(self.counters.rejected, "timeout")
            self.counters.queue_wait.observe(now - since)
            actions.append(Reject(waiter, "timeout", now - since))
        lifetime, idle = self.policy.max_lifetime, self.policy.max_idle
        for backend in list(self.backends.values()):
            if backend.phase is Phase.READY and lifetime and now - backend.created >= lifetime:
                backend.phase = Phase.STOPPING
                actions.append(Stop(backend.id, "lifetime"))
            elif backend.phase is Phase.BUSY and not backend.revoked:
                reason = ""
                if lifetime and now - backend.created >= lifetime:
                    reason = "lifetime"
                elif idle and now - backend.last_active >= idle:
                    reason = "idle"
                if reason:
                    backend.revoked = True
                    _bump(self.counters.revoked, reason)
                    actions.append(Revoke(backend.id, reason))
        actions.extend(self._plan(now))
        return actions

    def close(self, now: float) -> list[Action]:
        """Shut down: refuse waiters, stop spares, end leased connections."""
        self._closed = True
        actions: list[Action] = []
        for waiter, (since, _) in self._waiters.items():
            _bump(self.counters.rejected, "closed")
            actions.append(Reject(waiter, "closed", now - since))
        self._waiters.clear()
        for backend in self.backends.values():
            if backend.phase is Phase.READY:
                backend.phase = Phase.STOPPING
                actions.append(Stop(backend.id, "closed"))
            elif backend.phase is Phase.BUSY and not backend.revoked:
                backend.revoked = True
                actions.append(Revoke(backend.id, "closed"))
        return actions

    def next_wakeup(self) -> float | None:
        """The earliest time at which ``tick`` would do something, if any."""
        times: list[float] = []
        if self._waiters:
            times.append(min(deadline for _, deadline in self._waiters.values()))
        if self._failures_in_row and not self._closed and self._starts_wanted() > 0:
            times.append(self._not_before)
        lifetime, idle = self.policy.max_lifetime, self.policy.max_idle
        for backend in self.backends.values():
            if backend.phase is Phase.READY and lifetime:
                times.append(backend.created + lifetime)
            elif backend.phase is Phase.BUSY and not backend.revoked:
                if lifetime:
                    times.append(backend.created + lifetime)
                if idle:
                    times.append(backend.last_active + idle)
        return min(times) if times else None

    # -------------------------------------------------------------- planning
    def _has_ready(self) -> bool:
        return any(True for _ in self._in(Phase.READY))

    def _reject_new(self, waiter: int, reason: str) -> Reject:
        _bump(self.counters.rejected, reason)
        self.counters.queue_wait.observe(0.0)
        return Reject(waiter, reason, 0.0)

    def _starts_wanted(self) -> int:
        starting = self.count(Phase.STARTING)
        ready = self.count(Phase.READY)
        busy = self.count(Phase.BUSY)
        want = self.policy.warm + len(self._waiters) - ready - starting
        room = min(self.policy.max_live - (starting + ready + busy),
                   self.policy.max_starting - starting)
        return max(0, min(want, room))

    def _plan(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self._waiters:
            for backend in list(self._in(Phase.READY)):
                if not self._waiters:
                    break
                waiter, (since, _) = self._waiters.popitem(last=False)
                backend.phase = Phase.BUSY
                backend.leased_at = backend.last_active = now
                self.counters.leases += 1
                self.counters.queue_wait.observe(now - since)
                actions.append(Grant(waiter, backend.id, now - since))
        if self._closed or (self._failures_in_row and now < self._not_before):
            return actions
        for _ in range(self._starts_wanted()):
            backend_id = f"{self.id_prefix}-{next(self._seq)}"
            self.backends[backend_id] = Backend(backend_id, Phase.STARTING, created=now,
                                                last_active=now)
            actions.append(Start(backend_id))
        return actions

    def describe(self, now: float) -> dict[str, object]:
        """The state as plain data, for the admin API."""
        return {
            "policy": {
                "warm": self.policy.warm, "max_live": self.policy.max_live,
                "max_starting": self.policy.max_starting, "max_queue": self.policy.max_queue,
                "queue_timeout": self.policy.queue_timeout,
                "max_lifetime": self.policy.max_lifetime, "max_idle": self.policy.max_idle,
            },
            "counts": {phase.value: self.count(phase) for phase in Phase},
            "waiting": len(self._waiters),
            "backoff_remaining": round(max(0.0, self.backoff_until - now), 3),
            "consecutive_failures": self._failures_in_row,
            "backends": [
                {"id": b.id, "phase": b.phase.value, "host": b.host, "port": b.port,
                 "age": round(now - b.created, 3),
                 "leased_for": round(now - b.leased_at, 3) if b.leased_at is not None else None}
                for b in self.backends.values()
            ],
            "totals": {
                "started": self.counters.started, "leases": self.counters.leases,
                "failures": dict(self.counters.failures),
                "rejected": dict(self.counters.rejected),
                "revoked": dict(self.counters.revoked),
                "stopped": dict(self.counters.stopped),
            },
        }
