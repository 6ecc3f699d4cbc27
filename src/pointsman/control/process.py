"""The leader: binds the listening sockets, runs N workers, never serves traffic.

nginx's process model in asyncio. The leader

* binds every listen address once (``control.sockets``), one ``SO_REUSEPORT``
  socket per worker slot, and forks the workers, which inherit them;
* announces ``ready`` (and tells systemd, and a waiting ``--daemon``
  command) when every worker of the first generation accepts and, with
  ``[nats]``, its own ``router.*`` subscriptions are in place: the leader is
  the process that subscribes (``control.fanout``), so ``ready`` means a
  registration published now is routed; an unreachable NATS delays it by at
  most ``nats_registry.READY_WAIT``, with a ``nats_unavailable`` warning;
* on HUP validates the file first, refuses a broken one with every error and
  leaves the running workers alone; a valid one starts a new generation of
  workers on the same sockets, waits until each is ready, and only then asks
  the old generation to quit gracefully, so no connection is refused or reset
  at any moment of a reload;
* restarts a crashed worker, with backoff, and logs the crash; first it
  removes the backends the worker had provisioned (labelled with its pid),
  as no one else will stop them before the leader itself stops;
* on QUIT lets every worker drain (up to ``drain_timeout``) and then exits;
  on TERM or INT stops them at once; on USR1 reopens logs everywhere.

Workers are forked from the running loop (a fork costs milliseconds; a fresh
interpreter a quarter of a second, times every worker, every reload and
every test). ``control.worker`` explains how a child sheds the leader's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from pointsman import __version__
from pointsman.config import Config, ConfigError, ProvisionUpstream, parse_listen, resolve_path
from pointsman.control import notify
from pointsman.control.admin import Admin
from pointsman.control.admin_kv import AdminKv
from pointsman.control.admin_state import AdminState, default_state_file
from pointsman.control.channel import Channel, RouteChange, encode
from pointsman.control.daemon import remove_pidfile, write_pidfile
from pointsman.control.fanout import (
    LeaderRoutePlane,
    nats_snapshot,
    worker_routing_config,
)
from pointsman.control.leader_admin import install_leader
from pointsman.control.logs import JsonLog
from pointsman.control.metrics import Aggregator
from pointsman.control.privileges import hand_over, identity_of, require
from pointsman.control.runtime import SHARED_SOCKETS
from pointsman.control.sockets import SocketTable, format_address
from pointsman.control.supervise import Backoff, StartFailed, Worker, describe_status
from pointsman.control.validate import validate
from pointsman.control.worker import LEADER_SIGNALS, WorkerSpec, run_worker
from pointsman.serve.provision import sweep_leftovers
from pointsman.wire.gorouter import RegistryMessage, decode_registration

__all__ = ["Leader", "serve", "worker_count"]

FAST_STOP_TIMEOUT = 5.0
WORKER_SWEEP_TIMEOUT = 10.0
LATE_SWEEP_DELAY = 3.0
"""Seconds after a crashed worker's sweep before the second one (creates in flight)."""
KV_FIRST_SYNC_WAIT = 3.0  # seconds "ready" waits for the routes bucket when NATS is up
KILL_WAIT = 2.0
CALL_TIMEOUT = 2.0


def worker_count(config: Config) -> int:
    workers = config.process.workers
    if workers == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:
            return max(1, os.cpu_count() or 1)
    return int(workers)


class Leader:
    """Supervises the workers of one config, across reloads, until told to stop."""

    def __init__(self, config: Config, config_path: str | None = None,
                 pidfile: Path | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.pidfile = pidfile
        self.report = report
        self.events = JsonLog(config.logging.events, config.logging.level)
        self.sockets = SocketTable()
        self.workers: dict[int, Worker] = {}  # every live worker by pid, any generation
        self.current: dict[int, Worker] = {}  # the serving generation by slot
        self.worker_config = config  # ``config`` with its port-0 addresses made concrete
        self.generation = 0
        self.listeners: dict[str, list[str]] = {}
        self.started = time.time()
        self.reloads = 0
        self.stopping = False
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.exit_code = 0
        self._backoff = Backoff()
        self._reload_lock = asyncio.Lock()
        # The leader's own copy of the route registry (for the admin API and metrics;
        # the workers hold theirs for traffic), admin-API changes, and worker counters.
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.plane = LeaderRoutePlane(config, self.events, self.metrics_registry)
        self.plane.forward = self.broadcast
        self.plane.published_routes = self.published_routes
        self.state = AdminState(_state_file(config, config_path))
        self.kv: AdminKv | None = None  # the cluster's copy of ``state.routes``, with NATS
        self.admin: Admin | None = None
        self.aggregator = Aggregator()
        self.restarts = 0
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._next_call = 0
        self._worker_configs: dict[int, Config] = {}  # by pid: what its pools were built from

    # -- life cycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until stopped; the process's exit code."""
        self._install_signal_handlers()
        self.state.load()
        if self.state.error:
            self.events.event("warning", "admin_state_unreadable", error=self.state.error)
        # Workers share the provision instance label: only the leader sweeps leftovers.
        await sweep_leftovers(self.config, self.events)
        try:
            self.worker_config = self._prepare(self.config)
            self.generation = 1
            started = await self._start_generation(self.worker_config, self.generation)
        except (OSError, StartFailed) as exc:
            self.events.event("error", "start_failed", error=str(exc))
            self._fail_report(str(exc))
            self.sockets.close()
            return 1
        self.current = {worker.slot: worker for worker in started}
        self.listeners = started[0].listeners if started else {}
        try:
            await self._start_control()
            if self.pidfile is not None:
                write_pidfile(self.pidfile)
        except Exception as exc:
            self.events.event("error", "start_failed", error=str(exc))
            self._fail_report(str(exc))
            await self.stop(graceful=False)
            return 1
        self.events.event("info", "ready", pid=os.getpid(), version=__version__,
                          workers=len(started), listeners=self.listeners,
                          admin=self.admin_addresses(), **self._nats_state())
        notify.ready(f"{len(started)} workers")
        if self.report is not None:
            self.report("ready\n")
        await self.stopped.wait()
        return self.exit_code

    async def _start_control(self) -> None:
        """The leader's route registry (with the admin API's saved routes) and admin API."""
        await self.plane.start()  # with NATS: subscribed (or unreachable) from here on
        driver = self.plane.driver
        if driver is not None:
            for body in self.state.bodies():
                driver.register(decode_registration(body), "admin")
            for route, endpoint in self.state.drained_routes:
                driver.registry.set_drained(route, endpoint, True)
            driver.publish_now()
        nats = self.config.nats
        if nats is not None and nats.routes_bucket and driver is not None:
            self.kv = AdminKv(nats.routes_bucket, self._nats_client, self.state,
                              self.shared_route_changed, self.events)
            await self.kv.start(wait=KV_FIRST_SYNC_WAIT)
        await self._start_admin(self.config)

    async def _start_admin(self, config: Config) -> None:
        if config.admin is None:
            return
        admin = Admin.from_config(config.admin, self.events)
        install_leader(admin, self)
        await admin.start(*parse_listen(config.admin.listen))
        self.admin = admin

    def admin_addresses(self) -> list[str]:
        if self.admin is None:
            return []
        return [format_address(host, port) for host, port in self.admin.addresses]

    def _fail_report(self, error: str) -> None:
        if self.report is not None:
            self.report(f"pointsman: start failed: {error}\n")

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        actions: dict[signal.Signals, Callable[[], Awaitable[Any]]] = {
            signal.SIGHUP: self.reload,
            signal.SIGQUIT: lambda: self.stop(graceful=True),
            signal.SIGTERM: lambda: self.stop(graceful=False),
            signal.SIGINT: lambda: self.stop(graceful=False),
            signal.SIGUSR1: self.reopen_logs,
        }
        for signum, action in actions.items():
            loop.add_signal_handler(signum, self.spawn, action)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)

    def spawn(self, action: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(action())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- sockets and workers -----------------------------------------------------------------

    def _prepare(self, config: Config) -> Config:
        """Bind what ``config`` listens on; the config the workers get (ports made concrete)."""
        identity = identity_of(config.process)
        require(identity)  # before anything is bound: a clear error, not a half start
        hand_over((config.logging.access, config.logging.events), identity)
        slots = worker_count(config)
        listeners = []
        for listener in config.listeners:
            listen = getattr(listener, "listen", None)
            kind = SHARED_SOCKETS.get(type(listener))
            if not isinstance(listen, str):
                listeners.append(listener)
            elif kind is not None:
                self.sockets.shared(listen, kind, slots)
                listeners.append(listener)
            else:
                concrete = self.sockets.reserve(listener.name, listen, socket.SOCK_STREAM)
                listeners.append(msgspec.structs.replace(listener, listen=concrete))
        return worker_routing_config(msgspec.structs.replace(config, listeners=listeners))

    def _retain_sockets(self, config: Config) -> None:
        slots = worker_count(config)
        wanted: list[tuple[str, int, int]] = []
        reserved: list[tuple[str, str, int]] = []
        for listener in config.listeners:
            listen = getattr(listener, "listen", None)
            if not isinstance(listen, str):
                continue
            kind = SHARED_SOCKETS.get(type(listener))
            if kind is not None:
                wanted.append((listen, kind, slots))
            else:
                reserved.append((listener.name, listen, socket.SOCK_STREAM))
        self.sockets.retain(wanted, reserved)

    async def _start_generation(self, config: Config, generation: int) -> list[Worker]:
        """Fork one worker per slot and wait until all are ready, or stop them all."""
        workers = [self._fork(config, slot, generation) for slot in range(worker_count(config))]
        try:
            await asyncio.wait_for(asyncio.gather(*(worker.ready for worker in workers)),
                                   config.process.ready_timeout)
        except (StartFailed, TimeoutError) as exc:
            reason = str(exc) or f"workers not ready within {config.process.ready_timeout}s"
            await self._halt(workers, signal.SIGTERM, FAST_STOP_TIMEOUT)
            raise StartFailed(reason) from None
        return workers

    def _fork(self, config: Config, slot: int, generation: int) -> Worker:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        spec = WorkerSpec(config=config, config_path=self.config_path, slot=slot,
                          generation=generation, channel=theirs,
                          inherited=self.sockets.for_slot(slot),
                          admin_routes=self.state.bodies(), drained=set(self.state.drained),
                          drained_routes=set(self.state.drained_routes),
                          identity=identity_of(config.process),
                          nats_routes=self._nats_routes())
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, LEADER_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                ours.close()
                run_worker(spec)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        worker = Worker(pid=pid, slot=slot, generation=generation, channel=None,
                        ready=loop.create_future(), exited=loop.create_future(),
                        on_reply=self._on_reply, on_endpoint_failed=self.plane.endpoint_failed)
        channel = Channel(ours, loop, worker.on_message, lambda: None)
        worker.channel = channel
        channel.start()
        self.workers[pid] = worker
        self._worker_configs[pid] = config
        self.events.event("debug", "worker_started", pid=pid, slot=slot, generation=generation)
        return worker

    def _nats_routes(self) -> list[str]:
        driver = self.plane.driver
        return nats_snapshot(self.plane.registry, driver.now()) if driver is not None else []

    def _reap(self) -> None:
        """SIGCHLD: collect every exited worker; restart the ones that crashed."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            config = self._worker_configs.pop(pid, self.worker_config)
            was_ready = worker.is_ready
            worker.on_exit(status)
            self.aggregator.retire(worker.stats)
            # A worker that did not exit cleanly may have left provisioned backends.
            sweep = status != 0 and not self.stopping
            if worker.retiring or self.stopping or not was_ready:
                self.events.event("debug", "worker_exited", pid=pid, slot=worker.slot,
                                  generation=worker.generation, status=describe_status(status))
                if sweep:
                    self.spawn(functools.partial(self._sweep_worker, pid, config))
                continue
            if self.current.get(worker.slot) is not worker:
                continue
            delay = self._backoff.next_delay(worker.slot, time.monotonic() - worker.started)
            self.restarts += 1
            self.events.event("error", "worker_crashed", pid=pid, slot=worker.slot,
                              generation=worker.generation, status=describe_status(status),
                              restart_in=delay)
            self.spawn(functools.partial(self._sweep_then_replace, worker, config, delay))

    async def _sweep_worker(self, pid: int, config: Config, again: bool = True) -> None:
        """Remove the backends worker ``pid`` provisioned (its label), and only those.

        An engine finishes a create whose client died half way, so a backend
        the worker was starting when it was killed can appear after this
        sweep: ``again`` sweeps once more ``LATE_SWEEP_DELAY`` later.
        """
        if again:
            self.spawn(functools.partial(self._late_sweep, pid, config))
        try:
            removed = await asyncio.wait_for(
                sweep_leftovers(config, self.events, worker=str(pid)), WORKER_SWEEP_TIMEOUT)
        except TimeoutError:
            self.events.event("warning", "provision.worker_sweep_timeout", pid=pid)
            return
        if removed:
            self.events.event("info", "provision.worker_swept", pid=pid, count=removed)

    async def _late_sweep(self, pid: int, config: Config) -> None:
        await asyncio.sleep(LATE_SWEEP_DELAY)
        await self._sweep_worker(pid, config, again=False)

    async def _sweep_then_replace(self, crashed: Worker, config: Config, delay: float) -> None:
        """A crashed worker's backends go first; its replacement comes after the backoff."""
        began = time.monotonic()
        if any(isinstance(u, ProvisionUpstream) for u in config.upstreams.values()):
            await self._sweep_worker(crashed.pid, config)
        wait = max(0.0, delay - (time.monotonic() - began))
        asyncio.get_running_loop().call_later(wait, self._replace, crashed)

    def _replace(self, crashed: Worker) -> None:
        if self.stopping or self.current.get(crashed.slot) is not crashed:
            return
        replacement = self._fork(self.worker_config, crashed.slot, crashed.generation)
        self.current[crashed.slot] = replacement

        async def announce() -> None:
            try:
                await replacement.ready
            except StartFailed as exc:
                self.events.event("error", "worker_start_failed", slot=crashed.slot,
                                  error=str(exc))
                return
            self.events.event("info", "worker_restarted", pid=replacement.pid,
                              slot=crashed.slot, replaced=crashed.pid)

        self.spawn(announce)

    async def _halt(self, workers: Iterable[Worker], signum: int, timeout: float) -> None:
        """Signal ``workers`` and wait for them to exit; SIGKILL whoever outstays ``timeout``."""
        workers = [worker for worker in workers if worker.alive]
        for worker in workers:
            worker.retire(signum)
        if not workers:
            return
        _done, pending = await asyncio.wait([worker.exited for worker in workers],
                                           timeout=timeout)
        if pending:
            for worker in workers:
                worker.send(signal.SIGKILL)
            await asyncio.wait(pending, timeout=KILL_WAIT)

    # -- signals ----------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Validate, start a new generation, retire the old one; or refuse and keep it."""
        if self.stopping:
            return {"ok": False, "errors": ["stopping"]}
        if self.config_path is None:
            self.events.event("warning", "reload_ignored", reason="no config file")
            return {"ok": False, "errors": ["started without a config file"]}
        async with self._reload_lock:
            notify.reloading()
            try:
                result = await self._reload()
            finally:
                notify.ready(f"{len(self.current)} workers")
            return result

    async def _reload(self) -> dict[str, Any]:
        assert self.config_path is not None
        try:
            config = validate(self.config_path)
            worker_config = self._prepare(config)
            generation = self.generation + 1
            started = await self._start_generation(worker_config, generation)
        except ConfigError as exc:
            return self._refuse([str(issue) for issue in exc.issues])
        except (OSError, StartFailed) as exc:
            self._retain_sockets(self.config)
            return self._refuse([str(exc)])
        old = list(self.current.values())
        self.generation = generation
        self.current = {worker.slot: worker for worker in started}
        self.worker_config = worker_config
        if config.logging != self.config.logging:
            self.events.close()
            self.events = JsonLog(config.logging.events, config.logging.level)
        else:
            self.events.reopen()
        admin_changed = config.admin != self.config.admin
        self.config = config
        self.listeners = started[0].listeners if started else {}
        self.reloads += 1
        self.plane.reload(config)
        if admin_changed:
            await self._restart_admin(config)
        for worker in old:
            worker.retire(signal.SIGQUIT)
        self._retain_sockets(config)
        self.events.event("info", "reloaded", generation=generation, workers=len(started),
                          listeners=self.listeners)
        return {"ok": True, "generation": generation, "listeners": self.listeners}

    async def _restart_admin(self, config: Config) -> None:
        if self.admin is not None:
            await self.admin.close()
            self.admin = None
        try:
            await self._start_admin(config)
        except OSError as exc:
            self.events.event("error", "admin_start_failed", error=str(exc))

    def _refuse(self, errors: list[str]) -> dict[str, Any]:
        self.events.event("error", "reload_refused", errors=errors)
        return {"ok": False, "errors": errors}

    async def reopen_logs(self) -> None:
        self.events.reopen()
        logging = self.config.logging
        hand_over((logging.access, logging.events), identity_of(self.config.process))
        for worker in list(self.workers.values()):
            worker.send(signal.SIGUSR1)
        self.events.event("info", "logs_reopened")

    async def stop(self, graceful: bool) -> None:
        """QUIT: every worker drains, then the leader exits. TERM: now."""
        if self.stopping:
            if not graceful:  # TERM while draining: hurry every worker up
                for worker in list(self.workers.values()):
                    worker.send(signal.SIGTERM)
            return
        self.stopping = True
        notify.stopping()
        active = sum(sum(worker.stats.get("active", {}).values())
                     for worker in self.workers.values())
        self.events.event("info", "stopping", graceful=graceful, workers=len(self.workers),
                          active=active)
        signum = signal.SIGQUIT if graceful else signal.SIGTERM
        timeout = (self.config.process.drain_timeout + FAST_STOP_TIMEOUT if graceful
                   else FAST_STOP_TIMEOUT)
        halting = self.spawn(lambda: self._halt(list(self.workers.values()), signum, timeout))
        self.sockets.close()  # as nginx: new connections are refused from now on
        await halting
        await sweep_leftovers(self.config, self.events)  # what crashed workers left behind
        if self.admin is not None:
            await self.admin.close()
        if self.kv is not None:
            await self.kv.stop()
        await self.plane.stop()
        if self.pidfile is not None:
            remove_pidfile(self.pidfile)
        self.events.event("info", "stopped")
        self.events.close()
        self.stopped.set()

    # -- what the admin interface asks --------------------------------------------------------

    def clock(self) -> float:
        return time.time()

    def live_stats(self) -> list[dict[str, Any]]:
        return [worker.stats for worker in self.workers.values() if worker.stats]

    def active(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for stats in self.live_stats():
            for name, count in (stats.get("active") or {}).items():
                totals[name] = totals.get(name, 0) + int(count)
        return totals

    def published_routes(self) -> int:
        """Route keys every serving worker routes by: the fewest any of them published.

        Each worker reports its table's size soon after each publish
        (``worker.ROUTES_REPORT_INTERVAL``); one that has not reported yet counts 0.
        """
        return min((worker.published_routes or 0 for worker in self.current.values()
                    if worker.alive), default=0)

    def broadcast(self, message: dict[str, Any] | RouteChange) -> None:
        """Every worker that is not retiring gets ``message`` (encoded once for all)."""
        line = encode(message)
        for worker in list(self.workers.values()):
            if worker.channel is not None and not worker.retiring:
                worker.channel.write(line)

    def route_changed(self, op: str, message: RegistryMessage) -> None:
        """An admin-API change the leader applied: every worker applies it; it is saved."""
        self._spread_and_save(op, message)
        if self.kv is not None:
            self.kv.changed(op, message)

    def _spread_and_save(self, op: str, message: RegistryMessage) -> None:
        """Every worker applies the route change, and the state file keeps it."""
        self.broadcast(RouteChange("register" if op == "register" else "unregister", "admin",
                                   message))
        if op == "register":
            self.state.registered(message)
        else:
            self.state.unregistered(message)

    def shared_route_changed(self, op: str, message: RegistryMessage) -> None:
        """A change another router made in the routes bucket: here too, as if made here."""
        driver = self.plane.driver
        if driver is None:
            return
        if op == "register":
            driver.register(message, "admin")
        else:
            driver.unregister(message, "admin")
        driver.publish_now()
        self._spread_and_save(op, message)
        self.events.event("info", "shared_route_applied", op=op, uris=list(message.uris),
                          endpoint=f"{message.host}:{message.endpoint_port}")

    def _nats_state(self) -> dict[str, bool]:
        """For ``ready``: whether registrations published from now on are routed."""
        nats = self.plane.nats
        return {} if nats is None else {"nats_subscribed": nats.subscribed}

    def _nats_client(self) -> Client | None:
        return self.plane.nats.client if self.plane.nats is not None else None

    def drain(self, upstream: str, endpoint: str, on: bool) -> None:
        self.state.drain(upstream, endpoint, on)
        self.broadcast({"type": "drain", "upstream": upstream, "endpoint": endpoint, "on": on})
        self.events.event("info", "endpoint_drained" if on else "endpoint_undrained",
                          upstream=upstream, endpoint=endpoint)

    def drain_route(self, route: str, endpoint: str, on: bool) -> None:
        """One endpoint of one HTTP route key out of (or back into) every worker's table."""
        driver = self.plane.driver
        if driver is not None and driver.registry.set_drained(route, endpoint, on):
            driver.publish_now()
        self.state.drain_route(route, endpoint, on)
        self.broadcast({"type": "drain", "route": route, "endpoint": endpoint, "on": on})
        self.events.event("info", "endpoint_drained" if on else "endpoint_undrained",
                          route=route, endpoint=endpoint)

    async def refresh_stats(self) -> None:
        """Fresh counters from every worker, so a scrape sees requests made just before it."""
        await self.ask("stats", remember=True)

    async def ask(self, op: str, remember: bool = False) -> list[Any]:
        """Ask every serving worker ``op``; the answers that came within ``CALL_TIMEOUT``.

        With ``remember`` (for ``stats``) each answer also replaces that worker's stats.
        """
        loop = asyncio.get_running_loop()
        pending = []
        for worker in list(self.workers.values()) if remember else self.current.values():
            if worker.channel is None or not worker.alive:
                continue
            self._next_call += 1
            future: asyncio.Future[Any] = loop.create_future()
            self._calls[self._next_call] = future
            pending.append((self._next_call, future, worker))
            worker.channel.send({"type": "call", "id": self._next_call, "op": op})
        if pending:
            await asyncio.wait([future for _, future, _ in pending], timeout=CALL_TIMEOUT)
        answers = []
        for call, future, worker in pending:
            self._calls.pop(call, None)
            if future.done():
                answers.append(future.result())
                if remember and isinstance(future.result(), dict):
                    worker.stats = future.result()
            else:
                future.cancel()
        return answers

    def _on_reply(self, message: dict[str, Any]) -> None:
        future = self._calls.get(int(message.get("id") or 0))
        if future is not None and not future.done():
            future.set_result(message.get("result"))

    # -- what the admin interface shows -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": round(time.time() - self.started, 3),
            "generation": self.generation,
            "reloads": self.reloads,
            "stopping": self.stopping,
            "listeners": self.listeners,
            "workers": [
                {"pid": worker.pid, "slot": worker.slot, "generation": worker.generation,
                 "ready": worker.is_ready,
                 "retiring": worker.retiring,
                 "uptime": round(time.monotonic() - worker.started, 3),
                 "active": worker.stats.get("active", {})}
                for worker in sorted(self.workers.values(), key=lambda w: (w.generation, w.slot))
            ],
        }


def _state_file(config: Config, config_path: str | None) -> Path | None:
    if config.process.state_file:
        return resolve_path(config, config.process.state_file)
    return default_state_file(config_path)


def serve(config: Config, config_path: str | None = None, pidfile: Path | None = None,
          report: Callable[[str], None] | None = None) -> int:
    """Run a leader until it stops; the process's exit code."""

    async def main() -> int:
        return await Leader(config, config_path, pidfile, report).run()

    return asyncio.run(main())
