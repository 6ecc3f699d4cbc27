"""A worker process: what a forked child does until it exits.

The leader forks a worker from inside its own running event loop, so the
child first takes apart what it inherited and must not use: the leader's loop
(``asyncio`` still thinks it is running), the signal wake-up descriptor that
points into the leader's loop, the leader's signal handlers, and every file
descriptor it does not need (the admin server's sockets, other workers'
pipes and sockets). Those descriptors are not closed but pointed at
``/dev/null``: the leader's Python objects still exist in the child's memory
and may close their numbers one day, which must never hit a descriptor the
worker opened since. This is what Python 3.12 does itself after ``fork``
for the loop, and what nginx does for the rest.

Then the worker runs an ordinary ``Runtime`` on a fresh (uv)loop, with the
listening sockets the leader bound, tells the leader it is ready over its
channel, reports its counters every second, and exits when told (QUIT
drains, TERM cuts) or when the channel says the leader is gone.

After each route table it publishes, a worker also tells the leader how many
route keys it now routes by (``routes``), at most every
``ROUTES_REPORT_INTERVAL``: the leader's ``published_routes`` gauge is the
fewest any worker routes by, so it says when a registration is routable
everywhere within milliseconds, not at the next one-second stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pointsman.config import Config
from pointsman.control import probes
from pointsman.control.channel import Channel, RouteChange
from pointsman.control.privileges import Identity, drop
from pointsman.control.runtime import Runtime
from pointsman.control.worker_ops import WorkerOps

__all__ = ["LEADER_SIGNALS", "ROUTES_REPORT_INTERVAL", "STATS_INTERVAL", "RoutesReporter",
           "WorkerSpec", "run_worker"]

LEADER_SIGNALS = frozenset({signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT,
                            signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD})
STATS_INTERVAL = 1.0
ROUTES_REPORT_INTERVAL = 0.02
"""At most this often a worker reports its published route count to the leader.

The first publish after a quiet spell is reported at once; publishes within
this interval of a report are folded into one report at its end, so a flood
of registrations (a publish every few milliseconds) costs the leader a tiny
message every 20 ms, and the count it shows lags the worker by no more.
"""
BUILT_IN_PROBES = (probes.gateway, probes.provision)  # registered in WORKER_CALLS on import
EXIT_START_FAILED = 1
EXIT_CRASHED = 70
PROCESS_NAME = b"pointsman-wrk"


@dataclass(slots=True)
class WorkerSpec:
    """Everything a worker is given at fork time."""

    config: Config
    config_path: str | None
    slot: int
    generation: int
    channel: socket.socket
    inherited: dict[str, list[socket.socket]]
    admin_routes: list[str] = field(default_factory=list)  # registration bodies, in order
    drained: set[tuple[str, str]] = field(default_factory=set)  # (upstream, endpoint)
    drained_routes: set[tuple[str, str]] = field(default_factory=set)  # (route key, endpoint)
    nats_routes: list[str] = field(default_factory=list)  # the leader's NATS routes now
    identity: Identity | None = None  # ``[process] user``: who to become before serving

    def descriptors(self) -> set[int]:
        fds = {self.channel.fileno()}
        fds.update(sock.fileno() for socks in self.inherited.values() for sock in socks)
        return fds


def run_worker(spec: WorkerSpec) -> NoReturn:
    """The whole life of a forked child; never returns into the leader's stack."""
    code = EXIT_CRASHED
    try:
        _forget_leader(spec.descriptors())
        _name_process()
        code = _run(_serve(spec))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CRASHED
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _forget_leader(keep: set[int]) -> None:
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop_policy(None)
    signal.set_wakeup_fd(-1)
    for signum in LEADER_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    _blank_descriptors(keep)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, LEADER_SIGNALS)


def _blank_descriptors(keep: set[int]) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(3, 1024)]
    for name in names:
        fd = int(name)
        if fd <= 2 or fd == null or fd in keep:
            continue
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


def _name_process() -> None:
    """Visible in ``ps -o comm`` and ``top``: which pointsman processes are workers."""
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(PROCESS_NAME)
    except OSError:
        pass


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def _serve(spec: WorkerSpec) -> int:
    loop = asyncio.get_running_loop()
    runtime = Runtime(spec.config, spec.config_path, spec.config.process.drain_timeout,
                      spec.inherited)
    runtime.role, runtime.role_level = "worker_", "debug"
    runtime.serve_admin = False
    runtime.sweeps = False
    runtime.provision_worker = str(os.getpid())  # the leader sweeps this label if we crash
    ops = WorkerOps(runtime)
    ops.drained = set(spec.drained)

    def on_message(message: dict[str, Any] | RouteChange) -> None:
        reply = ops.handle(message)
        if reply is not None:
            channel.send(reply)

    channel = Channel(spec.channel, loop, on_message,
                      lambda: runtime._spawn(lambda: runtime.stop(graceful=True)))
    # NATS routes are the leader's: it drops the endpoint and tells every worker.
    runtime.endpoint_failed = lambda key, address: channel.send(
        {"type": "endpoint_failed", "route": key, "address": address})
    channel.start()
    try:
        drop(spec.identity)  # the logs are open; nothing is served or loaded yet
        await runtime.start(announce=False)
        for body in spec.nats_routes:
            ops.apply_route("register", body, "nats")
        for body in spec.admin_routes:
            ops.apply_route("register", body)
        ops.apply_drained()
        for route, endpoint in spec.drained_routes:
            ops.drain_route(route, endpoint, True)
        if runtime.routes.driver is not None:
            runtime.routes.driver.publish_now()  # "ready" routes the leader's NATS routes too
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else str(exc)
        # The leader reports it (start_failed, or worker_start_failed after a crash):
        # here it is detail, or every failed start would be told twice.
        runtime.events.event("debug", "start_failed", pid=os.getpid(), error=error)
        channel.send({"type": "failed", "error": error})
        await asyncio.sleep(0)  # let the message out before exiting
        return EXIT_START_FAILED
    runtime.install_signal_handlers(worker=True)
    routes = RoutesReporter(loop, channel, lambda: len(runtime.routes.holder.table))
    if runtime.routes.driver is not None:
        runtime.routes.driver.on_publish = routes.published
    routes.published()  # what it routes by from the start (the file's routes, a snapshot)
    channel.send({"type": "ready", "pid": os.getpid(), "listeners": runtime.describe()})
    reporter = loop.create_task(_report(ops, channel))
    await runtime.stopped.wait()
    reporter.cancel()
    routes.stop()
    channel.send(ops.stats())  # the final counts, so the leader's totals lose nothing
    await asyncio.sleep(0)
    return 0


class RoutesReporter:
    """Tells the leader how many route keys this worker routes by, soon after each publish."""

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: Channel,
                 count: Callable[[], int], interval: float = ROUTES_REPORT_INTERVAL) -> None:
        self.loop = loop
        self.channel = channel
        self.count = count
        self.interval = interval
        self._last = -interval
        self._sent: int | None = None
        self._handle: asyncio.TimerHandle | None = None

    def published(self) -> None:
        """A table was published: report now, or once at the end of the current interval."""
        if self._handle is not None:
            return
        wait = self._last + self.interval - self.loop.time()
        if wait <= 0:
            self._report()
        else:
            self._handle = self.loop.call_later(wait, self._report)

    def _report(self) -> None:
        self._handle = None
        self._last = self.loop.time()
        count = self.count()
        if count != self._sent:
            self._sent = count
            self.channel.send({"type": "routes", "published": count})

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _report(ops: WorkerOps, channel: Channel) -> None:
    while not channel.closed:
        await asyncio.sleep(STATS_INTERVAL)
        channel.send(ops.stats())
