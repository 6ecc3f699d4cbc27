"""The leader: binds the listening sockets, runs N workers, never serves traffic.

nginx's process model in asyncio. The leader

* binds every listen address once (``control.sockets``), one ``SO_REUSEPORT``
  socket per worker slot, and forks the workers, which inherit them;
* announces ``ready`` (and tells systemd, and a waiting ``--daemon``
  command) when every worker of the first generation accepts;
* on HUP validates the file first, refuses a broken one with every error and
  leaves the running workers alone; a valid one starts a new generation of
  workers on the same sockets, waits until each is ready, and only then asks
  the old generation to quit gracefully, so no connection is refused or reset
  at any moment of a reload;
* restarts a crashed worker, with backoff, and logs the crash;
* on QUIT lets every worker drain (up to ``drain_timeout``) and then exits;
  on TERM or INT stops them at once; on USR1 reopens logs everywhere.

Workers are forked from the running loop (a fork costs milliseconds; a fresh
interpreter a quarter of a second, times every worker, every reload and
every test). ``control.worker`` explains how a child sheds the leader's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from pointsman import __version__
from pointsman.config import Config, ConfigError
from pointsman.control import notify
from pointsman.control.channel import Channel
from pointsman.control.daemon import remove_pidfile, write_pidfile
from pointsman.control.logs import JsonLog
from pointsman.control.runtime import SHARED_SOCKETS
from pointsman.control.sockets import SocketTable
from pointsman.control.supervise import Backoff, StartFailed, Worker, describe_status
from pointsman.control.validate import validate
from pointsman.control.worker import LEADER_SIGNALS, WorkerSpec, run_worker

__all__ = ["Leader", "serve", "worker_count"]

FAST_STOP_TIMEOUT = 5.0
KILL_WAIT = 2.0


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
        self.hooks: list[Callable[[Leader], Awaitable[None]]] = []
        self._backoff = Backoff()
        self._reload_lock = asyncio.Lock()

    # -- life cycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until stopped; the process's exit code."""
        self._install_signal_handlers()
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
            if self.pidfile is not None:
                write_pidfile(self.pidfile)
            for hook in self.hooks:
                await hook(self)
        except Exception as exc:
            self.events.event("error", "start_failed", error=str(exc))
            self._fail_report(str(exc))
            await self.stop(graceful=False)
            return 1
        self.events.event("info", "ready", pid=os.getpid(), version=__version__,
                          workers=len(started), listeners=self.listeners)
        notify.ready(f"{len(started)} workers")
        if self.report is not None:
            self.report("ready\n")
        await self.stopped.wait()
        return self.exit_code

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
        return msgspec.structs.replace(config, listeners=listeners)

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
                          inherited=self.sockets.for_slot(slot))
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
                        ready=loop.create_future(), exited=loop.create_future())
        channel = Channel(ours, loop, worker.on_message, lambda: None)
        worker.channel = channel
        channel.start()
        self.workers[pid] = worker
        self.events.event("debug", "worker_started", pid=pid, slot=slot, generation=generation)
        return worker

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
            was_ready = worker.is_ready
            worker.on_exit(status)
            if worker.retiring or self.stopping or not was_ready:
                self.events.event("debug", "worker_exited", pid=pid, slot=worker.slot,
                                  generation=worker.generation, status=describe_status(status))
                continue
            if self.current.get(worker.slot) is not worker:
                continue
            delay = self._backoff.next_delay(worker.slot, time.monotonic() - worker.started)
            self.events.event("error", "worker_crashed", pid=pid, slot=worker.slot,
                              generation=worker.generation, status=describe_status(status),
                              restart_in=delay)
            asyncio.get_running_loop().call_later(delay, self._replace, worker)

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
        self.config = config
        self.listeners = started[0].listeners if started else {}
        self.reloads += 1
        for worker in old:
            worker.retire(signal.SIGQUIT)
        self._retain_sockets(config)
        self.events.event("info", "reloaded", generation=generation, workers=len(started),
                          listeners=self.listeners)
        return {"ok": True, "generation": generation, "listeners": self.listeners}

    def _refuse(self, errors: list[str]) -> dict[str, Any]:
        self.events.event("error", "reload_refused", errors=errors)
        return {"ok": False, "errors": errors}

    async def reopen_logs(self) -> None:
        self.events.reopen()
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
        if self.pidfile is not None:
            remove_pidfile(self.pidfile)
        self.events.event("info", "stopped")
        self.events.close()
        self.stopped.set()

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


def serve(config: Config, config_path: str | None = None, pidfile: Path | None = None,
          report: Callable[[str], None] | None = None) -> int:
    """Run a leader until it stops; the process's exit code."""

    async def main() -> int:
        return await Leader(config, config_path, pidfile, report).run()

    return asyncio.run(main())
